"""Sessions: the list (by most recent activity) and one session's traces as a conversation."""
from __future__ import annotations

from typing import Any

from tracelake.query.compile import ALL_AGGS, aggs
from tracelake.query.params import Params, query
from tracelake.store.base import Store
from tracelake.ui.queries.trace_list import TraceRow, trace_row


def list_sessions(store: Store, lo_ns: int, hi_ns: int, text: str = "", limit: int = 50) -> list[dict[str, Any]]:
    """Sessions with a trace starting in the range, most recent activity first."""
    p = Params()
    cond = f"AND positionCaseInsensitive(SessionId, {p.s(text)}) > 0" if text else ""
    sql = (f"SELECT SessionId, uniqExact(TraceId) AS Traces, toUnixTimestamp64Nano(min(Start)) AS TS, "
           f"toUnixTimestamp64Nano(max(End)) AS TE, max(UserId) AS Usr, groupUniqArrayArray(Models) AS Mods, "
           f"arraySum(mapValues(maxMap(InputTokens))) AS InTok, arraySum(mapValues(maxMap(OutputTokens))) AS OutTok, "
           f"arraySum(mapValues(maxMap(Cost))) AS CostUsd, length(groupUniqArrayArray(ErrorSpans)) AS Errors "
           f"FROM trace_summary WHERE Start >= fromUnixTimestamp64Nano({p.i(lo_ns)}) "
           f"AND Start < fromUnixTimestamp64Nano({p.i(hi_ns)}) AND SessionId != '' {cond} "
           f"GROUP BY SessionId ORDER BY TE DESC LIMIT {int(limit)}")
    return [{"session_id": r["SessionId"], "traces": int(r["Traces"]), "start_ns": int(r["TS"]), "end_ns": int(r["TE"]),
             "user_id": r["Usr"], "models": sorted(r["Mods"]), "input_tokens": int(r["InTok"]),
             "output_tokens": int(r["OutTok"]), "cost_usd": float(r["CostUsd"]), "error_spans": int(r["Errors"])}
            for r in query(store, sql, p)]


def session_traces(store: Store, session_id: str, limit: int = 200) -> list[TraceRow]:
    p = Params()
    sql = (f"SELECT TraceId, {aggs(ALL_AGGS)} FROM trace_summary WHERE TraceId IN "
           f"(SELECT TraceId FROM trace_summary WHERE SessionId = {p.s(session_id)}) "
           f"GROUP BY TraceId ORDER BY TS ASC LIMIT {int(limit)}")
    return [trace_row(r) for r in query(store, sql, p)]


CONVERSATION_OPS = ("chat", "llm", "text_completion", "generate_content", "completion", "invoke_agent", "agent")


def conversation_spans(store: Store, traces: list[TraceRow]) -> dict[str, list[dict[str, Any]]]:
    """Per trace: its root span and LLM spans with their attributes (for the session timeline)."""
    if not traces:
        return {}
    p = Params()
    ids = ", ".join(p.s(t.trace_id) for t in traces)
    lo = min(t.start_ns for t in traces) - 10**9
    hi = max(t.end_ns for t in traces) + 10**9
    ops = ", ".join(p.s(o) for o in CONVERSATION_OPS)
    sql = (f"SELECT TraceId, SpanId, ParentSpanId, SpanName, LlmOperation, toUnixTimestamp64Nano(Timestamp) AS TsNs, "
           f"SpanAttributes FROM otel_traces WHERE TraceId IN ({ids}) "
           f"AND Timestamp >= fromUnixTimestamp64Nano({p.i(lo)}) AND Timestamp <= fromUnixTimestamp64Nano({p.i(hi)}) "
           f"AND (ParentSpanId = '' OR LlmOperation IN ({ops})) ORDER BY TsNs LIMIT 1 BY TraceId, SpanId LIMIT 5000")
    out: dict[str, list[dict[str, Any]]] = {}
    for r in query(store, sql, p):
        r["SpanAttributes"] = dict(r["SpanAttributes"])
        out.setdefault(r["TraceId"], []).append(r)
    return out
