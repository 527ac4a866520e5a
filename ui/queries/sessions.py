"""Sessions: the list (by most recent activity) and one session's traces as a conversation, over
the hot tier and the archive (a session's early traces may be archived while its last ones are hot).

A trace is in exactly one tier when read (hot reads exclude traces being moved), so per-session
figures of the two tiers add up.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from tracelake.query.compile import AGGREGATES, ALL_AGGS, ARCHIVE, aggs
from tracelake.query.params import Params, query
from tracelake.store import tiers
from tracelake.store.base import Store
from tracelake.ui.queries.trace_list import TraceRow, trace_row

_SESSION_COLUMNS = "SessionId, Traces, TS, TE, Usr, Mods, InTok, OutTok, CostUsd, Errors, Tier"


def list_sessions(store: Store, lo_ns: int, hi_ns: int, text: str = "", limit: int = 50) -> list[dict[str, Any]]:
    """Sessions with a trace starting in the range, most recent activity first."""
    with_archive = tiers.archive_reaches(store, lo_ns)

    def read(visible: str) -> list[dict[str, Any]]:
        p = Params()
        lo, hi = p.i(lo_ns), p.i(hi_ns)
        cond = f"AND positionCaseInsensitive(SessionId, {p.s(text)}) > 0" if text else ""
        where = (f"Start >= fromUnixTimestamp64Nano({lo}) AND Start < fromUnixTimestamp64Nano({hi}) "
                 f"AND SessionId != '' {cond}")
        hot = (f"SELECT SessionId, uniqExact(TraceId) AS Traces, toUnixTimestamp64Nano(min(Start)) AS TS, "
               f"toUnixTimestamp64Nano(max(End)) AS TE, max(UserId) AS Usr, groupUniqArrayArray(Models) AS Mods, "
               f"arraySum(mapValues(maxMap(InputTokens))) AS InTok, arraySum(mapValues(maxMap(OutputTokens))) AS OutTok, "
               f"{AGGREGATES['CostUsd']} AS CostUsd, {AGGREGATES['Unpriced']} AS Unpriced, length(groupUniqArrayArray(ErrorSpans)) AS Errors, "
               f"uniqExactIf(TraceId, notEmpty(ErrorSpans)) AS Failed, 'hot' AS Tier FROM trace_summary WHERE {where} AND {visible} GROUP BY SessionId")
        if with_archive:
            archive = (f"SELECT SessionId, uniqExact(TraceId) AS Traces, toUnixTimestamp64Nano(min(Start)) AS TS, "
                       f"toUnixTimestamp64Nano(max(End)) AS TE, max(UserId) AS Usr, groupUniqArrayArray(Models) AS Mods, "
                       f"sum(InputTokens) AS InTok, sum(OutputTokens) AS OutTok, sum(CostUsd) AS CostUsd, sum(Unpriced) AS Unpriced, "
                       f"sum(ErrorCount) AS Errors, countIf(ErrorCount > 0) AS Failed, 'archive' AS Tier FROM archived_traces "
                       f"WHERE Day >= toDate(fromUnixTimestamp64Nano({lo})) AND {where} GROUP BY SessionId")
            sql = (f"SELECT SessionId, sum(Traces) AS Traces, min(TS) AS TS, max(TE) AS TE, max(Usr) AS Usr, "
                   f"arrayDistinct(arrayFlatten(groupArray(Mods))) AS Mods, sum(InTok) AS InTok, sum(OutTok) AS OutTok, "
                   f"sum(CostUsd) AS CostUsd, sum(Unpriced) AS Unpriced, sum(Errors) AS Errors, sum(Failed) AS Failed, groupUniqArray(Tier) AS Tiers "
                   f"FROM ({hot} UNION ALL {archive}) GROUP BY SessionId ORDER BY TE DESC LIMIT {int(limit)}")
        else:
            sql = f"SELECT *, [Tier] AS Tiers FROM ({hot}) ORDER BY TE DESC LIMIT {int(limit)}"
        return query(store, sql, p)

    return [{"session_id": r["SessionId"], "traces": int(r["Traces"]), "start_ns": int(r["TS"]), "end_ns": int(r["TE"]),
             "user_id": r["Usr"], "models": sorted(r["Mods"]), "input_tokens": int(r["InTok"]),
             "output_tokens": int(r["OutTok"]), "cost_usd": float(r["CostUsd"]), "unpriced_spans": int(r["Unpriced"]), "error_spans": int(r["Errors"]),
             "failed_traces": int(r["Failed"]),
             "tiers": sorted(r["Tiers"], key=("hot", "archive").index)}
            for r in tiers.read_hot(store, read)]


def session_traces(store: Store, session_id: str, limit: int = 200) -> list[TraceRow]:
    """The session's traces from both tiers, oldest first."""

    def read_hot(visible: str) -> list[TraceRow]:
        p = Params()
        sql = (f"SELECT TraceId, {aggs(ALL_AGGS)} FROM trace_summary WHERE TraceId IN "
               f"(SELECT TraceId FROM trace_summary WHERE SessionId = {p.s(session_id)}) AND {visible} "
               f"GROUP BY TraceId ORDER BY TS ASC LIMIT {int(limit)}")
        return [trace_row(r) for r in query(store, sql, p)]

    rows = tiers.read_hot(store, read_hot)
    if tiers.archive_present(store):
        p = Params()
        sql = (f"SELECT TraceId, {aggs(ALL_AGGS, ARCHIVE)} FROM archived_traces "
               f"WHERE SessionId = {p.s(session_id)} ORDER BY TS ASC LIMIT {int(limit)}")
        rows += [trace_row(r, "archive") for r in query(store, sql, p)]
    rows.sort(key=lambda r: (r.start_ns, r.trace_id))
    seen: set[str] = set()
    return [r for r in rows if not (r.trace_id in seen or seen.add(r.trace_id))][:limit]  # type: ignore[func-returns-value]


CONVERSATION_OPS = ("chat", "llm", "text_completion", "generate_content", "completion", "invoke_agent", "agent")
_CONVERSATION_COLUMNS = ("TraceId, SpanId, ParentSpanId, SpanName, LlmOperation, "
                         "toUnixTimestamp64Nano(Timestamp) AS TsNs, SpanAttributes")


def _day(start_ns: int) -> str:
    """The archive's Day partition of a trace: the UTC date of its start."""
    return datetime.fromtimestamp(start_ns // 10**9, tz=timezone.utc).date().isoformat()


def conversation_spans(store: Store, traces: list[TraceRow]) -> dict[str, list[dict[str, Any]]]:
    """Per trace: its root span and LLM spans with their attributes (for the session timeline)."""
    out: dict[str, list[dict[str, Any]]] = {}
    hot = [t for t in traces if t.tier == "hot"]
    archived = [t for t in traces if t.tier == "archive"]
    for tier_traces, source in ((hot, _hot_source), (archived, _archive_source)):
        if not tier_traces:
            continue
        p = Params()
        ops = ", ".join(p.s(o) for o in CONVERSATION_OPS)
        sql = (f"SELECT {_CONVERSATION_COLUMNS} {source(p, tier_traces)} "
               f"AND (ParentSpanId = '' OR LlmOperation IN ({ops})) ORDER BY TsNs LIMIT 1 BY TraceId, SpanId LIMIT 5000")
        for r in query(store, sql, p):
            r["SpanAttributes"] = dict(r["SpanAttributes"])
            out.setdefault(r["TraceId"], []).append(r)
    return out


def _hot_source(p: Params, traces: list[TraceRow]) -> str:
    ids = ", ".join(p.s(t.trace_id) for t in traces)
    lo = min(t.start_ns for t in traces) - 10**9
    hi = max(t.end_ns for t in traces) + 10**9
    return (f"FROM otel_traces WHERE TraceId IN ({ids}) AND Timestamp >= fromUnixTimestamp64Nano({p.i(lo)}) "
            f"AND Timestamp <= fromUnixTimestamp64Nano({p.i(hi)})")


def _archive_source(p: Params, traces: list[TraceRow]) -> str:
    ids = ", ".join(p.s(t.trace_id) for t in traces)
    days = ", ".join(p.add(d, "Date") for d in sorted({_day(t.start_ns) for t in traces}))
    projects = ", ".join(p.s(x) for x in sorted({t.project for t in traces}))
    return f"FROM otel_traces_archive WHERE Day IN ({days}) AND Project IN ({projects}) AND TraceId IN ({ids})"
