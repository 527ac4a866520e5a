#!/usr/bin/env python3
"""UI query benchmark on the embedded store: trace list, filtered searches, a 500-span trace.

Seeds a data directory with realistic 8-span LLM-agent traces (default 1M spans / ~125k traces,
from /work/shared/tools/otlp_load.py when present, else a small built-in generator), adds one
500-span trace, then times the UI's own HTTP endpoints in-process (FastAPI TestClient, so the
figures include SQL, normalization and template rendering, not the network) and prints p50/p95.

    python benchmarks/ui.py                       # 1M spans in a temp dir
    python benchmarks/ui.py --spans 200000 --data-dir /tmp/tl-bench --keep
    python benchmarks/ui.py --data-dir /tmp/tl-bench --no-seed   # re-measure an existing store

Targets (issue 5): first page and filtered searches under 150 ms p95; a 500-span trace under 300 ms.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_TOOLS = REPO.parent / "shared" / "tools"
BATCH_SPANS = 16_384
MS = 1_000_000


def _generator():
    """otlp_load.build_requests if the shared tools exist, else the tests' builder."""
    if (SHARED_TOOLS / "otlp_load.py").exists():
        sys.path.insert(0, str(SHARED_TOOLS))
        import otlp_load  # type: ignore[import-not-found]

        return lambda n, seed, base: otlp_load.build_requests(n, 512, seed, "llm", base_time_ns=base)
    sys.path.insert(0, str(REPO / "tests" / "ui"))
    import ui_traces  # type: ignore[import-not-found]

    return lambda n, seed, base: ui_traces.synthetic_requests(n, seed, base)


def seed(store, spans: int) -> tuple[int, float]:
    """Insert ``spans`` spans in ~16k-span inserts; returns (spans, seconds)."""
    from tracelake.collector.batcher import length_delimited

    from tracelake.collector import transform

    # The decode SQL may rely on SQL functions the collector creates at start; create them too.
    for stmt in getattr(transform, "udf_statements", lambda: [])():
        store.execute(stmt)
    gen = _generator()
    chunk = 64_000  # spans generated per call: bounded memory, then split into inserts
    per_trace_ms = 20.0
    n_traces = spans // 8 + 1
    base0 = (time.time_ns() // 10**9 - 60) * 10**9 - int(n_traces * per_trace_ms * MS)
    t0 = time.perf_counter()
    done, i = 0, 0
    while done < spans:
        n = min(chunk, spans - done)
        base = base0 + int(done / 8 * per_trace_ms * MS)
        reqs = gen(n, 1000 + i, base)
        batch: list[bytes] = []
        size = 0
        for r in reqs:
            batch.append(r)
            size += 512
            if size >= BATCH_SPANS:
                store.insert_otlp("otel_traces", length_delimited(batch))
                batch, size = [], 0
        if batch:
            store.insert_otlp("otel_traces", length_delimited(batch))
        done += n
        i += 1
        print(f"\r  seeded {done:,} spans", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return done, time.perf_counter() - t0


def seed_big_trace(store, spans: int = 500) -> str:
    """One trace of ``spans`` spans (agent loop of chat + tool calls); returns its id."""
    from tracelake.collector.batcher import length_delimited

    sys.path.insert(0, str(REPO / "tests" / "ui"))
    import ui_traces  # type: ignore[import-not-found]

    # In the middle of the seeded data, like any trace an engineer would open.
    mid = store.query_arrow("SELECT intDiv(toUnixTimestamp64Nano(min(Timestamp)) + toUnixTimestamp64Nano(max(Timestamp)), 2) AS m "
                            "FROM otel_traces").column("m")[0].as_py() or time.time_ns()
    req, trace_id = ui_traces.big_trace_request(spans, start_ns=int(mid))
    store.insert_otlp("otel_traces", length_delimited([req]))
    return trace_id


def timed(client, url: str, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        r = client.get(url)
        out.append((time.perf_counter() - t) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"{url}: HTTP {r.status_code}: {r.text[:300]}")
    return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=1_000_000, help="spans to seed (default 1M)")
    ap.add_argument("--data-dir", help="store directory (default: a temp dir, removed unless --keep)")
    ap.add_argument("--keep", action="store_true", help="keep the temp data dir")
    ap.add_argument("--no-seed", action="store_true", help="measure an already seeded --data-dir")
    ap.add_argument("--runs", type=int, default=30, help="timed requests per case")
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from tracelake.config import Settings
    from tracelake.store import open_store
    from tracelake.web import create_app

    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="tl-ui-bench-"))
    store = open_store(data_dir=data_dir)
    marker = data_dir / "ui-bench-big-trace"
    if not args.no_seed:
        n, secs = seed(store, args.spans)
        print(f"seeded {n:,} spans in {secs:.1f} s ({n / secs:,.0f} spans/s)")
        marker.write_text(seed_big_trace(store))
    big = marker.read_text().strip()
    counts = store.query_arrow("SELECT count() AS spans, uniqExact(TraceId) AS traces FROM otel_traces").to_pylist()[0]
    print(f"store: {counts['spans']:,} spans, {counts['traces']:,} traces in {data_dir}")

    app = create_app(store, Settings(data_dir=data_dir))
    client = TestClient(app)
    cases = [
        ("traces: first page (last 1h)", "/traces?range=1h", 150),
        ("traces: first page (last 24h)", "/traces?range=24h", 150),
        ("traces: next page (cursor)", None, 150),
        ("filter: service + status:error", "/traces?range=24h&q=service:support-agent+status:error", 150),
        ("filter: model + tokens>3000", "/traces?range=24h&q=model:gpt-4o-2024-08-06+tokens>3000", 150),
        ("filter: duration>10s cost>0.01", "/traces?range=24h&q=duration>10s+cost>0.01", 150),
        ("filter: session", "/traces?range=24h&q=session:sess-00042", 150),
        ("filter: free text \"refund\"", "/traces?range=24h&q=%22refund%22", 150),
        ("filter: attr.gen_ai.tool.name", "/traces?range=24h&q=attr.gen_ai.tool.name:run_sql", 150),
        ("api: /api/traces first page", "/api/traces?range=24h", 150),
        ("trace: 500 spans (page)", f"/traces/{big}", 300),
        ("trace: 500 spans (api)", f"/api/traces/{big}", 300),
    ]
    # The cursor case follows the first page's "next" link.
    first = client.get("/api/traces?range=24h").json()
    cases[2] = (cases[2][0], f"/traces?range=24h&cursor={first['next_cursor']}", 150)
    print(f"\n{'case':44s} {'p50 ms':>8s} {'p95 ms':>8s} {'target':>8s}")
    failed = False
    for name, url, target in cases:
        timed(client, url, 2)  # warm caches and the template
        xs = timed(client, url, args.runs)
        p95 = pct(xs, 95)
        ok = p95 <= target
        failed |= not ok
        print(f"{name:44s} {statistics.median(xs):8.1f} {p95:8.1f} {target:8d} {'ok' if ok else 'SLOW'}")
    store.close()
    if not args.data_dir and not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
