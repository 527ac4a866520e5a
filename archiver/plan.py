"""Which traces leave the hot tier, and which archived traces are past their time: as SQL and as a plan.

A trace is matched as a whole, on its trace_summary aggregates, by the first rule whose filter
(the UI's filter language, compiled by :mod:`tracelake.query.compile`) it passes; a rule without
``match`` takes the rest. It leaves hot when its *last* span is older than the rule's ``hot``
window (trace End < now - hot), so a trace is never split between tiers.

Archived traces are deleted when ``End + hot + archive`` of their rule *in the current policy*
has passed (a rule whose window was shortened applies to what is already archived; a rule that
no longer exists keeps the DeleteAfter stamped at archive time).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from tracelake.archiver.policy import RetentionPolicy
from tracelake.query.compile import ALL_AGGS, Compiler, aggs
from tracelake.query.filters import parse
from tracelake.query.params import Params
from tracelake.store.base import Store

FOREVER_MS = 7_258_118_400_000  # 2200-01-01: DeleteAfter of traces kept forever
NS = 1_000_000_000


def _ns(td) -> int:
    return int(td.total_seconds()) * NS


def _str_array(p: Params, values: list[str]) -> str:
    """An Array(String) parameter that both stores read alike (chdb passes arrays as raw text):
    one comma-joined String split in SQL. Values are rule names and dates: never a comma."""
    assert all("," not in v for v in values)
    return f"splitByChar(',', {p.s(','.join(values))})" if values else "CAST([], 'Array(String)')"


def _hot_bytes_per_span(store: Store) -> tuple[list[str], list[float], float]:
    """Bytes on disk per span of otel_traces, per day partition (for estimates)."""
    t = store.query_arrow(
        "SELECT toString(partition) AS P, sum(bytes_on_disk) AS B, sum(rows) AS R FROM system.parts "
        "WHERE database = currentDatabase() AND table = 'otel_traces' AND active GROUP BY P").to_pylist()
    days = [r["P"] for r in t if r["R"]]
    bps = [r["B"] / r["R"] for r in t if r["R"]]
    total_r = sum(r["R"] for r in t)
    avg = sum(r["B"] for r in t) / total_r if total_r else 0.0
    return days, bps, avg


def candidates_sql(store: Store, policy: RetentionPolicy, now_ns: int, p: Params, run_id: str = "") -> str:
    """SELECT of the index rows (trace_summary_archive columns, plus ``Action``) of every trace that
    leaves hot now. ``Action`` is 'delete' when the trace is already past hot + archive."""
    cuts = [now_ns - _ns(r.hot) for r in policy.rules]
    max_cut = max(cuts)
    span_lo, span_hi = p.i(0), p.i(max_cut)
    conditions = []
    for i, rule in enumerate(policy.rules):
        if rule.match is None:
            conditions.append(f"1, {i}")
        else:
            compiler = Compiler(p, span_lo, span_hi)
            conditions.append(f"{compiler.compile(parse(rule.match))}, {i}")
    rule_idx = f"multiIf({', '.join(conditions)}, -1)"
    keep_ms = [-1 if r.archive is None else (_ns(r.hot) + _ns(r.archive)) // 1_000_000 for r in policy.rules]
    days, bps, avg = _hot_bytes_per_span(store)
    cut = p.i(max_cut)
    now_ms = p.i(now_ns // 1_000_000)
    cuts_p = p.add(cuts, "Array(Int64)")
    keep_p = p.add(keep_ms, "Array(Int64)")
    names_p = _str_array(p, [r.name for r in policy.rules])
    day_expr = "toDate(fromUnixTimestamp64Nano(TS), 'UTC')"
    bytes_expr = (f"toUInt64(NSpans * transform(toString({day_expr}), {_str_array(p, days)}, "
                  f"{p.add(bps, 'Array(Float64)')}, {p.f(avg)}))")
    delete_after = (f"if(arrayElement({keep_p}, RuleIdx + 1) < 0, {p.i(FOREVER_MS)}, "
                    f"intDiv(TE, 1000000) + arrayElement({keep_p}, RuleIdx + 1))")
    return f"""
SELECT Proj AS Project, TraceId, fromUnixTimestamp64Nano(TS) AS Start, fromUnixTimestamp64Nano(TE) AS End,
       Root AS RootName, RootService, toUInt64(NSpans) AS SpanCount, toUInt64(Errors) AS ErrorCount,
       Svcs AS Services, Mods AS Models, toUInt64(InTok) AS InputTokens, toUInt64(OutTok) AS OutputTokens,
       CostUsd, Sess AS SessionId, Usr AS UserId, {day_expr} AS Day, {bytes_expr} AS Bytes,
       {p.s(run_id)} AS RunId, arrayElement({names_p}, RuleIdx + 1) AS Rule,
       fromUnixTimestamp64Milli({now_ms}) AS ArchivedAt,
       fromUnixTimestamp64Milli({delete_after}) AS DeleteAfter,
       if({delete_after} <= {now_ms}, 'delete', 'archive') AS Action
FROM (
    SELECT *, {rule_idx} AS RuleIdx
    FROM (
        SELECT TraceId, {aggs(ALL_AGGS)}
        FROM trace_summary
        WHERE TraceId IN (SELECT TraceId FROM trace_summary WHERE Start < fromUnixTimestamp64Nano({cut}))
        GROUP BY TraceId
        HAVING TE < {cut}
    )
)
WHERE RuleIdx >= 0 AND TE < arrayElement({cuts_p}, RuleIdx + 1)
"""


def expired_condition(policy: RetentionPolicy, now_ns: int, p: Params) -> str:
    """A condition on trace_summary_archive rows: past its rule's hot + archive (current policy)."""
    names = _str_array(p, [r.name for r in policy.rules])
    keep = p.add([-1 if r.archive is None else (_ns(r.hot) + _ns(r.archive)) // 1_000_000 for r in policy.rules],
                 "Array(Int64)")
    idx = f"indexOf({names}, Rule)"
    effective = (f"multiIf({idx} = 0, toUnixTimestamp64Milli(DeleteAfter), arrayElement({keep}, {idx}) < 0, "
                 f"{p.i(FOREVER_MS)}, toUnixTimestamp64Milli(End) + arrayElement({keep}, {idx}))")
    return f"({effective} <= {p.i(now_ns // 1_000_000)})"


@dataclass(frozen=True)
class PlanRow:
    rule: str
    day: str
    action: Literal["archive", "delete"]
    traces: int
    spans: int
    bytes: int


@dataclass
class Plan:
    now: datetime
    rows: list[PlanRow] = field(default_factory=list)

    def totals(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self.rows:
            acc = out.setdefault(r.action, {"traces": 0, "spans": 0, "bytes": 0})
            acc["traces"] += r.traces
            acc["spans"] += r.spans
            acc["bytes"] += r.bytes
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"now": self.now.isoformat(), "rows": [r.__dict__ for r in self.rows], "totals": self.totals()}


def make_plan(store: Store, policy: RetentionPolicy, now: datetime | None = None) -> Plan:
    """What a run starting at ``now`` would move and delete, per rule and day; changes nothing.

    'archive' rows: traces leaving hot for the archive. 'delete' rows: archived traces past their
    time, and hot traces already past hot + archive (they pass through the archive and are deleted
    in the same run)."""
    now = now or datetime.now(timezone.utc)
    now_ns = int(now.timestamp() * NS)
    p = Params()
    sql = candidates_sql(store, policy, now_ns, p)
    moving = store.query_arrow(
        f"SELECT Rule, toString(Day) AS D, Action, count() AS T, sum(SpanCount) AS S, sum(Bytes) AS B "
        f"FROM ({sql}) GROUP BY Rule, D, Action ORDER BY D, Rule, Action", p.bound(store)).to_pylist()
    p2 = Params()
    expired = store.query_arrow(
        f"SELECT Rule, toString(Day) AS D, count() AS T, sum(SpanCount) AS S, sum(Bytes) AS B FROM archived_traces "
        f"WHERE {expired_condition(policy, now_ns, p2)} GROUP BY Rule, D ORDER BY D, Rule", p2.bound(store)).to_pylist()
    rows = [PlanRow(r["Rule"], r["D"], r["Action"], r["T"], r["S"], r["B"]) for r in moving]
    rows += [PlanRow(r["Rule"], r["D"], "delete", r["T"], r["S"], r["B"]) for r in expired]
    order = {r.name: i for i, r in enumerate(policy.rules)}
    rows.sort(key=lambda r: (r.day, order.get(r.rule, len(order)), r.action))
    return Plan(now, rows)
