#!/usr/bin/env python3
"""Dashboard benchmark: the same 30-day dashboard read from the hot tier only and from both tiers.

Seeds a data directory with realistic ~8-span LLM-agent traces spread evenly over the last 30 days
(default 4,000 traces, from /work/shared/tools/otlp_load.py when present, else the tests' small
generator), archives those older than 15 days with a real archiver run (about half of them), then
times the dashboard's query function in-process for every range the page offers:

* ``hot only``: ``dashboard(..., archive=False)``, what the dashboard read before it covered the
  archive (the hot half of the traces);
* ``both tiers``: the default, hot plus archive (every trace of the range);
* ``page``: ``GET /dashboard`` through the app (SQL, charts and template).

A range that does not reach back to the newest archived trace reads the hot tier either way (the
ratio is then 1 give or take noise). Hot-only and both-tier calls alternate, so a busy machine's
swings fall on both sides alike.

    python benchmarks/dashboard.py                                # 4,000 traces in a temp dir
    python benchmarks/dashboard.py --traces 20000 --data-dir /tmp/tl-dash --keep
    python benchmarks/dashboard.py --data-dir /tmp/tl-dash --no-seed   # re-measure
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shared_tools import shared_tools  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DAY_NS = 86400 * 10**9
MS = 1_000_000
POLICY = "rules:\n  - name: default\n    hot: 15d\n    archive: forever\n"
RANGES = ("1h", "24h", "7d", "30d")


def _requests(traces: int, base_ns: int, interval_ms: float) -> list[bytes]:
    tools = shared_tools()
    if tools is not None:
        sys.path.insert(0, str(tools))
        import otlp_load  # type: ignore[import-not-found]

        return otlp_load.build_requests(traces * 8, 512, 77, "llm", base_time_ns=base_ns, trace_interval_ms=interval_ms)
    print("no shared tools: the tests' small generator (not evenly spread in time)", file=sys.stderr)
    sys.path.insert(0, str(REPO / "tests" / "ui"))
    import ui_traces  # type: ignore[import-not-found]

    return ui_traces.synthetic_requests(traces * 8, 77, base_ns)


def seed(store, traces: int) -> None:
    from tracelake.store.otlp import length_delimited, udf_statements

    for stmt in udf_statements():
        store.execute(stmt)
    span_ns = 30 * DAY_NS - 3600 * 10**9  # leave the last hour for the newest traces to end in
    base = time.time_ns() - 30 * DAY_NS + 60 * 10**9
    reqs = _requests(traces, base, span_ns / traces / MS)
    for i in range(0, len(reqs), 32):
        store.insert_otlp("otel_traces", length_delimited(reqs[i:i + 32]))


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", type=int, default=4000, help="traces over the last 30 days (default 4,000)")
    ap.add_argument("--data-dir", help="store directory (default: a temp dir, removed unless --keep)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--no-seed", action="store_true", help="measure an already seeded --data-dir")
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from tracelake.archiver.delta import ArchiveLocation
    from tracelake.archiver.policy import parse_policy
    from tracelake.archiver.service import Archiver
    from tracelake.config import Settings
    from tracelake.store import open_store
    from tracelake.ui.queries.dashboard import dashboard
    from tracelake.ui.render import time_range
    from tracelake.web import create_app

    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="tl-dash-bench-")).resolve()
    store = open_store(data_dir=data_dir)
    archiver = Archiver(store, parse_policy(POLICY), ArchiveLocation.for_url((data_dir / "attachments").as_uri()))  # where `tracelake server` looks
    if not args.no_seed:
        t0 = time.perf_counter()
        seed(store, args.traces)
        print(f"seeded {args.traces:,} traces in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        run = archiver.run_once().runs[-1]
        print(f"archived {run.traces:,} traces / {run.spans:,} spans in {time.perf_counter() - t0:.1f} s ({run.state})")
    else:
        archiver.setup()
    hot = store.query_arrow("SELECT uniqExact(TraceId) AS n FROM trace_summary").column("n")[0].as_py()
    arch = store.query_arrow("SELECT uniqExact(TraceId) AS n FROM archived_traces").column("n")[0].as_py()
    print(f"store: {hot:,} hot traces, {arch:,} archived traces in {data_dir}")
    print(f"load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    client = TestClient(create_app(store, Settings(data_dir=data_dir)))
    print(f"\n{'range':6s} {'traces':>7s} {'archived':>9s} {'hot only ms':>12s} {'both ms':>9s} {'ratio':>6s} "
          f"{'min ratio':>8s} {'page ms':>8s}  (medians; 'min ratio': fastest both / fastest hot)")
    for rng in RANGES:
        tr = time_range(rng, None, None)
        both = dashboard(store, tr.lo_ns, tr.hi_ns)
        api = client.get("/api/dashboard", params={"range": rng}).json()
        assert api["totals"]["requests"] == both["totals"]["requests"]
        h: list[float] = []
        b: list[float] = []
        for _ in range(args.runs):  # interleaved: a busy machine's swings hit both sides alike
            h += timed(lambda: dashboard(store, tr.lo_ns, tr.hi_ns, archive=False), 1)
            b += timed(lambda: dashboard(store, tr.lo_ns, tr.hi_ns), 1)
        page = timed(lambda: client.get("/dashboard", params={"range": rng}), max(5, args.runs // 2))
        ratio = statistics.median(b) / statistics.median(h)
        print(f"{rng:6s} {both['totals']['requests']:7,d} {both['tiers']['archive']:9,d} {statistics.median(h):12.1f} "
              f"{statistics.median(b):9.1f} {ratio:6.2f} {min(b) / min(h):8.2f} {statistics.median(page):8.1f}")
    print(f"load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    archiver.release()
    store.close()
    if not args.data_dir and not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
