#!/usr/bin/env python3
"""Cost priced when read vs the materialized cost of before, in the same run (issue 24).

One embedded store seeded with the UI benchmark's 8-span LLM-agent traces (benchmarks/ui.py).
Before seeding, the store also gets what the old schema had: a cost MATERIALIZED at insert on
each span (``BenchCostMat``) and a per-span cost map in trace_summary filled by the summary's view
(``BenchCost``). The same UI endpoints are then timed, alternating run by run:

* **old**: the query modules patched to read the materialized columns (as before issue 24: no
  unpriced counts, no token kinds, no cost breakdowns on the dashboard);
* **new**: the code as it is (cost priced at read through the price dictionaries, unpriced counts,
  token kinds, the dashboard's cost breakdowns by project, user and session).

Both read the same rows of the same tables, so the ratio is the price of pricing at read.

    python benchmarks/cost.py                              # 1M spans in a temp dir
    python benchmarks/cost.py --spans 10000000 --data-dir /tmp/tl-cost --keep
    python benchmarks/cost.py --data-dir /tmp/tl-cost --no-seed --runs 40

Target (issue 24): each p95 within 20 % of the materialized figure.
"""
from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ui as ui_bench  # noqa: E402  (benchmarks/ui.py: the seeding)

CASES = (
    ("trace list, cost>0.01 (24h)", "/api/traces?range=24h&q=cost%3E0.01"),
    ("trace list, cost>0.05 model:gpt-4o (7d)", "/api/traces?range=7d&q=cost%3E0.05+model%3Agpt-4o"),
    ("trace list, first page (24h)", "/api/traces?range=24h"),
    ("dashboard, 7 days", "/api/dashboard?range=7d"),
    ("dashboard, 7 days, cost>0.01", "/api/dashboard?range=7d&q=cost%3E0.01"),
    ("session list, 7 days", "/api/sessions?range=7d"),
)


def add_materialized_cost(store) -> None:
    """The old schema's cost columns, computed at insert (the span's price now, as before)."""
    from tracelake.store import cost_schema as c

    span_cost = c.SPAN_COST.replace("{database}", store.database)
    store.execute(f"ALTER TABLE otel_traces ADD COLUMN IF NOT EXISTS BenchCostMat Float64 MATERIALIZED {span_cost}")
    store.execute("ALTER TABLE trace_summary ADD COLUMN IF NOT EXISTS BenchCost "
                  "SimpleAggregateFunction(maxMap, Map(String, Float64))")
    select = c.SUMMARY_SELECT.replace(
        "    max(SessionId) AS SessionId,",
        "    maxMap(if(BenchCostMat > 0, map(SpanId, BenchCostMat), map())) AS BenchCost,\n    max(SessionId) AS SessionId,")
    store.execute("DROP VIEW IF EXISTS trace_summary_mv")
    store.execute(f"CREATE MATERIALIZED VIEW trace_summary_mv TO trace_summary AS {select}")


@contextlib.contextmanager
def materialized() -> Iterator[None]:
    """The query modules as they were: cost from the materialized columns, no unpriced/kinds/breakdowns."""
    from tracelake.query import compile as comp
    from tracelake.ui.queries import dashboard

    saved = (dict(comp.AGGREGATES), comp.COST_MAP, dashboard._SPAN_COLS, dict(dashboard.BREAKDOWNS), comp.COST_BOUND)
    comp.COST_BOUND = True  # the old code bounded cost filters by cheap per-row sums
    comp.AGGREGATES.update({"CostUsd": "arraySum(mapValues(maxMap(BenchCost)))", "Unpriced": "0", "CacheReadTok": "0",
                            "CacheWriteTok": "0", "ReasonTok": "0"})
    comp.COST_MAP = "BenchCost"
    dashboard._SPAN_COLS = ("LlmModel, StatusCode, Duration, InputTokens, OutputTokens, 0 AS CacheReadTokens, "
                            "0 AS CacheWriteTokens, 0 AS ReasoningTokens, BenchCostMat AS CostUsd, 0 AS Unpriced")
    dashboard.BREAKDOWNS.clear()
    try:
        yield
    finally:
        comp.AGGREGATES.clear()
        comp.AGGREGATES.update(saved[0])
        comp.COST_MAP, dashboard._SPAN_COLS, comp.COST_BOUND = saved[1], saved[2], saved[4]
        dashboard.BREAKDOWNS.update(saved[3])


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=30, help="timed requests per case and variant")
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--no-seed", action="store_true")
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from tracelake.config import Settings
    from tracelake.store import open_store
    from tracelake.web import create_app

    data = args.data_dir or Path(tempfile.mkdtemp(prefix="tl-cost-"))
    store = open_store(data_dir=data)
    if not args.no_seed:
        add_materialized_cost(store)
        n, secs = ui_bench.seed(store, args.spans)
        print(f"seeded {n:,} spans in {secs:.0f} s ({n / secs:,.0f} spans/s, with both cost columns)")
    spans = store.query_arrow("SELECT count() AS n, countIf(InputTokens + OutputTokens > 0) AS llm FROM otel_traces").to_pylist()[0]
    print(f"store: {spans['n']:,} spans, {spans['llm']:,} with tokens; {args.runs} runs per case and variant, "
          f"alternating old/new")
    app = create_app(store, Settings())
    times: dict[tuple[str, str], list[float]] = {}
    with TestClient(app) as client:
        for name, url in CASES:  # warm both variants (caches, dictionaries, the page cache)
            for variant in ("old", "new"):
                with materialized() if variant == "old" else contextlib.nullcontext():
                    r = client.get(url)
                    assert r.status_code == 200, (variant, url, r.text[:300])
        for _ in range(args.runs):
            for name, url in CASES:
                for variant in ("old", "new"):
                    with materialized() if variant == "old" else contextlib.nullcontext():
                        t0 = time.perf_counter()
                        r = client.get(url)
                        times.setdefault((name, variant), []).append((time.perf_counter() - t0) * 1000)
                        assert r.status_code == 200
        # Same answers: the new code's cost equals the materialized one while prices have not changed.
        with materialized():
            old_total = client.get("/api/dashboard?range=7d").json()["totals"]["cost_usd"]
        new_total = client.get("/api/dashboard?range=7d").json()["totals"]["cost_usd"]
    print(f"\n7-day cost: materialized ${old_total:,.4f}, priced at read ${new_total:,.4f}")
    print(f"\n{'case':44} {'old p50':>9} {'old p95':>9} {'new p50':>9} {'new p95':>9} {'p95 new/old':>12}")
    worst = 0.0
    for name, _ in CASES:
        old, new = times[(name, "old")], times[(name, "new")]
        ratio = pct(new, 95) / pct(old, 95)
        worst = max(worst, ratio)
        print(f"{name:44} {statistics.median(old):8.1f}ms {pct(old, 95):8.1f}ms {statistics.median(new):8.1f}ms "
              f"{pct(new, 95):8.1f}ms {ratio:11.2f}x")
    print(f"\nworst p95 ratio {worst:.2f}x (target <= 1.20x)")
    store.close()
    if not args.keep and not args.data_dir:
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
