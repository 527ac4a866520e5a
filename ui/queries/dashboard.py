"""The dashboard: traces, errors, latency, tokens and cost over time; by root service and by model;
over the hot tier and, when the range reaches back that far, the archive (the trace list's tiers).

A trace counts where the trace list would show it: it started in the range and matches the filter,
read from exactly one tier (hot reads leave out traces being moved, :func:`tiers.read_hot`).

* Per-trace figures (the series, by root service, per tier) come from one row per trace: the hot
  tier's ``trace_summary`` aggregated by TraceId, the archive's index ``archived_traces`` as it is
  (finalized values, no span reads). One query over both, grouped four ways (GROUPING SETS).
* By model counts LLM calls, so it reads span rows: ``otel_traces`` and, for archived traces, the
  ``otel_traces_archive`` view bounded to the range's ``Day`` partitions (a few narrow columns of
  the Parquet files), keeping the spans of the traces counted above.
"""
from __future__ import annotations

from typing import Any

from tracelake.query.compile import ARCHIVE, ERROR_CODES, Compiler, aggs
from tracelake.query.filters import Node
from tracelake.query.params import Params, query
from tracelake.store.base import Store
from tracelake.store import tiers
from tracelake.ui.queries.trace_list import SPAN_SLACK_NS

# Bucket sizes the charts use (seconds): the smallest giving at most MAX_BUCKETS bars, so bars stay
# wide enough to read at every range (24h -> 1 h, 7d -> 6 h, 30d -> 1 day).
STEPS = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
         2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 91 * 86400, 365 * 86400)
MAX_BUCKETS = 40

# Columns of one trace row, both tiers; the filter may need more (kept inside each tier's subquery).
_TRACE_COLS = ("TS", "TE", "Errors", "InTok", "OutTok", "CostUsd", "Unpriced", "CacheReadTok", "CacheWriteTok",
               "ReasonTok", "RootService")
_TOKENS = ("sum(InTok) AS InTok, sum(OutTok) AS OutTok, sum(CacheReadTok) AS CacheRead, "
           "sum(CacheWriteTok) AS CacheWrite, sum(ReasonTok) AS Reasoning, sum(CostUsd) AS Cost, sum(Unpriced) AS Unpriced")
_METRICS = ("count() AS Requests, countIf(Errors > 0) AS Failed, "
            "quantileTDigest(0.5)(TE - TS) / 1e6 AS P50, quantileTDigest(0.95)(TE - TS) / 1e6 AS P95, " + _TOKENS)
_SPAN_COLS = ("LlmModel, StatusCode, Duration, InputTokens, OutputTokens, CacheReadTokens, CacheWriteTokens, "
              "ReasoningTokens, CostUsd, Unpriced")
# Cost breakdowns (grouping sets of the per-trace query): the biggest spenders of each.
BREAKDOWNS = {"project": "Proj", "user": "Usr", "session": "Sess"}
TOP = 20


def bucket_seconds(lo_ns: int, hi_ns: int, buckets: int = MAX_BUCKETS) -> int:
    span_s = max(1, (hi_ns - lo_ns) // 10**9)
    for step in STEPS:
        if span_s / step <= buckets:
            return step
    return STEPS[-1]


def bucket_label(step: int) -> str:
    """'30 s', '10 min', '6 h', '1 day', '7 days'."""
    if step % 86400 == 0:
        days = step // 86400
        return "1 day" if days == 1 else f"{days} days"
    if step % 3600 == 0:
        return f"{step // 3600} h"
    if step % 60 == 0:
        return f"{step // 60} min"
    return f"{step} s"


def _hot_traces(p: Params, lo_ns: int, hi_ns: int, node: Node | None, visible: str, cols: tuple[str, ...]) -> str:
    """One row per hot trace that started in [lo, hi) and matches ``node``: TraceId, ``cols``, Tier.

    Rows are read from an hour before the range (at most the range's length again), so a trace
    whose partial rows straddle ``lo`` gets its true start and is left out, as the list does."""
    before = min(SPAN_SLACK_NS, hi_ns - lo_ns)
    row_lo, row_hi = p.i(lo_ns - before), p.i(hi_ns + SPAN_SLACK_NS)
    comp = Compiler(p, p.i(lo_ns), row_hi)
    prefilter, having = comp.split(node, row_lo, row_hi)
    needs = list(cols) + sorted(comp.needs - set(cols))
    return (f"SELECT TraceId, {', '.join(cols)}, 'hot' AS Tier FROM ("
            f"SELECT TraceId, {aggs(needs)} FROM trace_summary "
            f"WHERE Start >= fromUnixTimestamp64Nano({row_lo}) AND Start < fromUnixTimestamp64Nano({row_hi}) "
            f"AND {prefilter} AND {visible} GROUP BY TraceId "
            f"HAVING TS >= {p.i(lo_ns)} AND TS < {p.i(hi_ns)} AND {having})")


def _archived_traces(p: Params, lo_ns: int, hi_ns: int, node: Node | None, cols: tuple[str, ...]) -> str:
    """One row per archived trace that started in [lo, hi) and matches ``node`` (the index has one
    finalized row per trace and run: a trace archived twice is kept once)."""
    lo, hi = p.i(lo_ns), p.i(hi_ns)
    comp = Compiler(p, lo, p.i(hi_ns + SPAN_SLACK_NS), tier=ARCHIVE)
    cond = comp.compile(node)
    needs = list(cols) + sorted(comp.needs - set(cols))  # the filter's terms name these aliases
    return (f"SELECT TraceId, {aggs(needs, ARCHIVE)}, 'archive' AS Tier FROM archived_traces "
            f"WHERE Day >= toDate(fromUnixTimestamp64Nano({lo})) AND Day <= toDate(fromUnixTimestamp64Nano({hi})) "
            f"AND Start >= fromUnixTimestamp64Nano({lo}) AND Start < fromUnixTimestamp64Nano({hi}) AND {cond} "
            f"LIMIT 1 BY TraceId")


def _traces(p: Params, lo_ns: int, hi_ns: int, node: Node | None, visible: str, archive: bool,
            cols: tuple[str, ...]) -> str:
    hot = _hot_traces(p, lo_ns, hi_ns, node, visible, cols)
    if not archive:
        return hot
    names = ", ".join(("TraceId", *cols, "Tier"))
    return f"SELECT {names} FROM ({hot}) UNION ALL SELECT {names} FROM ({_archived_traces(p, lo_ns, hi_ns, node, cols)})"


def _per_trace(store: Store, lo_ns: int, hi_ns: int, node: Node | None, step: int, visible: str,
               archive: bool) -> list[dict[str, Any]]:
    """Trace figures grouped by bucket, bucket and tier, root service, tier, and over all (``G``: which)."""
    p = Params()
    cols = tuple(BREAKDOWNS.values())
    src = _traces(p, lo_ns, hi_ns, node, visible, archive, _TRACE_COLS + cols)
    # grouping(x) is 0 in the rows grouped by x (standard SQL): G names the grouping set. Cost
    # breakdowns keep their TOP spenders (the other sets: every row, at most 2 per bucket or service).
    by = "".join(f"grouping({c}) = 0, '{name}', " for name, c in BREAKDOWNS.items())
    names = ", ".join(f"'{name}'" for name in BREAKDOWNS) or "''"
    sql = (f"SELECT intDiv(TS, {int(step) * 10**9}) * {int(step)} AS B, RootService AS K, Tier, "
           f"{''.join(c + ', ' for c in cols)}"
           f"multiIf(grouping(K) = 0, 'service', grouping(B) = 0 AND grouping(Tier) = 0, 'bucket_tier', "
           f"grouping(B) = 0, 'bucket', grouping(Tier) = 0, 'tier', {by}'all') AS G, "
           f"{_METRICS} FROM ({src}) GROUP BY GROUPING SETS ((B), (B, Tier), (K), (Tier), ()"
           f"{''.join(f', ({c})' for c in cols)}) "
           f"ORDER BY G, if(G IN ({names}), Cost, 0) DESC, Requests DESC "
           f"LIMIT {TOP} BY if(G IN ({names}), G, concat(G, toString(B), K, Tier))")
    return query(store, sql, p)


def _by_model(store: Store, lo_ns: int, hi_ns: int, node: Node | None, visible: str, archive: bool) -> list[dict[str, Any]]:
    """LLM calls per model, in the traces the dashboard counts (both tiers' spans)."""
    p = Params()
    lo, hi = p.i(lo_ns), p.i(hi_ns + SPAN_SLACK_NS)
    hot_ids = f"SELECT TraceId FROM ({_hot_traces(p, lo_ns, hi_ns, node, visible, ('TS',))})"
    parts = [f"SELECT {_SPAN_COLS}, 'hot' AS Tier FROM otel_traces WHERE Timestamp >= fromUnixTimestamp64Nano({lo}) "
             f"AND Timestamp < fromUnixTimestamp64Nano({hi}) AND LlmModel != '' "
             f"AND TraceId IN ({hot_ids}) LIMIT 1 BY TraceId, SpanId"]
    if archive:
        # No LIMIT 1 BY here: the archiver writes a span once (retried copies folded), and a trace's
        # late spans go to a later run's files, so no span is in two visible runs.
        arch_ids = f"SELECT TraceId FROM ({_archived_traces(p, lo_ns, hi_ns, node, ('TS',))})"
        parts.append(f"SELECT {_SPAN_COLS}, 'archive' AS Tier FROM otel_traces_archive "
                     f"WHERE Day >= toDate(fromUnixTimestamp64Nano({lo})) AND Day <= toDate(fromUnixTimestamp64Nano({p.i(hi_ns)})) "
                     f"AND LlmModel != '' AND TraceId IN ({arch_ids})")
    spans = " UNION ALL ".join(f"SELECT * FROM ({s})" for s in parts)
    sql = (f"SELECT LlmModel AS K, count() AS Requests, countIf(StatusCode IN {ERROR_CODES}) AS Failed, "
           f"countIf(Tier = 'archive') AS Archived, "
           f"quantileTDigest(0.5)(Duration) / 1e6 AS P50, quantileTDigest(0.95)(Duration) / 1e6 AS P95, "
           f"sum(InputTokens) AS InTok, sum(OutputTokens) AS OutTok, sum(CacheReadTokens) AS CacheRead, "
           f"sum(CacheWriteTokens) AS CacheWrite, sum(ReasoningTokens) AS Reasoning, sum(CostUsd) AS Cost, "
           f"sum(Unpriced) AS Unpriced FROM ({spans}) GROUP BY K ORDER BY Requests DESC, K LIMIT 50")
    return query(store, sql, p)


def _row(r: dict[str, Any]) -> dict[str, Any]:
    n = int(r["Requests"])
    return {"requests": n, "errors": int(r["Failed"]), "error_rate": int(r["Failed"]) / n if n else 0.0,
            "p50_ms": float(r["P50"]) if n else None, "p95_ms": float(r["P95"]) if n else None,
            "input_tokens": int(r["InTok"]), "output_tokens": int(r["OutTok"]), "cost_usd": float(r["Cost"]),
            "cache_read_tokens": int(r["CacheRead"]), "cache_write_tokens": int(r["CacheWrite"]),
            "reasoning_tokens": int(r["Reasoning"]), "unpriced_spans": int(r["Unpriced"])}


def dashboard(store: Store, lo_ns: int, hi_ns: int, node: Node | None = None, archive: bool | None = None) -> dict[str, Any]:
    """Series, by service, by model, totals and per-tier counts of the traces that started in
    [lo_ns, hi_ns) and match ``node``. ``archive``: None reads the archive when the range reaches
    it (:func:`tiers.archive_reaches`); False reads the hot tier only (for comparisons)."""
    step = bucket_seconds(lo_ns, hi_ns)
    with_archive = tiers.archive_reaches(store, lo_ns) if archive is None else archive and tiers.archive_present(store)

    def read(visible: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return (_per_trace(store, lo_ns, hi_ns, node, step, visible, with_archive),
                _by_model(store, lo_ns, hi_ns, node, visible, with_archive))

    rows, models = tiers.read_hot(store, read)
    start_b = (lo_ns // 10**9) // step * step
    end_b = ((hi_ns - 1) // 10**9) // step * step
    buckets = {int(r["B"]): r for r in rows if r["G"] == "bucket"}
    by_tier_bucket = {(int(r["B"]), r["Tier"]): int(r["Requests"]) for r in rows if r["G"] == "bucket_tier"}
    series = []
    for b in range(start_b, end_b + 1, step):
        r = buckets.get(b)
        point = _row(r) if r else _row({"Requests": 0, "Failed": 0, "P50": 0, "P95": 0, "InTok": 0, "OutTok": 0, "Cost": 0.0,
                                                   "CacheRead": 0, "CacheWrite": 0, "Reasoning": 0, "Unpriced": 0})
        del point["error_rate"]
        point.update(t=b, hot=by_tier_bucket.get((b, "hot"), 0), archive=by_tier_bucket.get((b, "archive"), 0))
        series.append(point)
    services = sorted((r for r in rows if r["G"] == "service"), key=lambda r: (-int(r["Requests"]), r["K"]))
    per_tier = {r["Tier"]: int(r["Requests"]) for r in rows if r["G"] == "tier"}
    overall = next((_row(r) for r in rows if r["G"] == "all"), None)
    total_req = sum(b["requests"] for b in series)
    total_err = sum(b["errors"] for b in series)
    return {
        "bucket_seconds": step, "bucket": bucket_label(step), "series": series,
        "by_service": [{"key": r["K"], **_row(r)} for r in services[:20]],
        "by_model": [{"key": r["K"], **_row(r), "archived": int(r["Archived"])} for r in models],
        **{f"by_{name}": [{"key": r[col], **_row(r)} for r in rows if r["G"] == name] for name, col in BREAKDOWNS.items()},
        "tiers": {"hot": per_tier.get("hot", 0), "archive": per_tier.get("archive", 0), "archive_read": with_archive,
                  "newest_archived_ns": tiers.newest_archived_ns(store)},
        "totals": {"requests": total_req, "errors": total_err, "error_rate": total_err / total_req if total_req else 0.0,
                   "input_tokens": sum(b["input_tokens"] for b in series),
                   "output_tokens": sum(b["output_tokens"] for b in series),
                   "cost_usd": sum(b["cost_usd"] for b in series),
                   "unpriced_spans": sum(b["unpriced_spans"] for b in series),
                   "cache_read_tokens": sum(b["cache_read_tokens"] for b in series),
                   "cache_write_tokens": sum(b["cache_write_tokens"] for b in series),
                   "reasoning_tokens": sum(b["reasoning_tokens"] for b in series),
                   "p50_ms": overall["p50_ms"] if overall else None, "p95_ms": overall["p95_ms"] if overall else None},
    }


# The alerts read the same per-trace rows of both tiers (tracelake.alerts.query.TraceRows); they sit
# below the UI in the layers, so the UI's install and the server hand them this function.
trace_rows = _traces
