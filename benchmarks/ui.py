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

Archive section (issue 9), ``--archive``: seeds ``--archive-spans`` spans three days old (default
10M), measures trace-by-id on a 500-span and an 8-span trace while they are hot, runs the archiver
(rule: hot 1 day, archived forever; the Delta table under the data dir), measures the same traces
again from the archive, then the trace list over the archive with filters (range 30 days).

    python benchmarks/ui.py --archive --archive-spans 10000000 --data-dir /tmp/tl-arch --keep
    python benchmarks/ui.py --archive --data-dir /tmp/tl-arch --no-seed   # re-measure the archive side

Targets (issue 9): trace by id from the archive, median <= 2x the same trace hot; trace list over
the archive with a filter, p95 < 1 s.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))
from shared_tools import shared_tools  # noqa: E402

SHARED_TOOLS = shared_tools()
BATCH_SPANS = 16_384
MS = 1_000_000


def _generator():
    """otlp_load.build_requests if the shared tools exist, else the tests' builder."""
    if SHARED_TOOLS is not None:
        sys.path.insert(0, str(SHARED_TOOLS))
        import otlp_load  # type: ignore[import-not-found]

        return lambda n, seed, base: otlp_load.build_requests(n, 512, seed, "llm", base_time_ns=base)
    sys.path.insert(0, str(REPO / "tests" / "ui"))
    import ui_traces  # type: ignore[import-not-found]

    return lambda n, seed, base: ui_traces.synthetic_requests(n, seed, base)


def seed(store, spans: int, age_ns: int = 0) -> tuple[int, float]:
    """Insert ``spans`` spans in ~16k-span inserts, the newest ``age_ns`` ago; returns (spans, seconds)."""
    from tracelake.store.otlp import length_delimited

    from tracelake.store.otlp import udf_statements

    # The decode SQL may rely on SQL functions the collector creates at start; create them too.
    for stmt in udf_statements():
        store.execute(stmt)
    gen = _generator()
    chunk = 64_000  # spans generated per call: bounded memory, then split into inserts
    per_trace_ms = 20.0
    n_traces = spans // 8 + 1
    base0 = (time.time_ns() // 10**9 - 60) * 10**9 - int(n_traces * per_trace_ms * MS) - age_ns
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
    from tracelake.store.otlp import length_delimited

    sys.path.insert(0, str(REPO / "tests" / "ui"))
    import ui_traces  # type: ignore[import-not-found]

    # In the middle of the seeded data, like any trace an engineer would open.
    mid = store.query_arrow("SELECT intDiv(toUnixTimestamp64Nano(min(Timestamp)) + toUnixTimestamp64Nano(max(Timestamp)), 2) AS m "
                            "FROM otel_traces").column("m")[0].as_py() or time.time_ns()
    req, trace_id = ui_traces.big_trace_request(spans, start_ns=int(mid))
    store.insert_otlp("otel_traces", length_delimited([req]))
    return trace_id


def timed(client, url: str, runs: int, budget_s: float | None = None) -> list[float]:
    """``runs`` timed GETs (fewer, at least 5, once ``budget_s`` seconds have gone by)."""
    out: list[float] = []
    start = time.perf_counter()
    for _ in range(runs):
        if budget_s is not None and len(out) >= 5 and time.perf_counter() - start > budget_s:
            break
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
    ap.add_argument("--archive", action="store_true", help="the archive section (issue 9) instead")
    ap.add_argument("--archive-spans", type=int, default=10_000_000, help="spans to archive (default 10M)")
    ap.add_argument("--skip-scans", action="store_true",
                    help="archive section: leave out span filters that match nothing (each reads every span)")
    args = ap.parse_args()
    if args.archive:
        sys.exit(archive_main(args))

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


# --- archive section (issue 9) ----------------------------------------------------------------------
DAY_NS = 86400 * 10**9
ARCHIVE_POLICY = "rules:\n  - name: default\n    hot: 1d\n    archive: forever\n"


def _report(name: str, xs: list[float], target: float | None = None, extra: str = "") -> bool:
    p95 = pct(xs, 95)
    ok = target is None or p95 <= target
    tgt = f"{target:8.0f}" if target is not None else f"{'':8s}"
    verdict = "" if target is None else ("ok" if ok else "SLOW")
    print(f"{name:52s} {statistics.median(xs):8.1f} {p95:8.1f} {tgt} {verdict} {extra}".rstrip())
    return ok


def archive_main(args) -> int:
    """Trace by id hot vs archive (same traces), and the archive's trace list with filters."""
    import json
    import subprocess

    from fastapi.testclient import TestClient

    from tracelake.archiver.delta import ArchiveLocation
    from tracelake.archiver.policy import parse_policy
    from tracelake.archiver.service import Archiver
    from tracelake.config import Settings
    from tracelake.store import open_store
    from tracelake.web import create_app

    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="tl-ui-arch-bench-")).resolve()
    store = open_store(data_dir=data_dir)
    client = TestClient(create_app(store, Settings(data_dir=data_dir)))
    archiver = Archiver(store, parse_policy(ARCHIVE_POLICY), ArchiveLocation.for_url((data_dir / "objects").as_uri()))
    saved = data_dir / "ui-bench-archive.json"
    print(f"load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    if not args.no_seed:
        n, secs = seed(store, args.archive_spans, age_ns=3 * DAY_NS)
        print(f"seeded {n:,} spans (3 days old) in {secs:.1f} s ({n / secs:,.0f} spans/s)")
        big = seed_big_trace(store)
        small = store.query_arrow("SELECT TraceId FROM trace_summary GROUP BY TraceId HAVING uniqMerge(SpanCount) = 8 "
                                  "ORDER BY TraceId LIMIT 1").column("TraceId")[0].as_py()
        urls = {"500 spans, api": f"/api/traces/{big}", "500 spans, page": f"/traces/{big}",
                "8 spans, api": f"/api/traces/{small}", "8 spans, page": f"/traces/{small}"}
        hot: dict[str, list[float]] = {}
        for name, url in urls.items():
            timed(client, url, 2)
            hot[name] = timed(client, url, args.runs)
        t0 = time.perf_counter()
        result = archiver.run_once()
        secs = time.perf_counter() - t0
        run = result.runs[-1]
        print(f"archived {run.traces:,} traces / {run.spans:,} spans in {secs:.1f} s "
              f"({run.spans / secs:,.0f} spans/s), Delta {run.archive_bytes / 2**20:,.1f} MiB, state {run.state}")
        saved.write_text(json.dumps({"urls": urls, "hot": hot}))
    else:
        archiver.setup()  # the archive view over this data dir's Delta table
    state = json.loads(saved.read_text())
    urls, hot = state["urls"], state["hot"]
    counts = store.query_arrow("SELECT count() AS t, sum(SpanCount) AS s FROM archived_traces").to_pylist()[0]
    hot_spans = store.query_arrow("SELECT count() AS n FROM otel_traces").column("n")[0].as_py()
    print(f"archive: {counts['t']:,} traces, {counts['s']:,} spans; hot: {hot_spans:,} spans")
    print(f"\n{'case':52s} {'p50 ms':>8s} {'p95 ms':>8s} {'target':>8s}")
    failed = False
    for name, url in urls.items():
        timed(client, url, 2)
        xs = timed(client, url, args.runs)
        body = client.get(url.replace("/traces/", "/api/traces/") if "/api/" not in url else url).json()
        assert body.get("tier") == "archive", body.get("tier")
        ratio = statistics.median(xs) / statistics.median(hot[name])
        # The hot side was timed before the run, the archive side after: on a busy machine the
        # medians carry the load's swings; the fastest of each is less sensitive to them.
        best = min(xs) / min(hot[name])
        _report(f"trace by id, hot: {name}", hot[name])
        ok = ratio <= 2.0
        failed |= not ok
        _report(f"trace by id, archive: {name}", xs,
                extra=f"{ratio:.2f}x hot (target <= 2x) {'ok' if ok else 'SLOW'}; fastest {best:.2f}x")
    cases = [
        ("list 30d: first page (no filter)", "/api/traces?range=30d"),
        ("list 30d: first page (page)", "/traces?range=30d"),
        ("list 30d: service + status:error", "/traces?range=30d&q=service:support-agent+status:error"),
        ("list 30d: model + tokens>3000", "/traces?range=30d&q=model:gpt-4o-2024-08-06+tokens>3000"),
        ("list 30d: duration>10s cost>0.01 (rare)", "/traces?range=30d&q=duration>10s+cost>0.01"),
        ("list 30d: session", "/traces?range=30d&q=session:sess-00042"),
        ("list 30d: attr.gen_ai.tool.name (span-level, no match)", "/traces?range=30d&q=attr.gen_ai.tool.name:run_sql"),
        ("list 30d: free text \"refund\" (span payloads, no match)", "/traces?range=30d&q=%22refund%22"),
        ("list 30d: free text \"word\" (span payloads, frequent)", "/traces?range=30d&q=%22word%22"),
        ("list 30d: kind:client service:ops-agent (span-level, no match)", "/traces?range=30d&q=kind:client+service:ops-agent"),
        ("list 30d: next page (cursor)", None),
    ]
    first = client.get("/api/traces?range=30d").json()
    cases[-1] = (cases[-1][0], f"/traces?range=30d&cursor={first['next_cursor']}")
    for name, url in cases:
        if args.skip_scans and "no match" in name:
            continue
        timed(client, url, 1)
        xs = timed(client, url, args.runs, budget_s=60)
        ok = _report(name, xs, 1000, extra="" if len(xs) == args.runs else f"({len(xs)} runs)")
        failed |= not ok
    print(f"load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    store.close()
    if not args.data_dir and not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
