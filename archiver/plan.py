"""Which traces leave the hot tier, and which archived traces are past their time: as SQL and as a plan.

A trace is a project's spans of one trace id (trace ids cross projects: two projects' spans of one
id are two traces here, each moved, kept and deleted on its own, never one project's spans on the
strength of another's). It is matched as a whole, on its trace_summary aggregates, by the first rule whose filter
(the UI's filter language, compiled by :mod:`tracelake.query.compile`) it passes; a rule without
``match`` takes the rest. It leaves hot when its *last* span is older than the rule's ``hot``
window (trace End < now - hot), so a trace is never split between tiers.

Archived traces are deleted when ``End + hot + archive`` of their rule *in the current policy*
has passed (a rule whose window was shortened applies to what is already archived; a rule that
no longer exists keeps the DeleteAfter stamped at archive time).

Pins and holds (:mod:`tracelake.archiver.keep`) win over every rule: a trace pinned at the run's
clock never leaves hot and is never deleted; a trace an active hold matches is never deleted in
any tier (it still moves to the archive when its hot time is up). The plan counts both as 'kept'
rows, with what keeps them.

A rule's ``hot`` may be shorter than :data:`SETTLE` (even ``0d``), but no trace leaves hot before
its last span is SETTLE old: spans of a trace still running arrive later, and a trace must never
be split between tiers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Sequence

from tracelake.archiver.keep import Hold, active_holds, hold_names_expr, pinned_condition
from tracelake.archiver.policy import RetentionPolicy
from tracelake.query.compile import ALL_AGGS, ARCHIVE, Compiler, aggs
from tracelake.query.filters import parse
from tracelake.query.params import Params
from tracelake.store.base import Store

FOREVER_MS = 7_258_118_400_000  # 2200-01-01: DeleteAfter of traces kept forever
NS = 1_000_000_000
SETTLE = timedelta(hours=1)  # no trace leaves hot before its last span is this old, whatever the rule
_SPAN_HI_NS = 4_102_444_800 * NS  # 2100-01-01: span subqueries of holds over the archive


def _ns(td) -> int:
    return int(td.total_seconds()) * NS


def leave_after(hot: timedelta) -> timedelta:
    """How long after its last span a trace of a rule with this ``hot`` leaves the hot tier."""
    return max(hot, SETTLE)


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


def candidates_sql(store: Store, policy: RetentionPolicy, now_ns: int, p: Params, run_id: str = "",
                   holds: Sequence[Hold] | None = None, include_pinned: bool = False) -> str:
    """SELECT of the index rows (trace_summary_archive columns, plus ``Action``) of every trace that
    leaves hot now. ``Action`` is 'delete' when the trace is already past hot + archive and no
    active hold matches it (a held trace goes to the archive instead). Traces pinned at ``now``
    stay hot: left out, unless ``include_pinned`` (the plan counts them, ``Pinned`` = 1).
    ``KeptBy`` names what keeps a trace from its rule's fate ('pin', 'hold: a, b' or '')."""
    if holds is None:
        holds = active_holds(store)
    cuts = [now_ns - _ns(leave_after(r.hot)) for r in policy.rules]
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
    hold_names = hold_names_expr(list(holds), Compiler(p, span_lo, span_hi))
    pinned = pinned_condition("Proj", now_ms)
    due = f"{delete_after} <= {now_ms}"
    return f"""
SELECT Proj AS Project, TraceId, fromUnixTimestamp64Nano(TS) AS Start, fromUnixTimestamp64Nano(TE) AS End,
       Root AS RootName, RootService, toUInt64(NSpans) AS SpanCount, toUInt64(Errors) AS ErrorCount,
       Svcs AS Services, Mods AS Models, toUInt64(InTok) AS InputTokens, toUInt64(OutTok) AS OutputTokens,
       CostUsd, UsageArr AS SpanUsage, Sess AS SessionId, Usr AS UserId, {day_expr} AS Day, {bytes_expr} AS Bytes,
       {p.s(run_id)} AS RunId, arrayElement({names_p}, RuleIdx + 1) AS Rule,
       fromUnixTimestamp64Milli({now_ms}) AS ArchivedAt,
       fromUnixTimestamp64Milli({delete_after}) AS DeleteAfter,
       if({due} AND empty(HoldNames), 'delete', 'archive') AS Action,
       Pinned, multiIf(Pinned, 'pin', {due} AND notEmpty(HoldNames),
                       concat('hold: ', arrayStringConcat(HoldNames, ', ')), '') AS KeptBy
FROM (
    SELECT *, {rule_idx} AS RuleIdx, {pinned} AS Pinned, {hold_names} AS HoldNames
    FROM (
        SELECT TraceId, {aggs(ALL_AGGS)}, mapValues(maxMap(SpanUsage)) AS UsageArr
        FROM trace_summary
        WHERE TraceId IN (SELECT TraceId FROM trace_summary WHERE Start < fromUnixTimestamp64Nano({cut}))
        GROUP BY Project, TraceId
        HAVING TE < {cut}
    )
)
WHERE RuleIdx >= 0 AND TE < arrayElement({cuts_p}, RuleIdx + 1){"" if include_pinned else " AND NOT Pinned"}
"""


def expired_condition(policy: RetentionPolicy, now_ns: int, p: Params, holds: Sequence[Hold] = (),
                      kept: bool = False) -> str:
    """A condition on archived_traces rows: past its rule's hot + archive (current policy), and
    neither pinned at ``now`` nor matched by one of ``holds``. With ``kept``: past its time but
    kept by a pin or hold (what the plan reports as kept)."""
    base = _expired_base(policy, now_ns, p)
    pinned = pinned_condition("Project", p.i(now_ns // 1_000_000))
    held = "0"
    if holds:
        scope = f"SELECT TraceId FROM archived_traces WHERE {base}"
        names = hold_names_expr(list(holds), Compiler(p, p.i(0), p.i(_SPAN_HI_NS), scope_ids=scope, tier=ARCHIVE))
        held = (f"(Project, TraceId) IN (SELECT Project, TraceId FROM (SELECT Project, TraceId, "
                f"{aggs(ALL_AGGS, ARCHIVE)} FROM archived_traces WHERE {base}) WHERE notEmpty({names}))")
    if kept:
        return f"({base} AND ({pinned} OR {held}))"
    return f"({base} AND NOT {pinned} AND NOT {held})"


def kept_by_expr(holds: Sequence[Hold], p: Params, scope: str = "") -> str:
    """For archived_traces rows: 'pin' or 'hold: a, b' (what keeps an expired archived trace);
    ``scope`` (a SELECT of trace ids) bounds the span reads of span-level hold terms."""
    if not holds:
        return "'pin'"
    names = hold_names_expr(list(holds), Compiler(p, p.i(0), p.i(_SPAN_HI_NS), scope_ids=scope, tier=ARCHIVE))
    return f"if(notEmpty({names}), concat('hold: ', arrayStringConcat({names}, ', ')), 'pin')"


def _expired_base(policy: RetentionPolicy, now_ns: int, p: Params) -> str:
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
    action: Literal["archive", "delete", "kept"]
    traces: int
    spans: int
    bytes: int
    kept_by: str = ""  # for 'kept' rows: 'pin' or 'hold: name, ...'


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

    def kept(self) -> dict[str, dict[str, int]]:
        """Per rule: traces kept, by what keeps them ('pin', 'hold: a, b')."""
        out: dict[str, dict[str, int]] = {}
        for r in self.rows:
            if r.action == "kept":
                acc = out.setdefault(r.rule, {})
                acc[r.kept_by] = acc.get(r.kept_by, 0) + r.traces
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"now": self.now.isoformat(), "rows": [r.__dict__ for r in self.rows], "totals": self.totals(),
                "kept": self.kept()}


def make_plan(store: Store, policy: RetentionPolicy, now: datetime | None = None) -> Plan:
    """What a run starting at ``now`` would move and delete, per rule and day; changes nothing.

    'archive' rows: traces leaving hot for the archive. 'delete' rows: archived traces past their
    time, and hot traces already past hot + archive (they pass through the archive and are deleted
    in the same run). 'kept' rows: traces a pin keeps hot, or a pin or hold keeps from deletion
    (a held trace leaving hot is also counted in 'archive': it moves, but is not deleted)."""
    now = now or datetime.now(timezone.utc)
    now_ns = int(now.timestamp() * NS)
    holds = active_holds(store)
    p = Params()
    sql = candidates_sql(store, policy, now_ns, p, holds=holds, include_pinned=True)
    moving = store.query_arrow(
        f"SELECT Rule, toString(Day) AS D, Action, KeptBy, count() AS T, sum(SpanCount) AS S, sum(Bytes) AS B "
        f"FROM ({sql}) GROUP BY Rule, D, Action, KeptBy ORDER BY D, Rule, Action", p.bound(store)).to_pylist()
    p2 = Params()
    expired = store.query_arrow(
        f"SELECT Rule, toString(Day) AS D, count() AS T, sum(SpanCount) AS S, sum(Bytes) AS B FROM archived_traces "
        f"WHERE {expired_condition(policy, now_ns, p2, holds)} GROUP BY Rule, D ORDER BY D, Rule",
        p2.bound(store)).to_pylist()
    p3 = Params()
    kept_cond = expired_condition(policy, now_ns, p3, holds, kept=True)
    kept_by = kept_by_expr(holds, p3, f"SELECT TraceId FROM archived_traces WHERE {kept_cond}")
    kept_archived = store.query_arrow(
        f"SELECT Rule, toString(Day) AS D, {kept_by} AS KeptBy, count() AS T, sum(NSpans) AS S, sum(Bytes) AS B "
        f"FROM (SELECT TraceId, Rule, Day, Bytes, {aggs(ALL_AGGS, ARCHIVE)} FROM archived_traces WHERE {kept_cond}) "
        f"GROUP BY Rule, D, KeptBy", p3.bound(store)).to_pylist()
    acc: dict[tuple[str, str, str, str], list[int]] = {}

    def add(rule: str, day: str, action: str, kept: str, r: dict[str, Any]) -> None:
        a = acc.setdefault((rule, day, action, kept), [0, 0, 0])
        a[0] += r["T"]
        a[1] += r["S"] or 0
        a[2] += r["B"] or 0

    for r in moving:
        if r["KeptBy"] != "pin":
            add(r["Rule"], r["D"], r["Action"], "", r)
        if r["KeptBy"]:
            add(r["Rule"], r["D"], "kept", r["KeptBy"], r)
    for r in expired:
        add(r["Rule"], r["D"], "delete", "", r)
    for r in kept_archived:
        add(r["Rule"], r["D"], "kept", r["KeptBy"], r)
    rows = [PlanRow(rule, day, action, t, sp, b, kept)  # type: ignore[arg-type]
            for (rule, day, action, kept), (t, sp, b) in acc.items()]
    order = {r.name: i for i, r in enumerate(policy.rules)}
    rows.sort(key=lambda r: (r.day, order.get(r.rule, len(order)), r.action, r.kept_by))
    return Plan(now, rows)
