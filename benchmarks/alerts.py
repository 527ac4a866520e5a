#!/usr/bin/env python3
"""Alerts benchmark: what evaluating many rules costs, and how soon a rule fires under ingest.

1. Cost. Seeds a store with ``--spans`` realistic LLM-agent spans (~8 per trace, from
   /work/shared/tools/otlp_load.py when present) spread over the last day, makes ``--rules`` rules
   (default 200: every aggregate, windows 5m / 1h / 1d, ungrouped and per model / user / service,
   with and without filters), and times evaluation rounds in-process (the embedded engine runs in
   this process, so ``time.process_time`` counts its threads too):

   * ``batched``: :meth:`Engine.evaluate`, what the server runs (rules sharing a window read the
     traces once; settled traces of long windows come from the alerts' cache);
   * ``one query per rule`` (the baseline, same process, same rules, same cache): each rule alone.

   Printed: CPU seconds per round, wall time, and the share of one core at the evaluation interval
   (``--every``, default 60 s): the target is < 10 % for 200 rules over 10M spans.

2. Firing latency (``--latency``): spans keep arriving (``--ingest-rate`` per second, inserted as
   the collector does) while the schedule evaluates every ``--latency-every`` seconds; errors start
   at a known instant and the time until the rule is firing is printed against the bound (one
   interval + 10 s).

    python benchmarks/alerts.py --spans 1000000             # 2-core shared machine
    python benchmarks/alerts.py --spans 10000000 --rounds 3  # a quiet machine
    python benchmarks/alerts.py --spans 200000 --latency --no-baseline
"""
from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shared_tools import shared_tools  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MS = 1_000_000
DAY_S = 86400

AGGREGATES = ("error_rate", "count", "p50_latency", "p95_latency", "p99_latency", "tokens", "cost")
WINDOWS = ("5m", "1h", "1d")
GROUPS = ("", "", "model", "user", "service")
FILTERS = ("", "", "service:support-bot", "model:gpt-4o*", "status:error", "duration>2s", "name:invoke_agent*",
           "tokens>1000", "user:user-00*", "operation:chat")


def rule_file(n: int, seed: int = 5) -> str:
    rnd = random.Random(seed)
    lines = ["rules:"]
    for i in range(n):
        agg = AGGREGATES[i % len(AGGREGATES)]
        threshold = {"error_rate": "5%", "count": 1000, "tokens": 10**6, "cost": "$10"}.get(agg, 5000)
        lines += [f"  - name: r{i:03d}", f"    aggregate: {agg}", f"    window: {WINDOWS[i % len(WINDOWS)]}",
                  f"    threshold: {threshold}"]
        group = GROUPS[(i // 3) % len(GROUPS)]
        if group:
            lines.append(f"    group_by: {group}")
        flt = rnd.choice(FILTERS)
        if flt:
            lines.append(f"    filter: '{flt}'")
    return "\n".join(lines) + "\n"


def requests(spans: int, base_ns: int, interval_ms: float, seed: int) -> list[bytes]:
    tools = shared_tools()
    if tools is not None:
        sys.path.insert(0, str(tools))
        import otlp_load  # type: ignore[import-not-found]

        return otlp_load.build_requests(spans, 512, seed, "llm", base_time_ns=base_ns, trace_interval_ms=interval_ms)
    print("no shared tools: the tests' small generator (not evenly spread in time)", file=sys.stderr)
    sys.path.insert(0, str(REPO / "tests" / "ui"))
    import ui_traces  # type: ignore[import-not-found]

    return ui_traces.synthetic_requests(spans, seed, base_ns)


def insert(store, reqs: list[bytes]) -> None:
    from tracelake.store.otlp import length_delimited

    for i in range(0, len(reqs), 32):
        store.insert_otlp("otel_traces", length_delimited(reqs[i:i + 32]))


def seed(store, spans: int, chunk: int = 250_000) -> None:
    """``spans`` spans over the last day, generated and inserted a chunk at a time (bounded memory)."""
    from tracelake.store.otlp import udf_statements

    for stmt in udf_statements():
        store.execute(stmt)
    span_ns = DAY_S * 10**9 - 120 * 10**9
    start = time.time_ns() - DAY_S * 10**9 + 60 * 10**9
    interval_ms = span_ns / (spans / 8) / MS
    done = 0
    while done < spans:
        n = min(chunk, spans - done)
        base = start + int(done / 8 * interval_ms * MS)
        insert(store, requests(n, base, interval_ms, 77 + done))
        done += n
        print(f"  seeded {done:,} / {spans:,} spans", file=sys.stderr)


def cpu_wall(fn) -> tuple[float, float]:
    c, w = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c, time.perf_counter() - w


def cost(store, rules_yaml: str, rounds: int, every_s: float, baseline: bool) -> None:
    from tracelake.alerts import query
    from tracelake.alerts.config import AlertsConfig
    from tracelake.alerts.engine import Engine, ns
    from tracelake.alerts.rulefile import parse_rules
    from tracelake.ui.queries.dashboard import trace_rows

    rules = parse_rules(rules_yaml, "bench.yaml")
    engine = Engine(store, AlertsConfig(), trace_rows, rules)
    print(f"{len(rules.rules)} rules over {len({r.window for r in rules.rules})} windows (one query each), "
          f"{len({r.group_by for r in rules.rules})} groupings")
    engine.evaluate(datetime.now(timezone.utc))  # warm-up: first reads, dictionary loads
    batched = [cpu_wall(lambda: engine.evaluate(datetime.now(timezone.utc))) for _ in range(rounds)]
    last = engine.last
    assert last is not None
    print(f"  last round: {len(last.changes)} changes, {len(last.errors)} rules in error")
    cpu_b = statistics.median(c for c, _ in batched)
    wall_b = statistics.median(w for _, w in batched)
    print(f"\n{'mode':22s} {'CPU s/round':>12s} {'wall s/round':>13s} {'% of a core @' + str(int(every_s)) + 's':>16s}")
    print(f"{'batched (the server)':22s} {cpu_b:12.2f} {wall_b:13.2f} {100 * cpu_b / every_s:15.1f}%")
    if baseline:
        def per_rule() -> None:
            now = [ns(datetime.now(timezone.utc))]
            for r in rules.rules:
                query.values(store, [r], now, trace_rows, use_cache=True)

        single = [cpu_wall(per_rule) for _ in range(max(1, rounds // 2))]
        cpu_s = statistics.median(c for c, _ in single)
        wall_s = statistics.median(w for _, w in single)
        print(f"{'one query per rule':22s} {cpu_s:12.2f} {wall_s:13.2f} {100 * cpu_s / every_s:15.1f}%")
        print(f"\nbatched / one query per rule: CPU {cpu_b / cpu_s:.2f}, wall {wall_b / wall_s:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=1_000_000, help="spans over the last day (default 1M)")
    ap.add_argument("--rules", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5, help="evaluation rounds measured")
    ap.add_argument("--every", type=float, default=60.0, help="the evaluation interval the share is computed at (s)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the one-query-per-rule baseline")
    ap.add_argument("--latency", action="store_true", help="also measure the firing latency under ingest")
    ap.add_argument("--latency-every", type=float, default=10.0)
    ap.add_argument("--ingest-rate", type=int, default=2000, help="spans per second during the latency run")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--data-dir", help="store directory (default: a temp dir, removed unless --keep)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--no-seed", action="store_true", help="measure an already seeded --data-dir")
    args = ap.parse_args()

    from tracelake.store import open_store

    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="tl-alerts-bench-")).resolve()
    store = open_store(data_dir=data_dir)
    try:
        if not args.no_seed:
            t0 = time.perf_counter()
            seed(store, args.spans)
            print(f"seeded {args.spans:,} spans in {time.perf_counter() - t0:.1f} s")
        n = store.query_arrow("SELECT count() AS n FROM otel_traces").column("n")[0].as_py()
        t = store.query_arrow("SELECT uniqExact(TraceId) AS n FROM trace_summary").column("n")[0].as_py()
        print(f"store: {n:,} spans, {t:,} traces in {data_dir}")
        print(f"load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
        cost(store, rule_file(args.rules), args.rounds, args.every, not args.no_baseline)
        if args.latency:
            measure_latency(store, args.latency_every, args.ingest_rate, args.trials, args.rules)
    finally:
        store.close()
        if not args.keep and not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


def measure_latency(store, every_s: float, rate: int, trials: int, n_rules: int) -> None:
    """Spans arrive at ``rate`` per second (healthy traffic of service ``bench-live``); at a known
    instant its traces start failing; the schedule (every ``every_s``, evaluating the ``n_rules``
    benchmark rules too) must fire within one interval + 10 s. Then the traffic heals and the rule
    resolves before the next trial."""
    from tracelake.alerts.config import AlertsConfig
    from tracelake.alerts.engine import Engine
    from tracelake.alerts.rulefile import parse_rules
    from tracelake.alerts.service import Scheduler
    from tracelake.ui.queries.dashboard import trace_rows

    sys.path.insert(0, str(REPO / "tests"))
    from otlp_spans import new_span_id, new_trace_id, request, span  # type: ignore[import-not-found]

    failing = threading.Event()
    stop = threading.Event()

    def ingest() -> None:
        from tracelake.store.otlp import length_delimited

        while not stop.is_set():
            t = time.time_ns()
            reqs = []
            for _ in range(max(1, rate // 10)):  # a batch every 100 ms, like the collector's segments
                s = span("invoke_agent", new_trace_id(), new_span_id(), start_ns=t, duration_ns=5 * MS,
                         status=2 if failing.is_set() else 0)
                reqs.append(request([s], service="bench-live").SerializeToString())
            store.insert_otlp("otel_traces", length_delimited(reqs))
            stop.wait(max(0.0, 0.1 - (time.time_ns() - t) / 1e9))

    # A threshold the first failed traces cross: the time measured from the errors' start is then the
    # time from the condition becoming true (within a fraction of a second).
    rules = parse_rules(rule_file(n_rules) + "  - name: live-errors\n    filter: service:bench-live\n"
                        "    aggregate: error_rate\n    window: 1m\n    threshold: 1%\n", "latency.yaml")
    config = AlertsConfig(every=timedelta(seconds=every_s))
    engine = Engine(store, config, trace_rows, rules)
    feeder = threading.Thread(target=ingest, daemon=True)
    feeder.start()
    time.sleep(every_s)  # healthy traffic first (a benchmark may wait; tests never do)
    scheduler = Scheduler(engine).start()
    results = []
    try:
        for trial in range(trials):
            failing.set()
            began = time.time()
            live = ("", "live-errors", "")
            while not (engine.states.get(live) and engine.states[live].state == "firing"):
                time.sleep(0.05)
            results.append(time.time() - began)
            print(f"  trial {trial + 1}: fired {results[-1]:.1f} s after errors began "
                  f"(bound {every_s + 10:.0f} s; last round {engine.last.wall_s:.1f} s wall, {engine.last.cpu_s:.2f} s CPU "
                  "of the process, ingest included)")
            failing.clear()
            while engine.states[live].state in ("firing", "resolving"):
                time.sleep(0.05)
    finally:
        scheduler.stop()
        stop.set()
        feeder.join(5)
    print(f"firing latency at {rate} spans/s, evaluated every {every_s:.0f} s: median {statistics.median(results):.1f} s, "
          f"max {max(results):.1f} s (bound: {every_s + 10:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
