"""The dashboard: requests, errors, latency, tokens and cost over time; by service and by model.

Hot tier only (traces being moved to the archive are left out, as in every hot read); the archive
is summarized per day on the Retention page.
"""
from __future__ import annotations

from typing import Any

from tracelake.query.compile import ERROR_CODES, Compiler, aggs
from tracelake.query.filters import Node
from tracelake.query.params import Params, query
from tracelake.store.base import Store
from tracelake.store import tiers
from tracelake.ui.queries.trace_list import SPAN_SLACK_NS


def bucket_seconds(lo_ns: int, hi_ns: int, buckets: int = 60) -> int:
    span_s = max(1, (hi_ns - lo_ns) // 10**9)
    for step in (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400):
        if span_s / step <= buckets:
            return step
    return 86400 * 7


# Per-trace figures the dashboard charts, over the rows of one group.
_TRACE_METRICS = ("count() AS Requests, countIf(Errors > 0) AS Failed, "
                  "quantileTDigest(0.5)(TE - TS) / 1e6 AS P50, quantileTDigest(0.95)(TE - TS) / 1e6 AS P95, "
                  "sum(InTok) AS InTok, sum(OutTok) AS OutTok, sum(CostUsd) AS Cost")


def _read(store: Store, lo_ns: int, hi_ns: int, node: Node | None, step: int,
          visible: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The dashboard's three queries over hot traces (``visible``: the hot readers' clause)."""
    p = Params()
    comp = Compiler(p, p.i(lo_ns), p.i(hi_ns + SPAN_SLACK_NS))
    having = comp.compile(node)
    inner = (f"SELECT TraceId, {aggs(('TS', 'TE', 'Errors', 'InTok', 'OutTok', 'CostUsd', 'Svcs', 'Mods', 'Root', 'Sess', 'Usr', 'Proj', 'NSpans'))} "
             f"FROM trace_summary WHERE Start >= fromUnixTimestamp64Nano({p.i(lo_ns)}) "
             f"AND Start < fromUnixTimestamp64Nano({p.i(hi_ns)}) AND {visible} GROUP BY TraceId "
             f"HAVING TS >= {p.i(lo_ns)} AND TS < {p.i(hi_ns)} AND {having}")
    series_sql = f"SELECT intDiv(TS, {step * 10**9}) * {step} AS B, {_TRACE_METRICS} FROM ({inner}) GROUP BY B ORDER BY B"
    series = query(store, series_sql, p)
    by_service_sql = (f"SELECT RootService AS K, {_TRACE_METRICS} "
                      f"FROM ({inner.replace('SELECT TraceId, ', 'SELECT TraceId, max(RootService) AS RootService, ', 1)}) "
                      f"GROUP BY K ORDER BY Requests DESC LIMIT 20")
    by_service = query(store, by_service_sql, p)
    # Per model from the LLM spans themselves (a trace can use several models).
    p2 = Params()
    by_model_sql = (f"SELECT LlmModel AS K, count() AS Calls, countIf(StatusCode IN {ERROR_CODES}) AS Failed, "
                    f"quantileTDigest(0.5)(Duration) / 1e6 AS P50, quantileTDigest(0.95)(Duration) / 1e6 AS P95, "
                    f"sum(InputTokens) AS InTok, sum(OutputTokens) AS OutTok, sum(CostUsd) AS Cost FROM "
                    f"(SELECT LlmModel, StatusCode, Duration, InputTokens, OutputTokens, CostUsd FROM otel_traces "
                    f"WHERE Timestamp >= fromUnixTimestamp64Nano({p2.i(lo_ns)}) AND Timestamp < fromUnixTimestamp64Nano({p2.i(hi_ns)}) "
                    f"AND LlmModel != '' AND {visible} LIMIT 1 BY TraceId, SpanId) GROUP BY K ORDER BY Calls DESC LIMIT 20")
    by_model = query(store, by_model_sql, p2)
    return series, by_service, by_model


def dashboard(store: Store, lo_ns: int, hi_ns: int, node: Node | None = None) -> dict[str, Any]:
    """Time series of requests, errors, latency, tokens and cost; totals by model and by service."""
    step = bucket_seconds(lo_ns, hi_ns)
    series, by_service, by_model = tiers.read_hot(store, lambda visible: _read(store, lo_ns, hi_ns, node, step, visible))
    start_b = (lo_ns // 10**9) // step * step
    end_b = (hi_ns // 10**9) // step * step
    have = {int(r["B"]): r for r in series}
    filled = []
    for b in range(start_b, end_b + 1, step):
        r = have.get(b)
        filled.append({"t": b, "requests": int(r["Requests"]) if r else 0, "errors": int(r["Failed"]) if r else 0,
                       "p50_ms": float(r["P50"]) if r and r["Requests"] else None,
                       "p95_ms": float(r["P95"]) if r and r["Requests"] else None,
                       "input_tokens": int(r["InTok"]) if r else 0, "output_tokens": int(r["OutTok"]) if r else 0,
                       "cost_usd": float(r["Cost"]) if r else 0.0})

    def group(rows: list[dict[str, Any]], count_key: str) -> list[dict[str, Any]]:
        return [{"key": r["K"], "requests": int(r[count_key]), "errors": int(r["Failed"]),
                 "error_rate": (int(r["Failed"]) / int(r[count_key])) if r[count_key] else 0.0,
                 "p50_ms": float(r["P50"]), "p95_ms": float(r["P95"]), "input_tokens": int(r["InTok"]),
                 "output_tokens": int(r["OutTok"]), "cost_usd": float(r["Cost"])} for r in rows]

    total_req = sum(b["requests"] for b in filled)
    total_err = sum(b["errors"] for b in filled)
    return {"bucket_seconds": step, "series": filled, "by_service": group(by_service, "Requests"),
            "by_model": group(by_model, "Calls"),
            "totals": {"requests": total_req, "errors": total_err,
                       "error_rate": total_err / total_req if total_req else 0.0,
                       "input_tokens": sum(b["input_tokens"] for b in filled),
                       "output_tokens": sum(b["output_tokens"] for b in filled),
                       "cost_usd": sum(b["cost_usd"] for b in filled)}}
