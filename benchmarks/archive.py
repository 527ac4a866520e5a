#!/usr/bin/env python3
"""Archive benchmark: throughput of one archiver run and bytes per span, hot vs archive.

In one process, on a fresh embedded store and a local-directory object store:

1. baseline: the same spans inserted into the hot tier through the collector's INSERT path
   (length-delimited OTLP decoded by ClickHouse, batches of 32k spans), spans/s;
2. hot bytes per span: otel_traces' parts on disk after OPTIMIZE FINAL (merged, its best case);
3. one archiver run moving every span (policy: hot 1d, archive forever; spans are 10 days old):
   select, read from ClickHouse, write Delta, flip, drop the hot partitions, spans/s;
4. archive bytes per span: the Delta table's Parquet files.

Prints the figures and the ratios archive/hot measured in this run, and the load average.

    python benchmarks/archive.py                  # 500k spans
    python benchmarks/archive.py --spans 100000
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from shared_tools import shared_tools  # noqa: E402

SHARED_TOOLS = shared_tools()
DAY_NS = 86_400 * 10**9


def _requests(total: int, base_ns: int) -> list[bytes]:
    if SHARED_TOOLS is not None:
        sys.path.insert(0, str(SHARED_TOOLS))
        import otlp_load  # type: ignore[import-not-found]

        return otlp_load.build_requests(total, 512, 7, "llm", base_time_ns=base_ns, trace_interval_ms=2.0)
    sys.path.insert(0, str(REPO / "tests"))
    from otlp_spans import GENAI_CHAT, new_trace_id, request, span  # type: ignore[import-not-found]

    out, made = [], 0
    while made < total:
        spans = []
        for _ in range(64):
            tid = new_trace_id()
            t0 = base_ns + made * 1_000_000
            root = span("agent", tid, start_ns=t0, attrs={"input.value": "question " * 40})
            spans += [root] + [span("chat", tid, parent=root["span_id"], start_ns=t0 + i, attrs=dict(GENAI_CHAT))
                               for i in range(7)]
            made += 8
        out.append(request(spans).SerializeToString())
    return out


def _cpu() -> float:
    """CPU seconds of this process, all threads (chdb runs in-process): less sensitive to other
    load on the machine than wall time."""
    t = os.times()
    return t.user + t.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=500_000)
    args = parser.parse_args()

    from tracelake.archiver.delta import ArchiveLocation, DeltaArchive
    from tracelake.archiver.policy import parse_policy
    from tracelake.archiver.service import Archiver
    from tracelake.store.otlp import length_delimited
    from tracelake.store.otlp import udf_statements
    from tracelake.store import open_store

    base = time.time_ns() - 10 * DAY_NS
    bodies = _requests(args.spans, base)
    with tempfile.TemporaryDirectory(prefix="tl-bench-archive-") as tmp:
        store = open_store(Path(tmp) / "data")
        for statement in udf_statements():
            store.execute(statement)
        # 1. hot insert baseline, in batches like the collector's group commit (~32k spans).
        per_batch = max(1, 32_768 // 512)
        c0, t0 = _cpu(), time.perf_counter()
        for i in range(0, len(bodies), per_batch):
            store.insert_otlp("otel_traces", length_delimited(bodies[i:i + per_batch]))
        hot_s, hot_cpu = time.perf_counter() - t0, _cpu() - c0
        spans = store.query_arrow("SELECT count() AS n FROM otel_traces").to_pylist()[0]["n"]
        store.execute("OPTIMIZE TABLE otel_traces FINAL")
        hot_bytes = store.query_arrow(
            "SELECT sum(bytes_on_disk) AS b FROM system.parts WHERE database = currentDatabase() "
            "AND table = 'otel_traces' AND active").to_pylist()[0]["b"]

        # 3. one archive run of everything.
        location = ArchiveLocation.for_url(str(Path(tmp) / "objects"))
        policy = parse_policy("rules:\n  - name: all\n    hot: 1d\n    archive: forever\n")
        archiver = Archiver(store, policy, location)
        archiver.setup()
        phases: dict[str, float] = {}
        last = [time.perf_counter(), ""]

        def progress(phase: str, done: int, total: int) -> None:
            now = time.perf_counter()
            if last[1] and last[1] != phase:
                phases[last[1]] = phases.get(last[1], 0.0)
            last[1] = phase
            phases[phase] = now - t1

        c1, t1 = _cpu(), time.perf_counter()
        result = archiver.run_once(progress=progress, now=datetime.now(timezone.utc))
        run_s, run_cpu = time.perf_counter() - t1, _cpu() - c1
        run = result.runs[-1]
        archive_bytes = sum(s for _, _, _, s in DeltaArchive(location).partition_sizes())
        archived = store.query_arrow("SELECT count() AS n FROM otel_traces_archive").to_pylist()[0]["n"]
        left = store.query_arrow("SELECT count() AS n FROM otel_traces").to_pylist()[0]["n"]
        store.close()

    hot_rate = spans / hot_s
    arch_rate = run.spans / run_s
    print(f"spans                      {spans:,} (archived {archived:,}, left hot {left:,}, run state {run.state})")
    print(f"hot insert (baseline)      {hot_rate:,.0f} spans/s ({hot_s:.2f} s, {spans / hot_cpu:,.0f} spans per CPU-second)")
    print(f"archive run                {arch_rate:,.0f} spans/s ({run.spans / run_cpu:,.0f} spans per CPU-second; {run_s:.2f} s: "
          + ", ".join(f"{k} done at {v:.2f} s" for k, v in phases.items()) + ")")
    print(f"hot bytes/span             {hot_bytes / spans:,.1f} (otel_traces after OPTIMIZE FINAL)")
    print(f"archive bytes/span         {archive_bytes / max(run.spans, 1):,.1f} (Delta Parquet files)")
    print(f"ratio archive/hot speed    {arch_rate / hot_rate:.2f}x")
    print(f"ratio archive/hot bytes    {archive_bytes / max(run.spans, 1) / (hot_bytes / spans):.2f}x")
    print(f"span source                {'shared otlp_load.py (~1 KB LLM spans) at ' + str(SHARED_TOOLS) if SHARED_TOOLS else 'built-in small synthetic spans (no shared tools found)'}")
    print(f"load average               {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
