"""The values of many rules at many instants, in as few queries as possible.

Rules that share a window and a grouping are answered by one query: the traces of the window are
read once (the dashboard's per-trace rows over both tiers, :data:`TraceRows`, given by the UI that
owns them), each rule's filter becomes a condition on those rows, and each rule's aggregate an
``-If`` aggregate under it. 200 rules over a handful of windows cost a handful of scans.

The same query answers an evaluation (one instant: ``now``) and a preview (every step over the
last days): a trace at ``TS`` counts for the instant ``t`` when ``t - window <= TS < t``, the
trace list's rule ("started in the range"). Preview and evaluation therefore agree by
construction; tests/alerts/test_alerts_preview.py checks it.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

from tracelake.alerts.errors import AlertError, ScoresUnavailable
from tracelake.alerts.model import Aggregate, Rule
from tracelake.query.compile import ARCHIVE, HOT, Compiler, has_span_terms
from tracelake.query.filters import Node, parse
from tracelake.query.params import Params, query
from tracelake.store import tiers
from tracelake.store.base import Store

# (params, lo_ns, hi_ns, filter, hot-visibility clause, read the archive too, columns) -> SQL of one
# row per trace started in [lo, hi): TraceId, the columns (compile.py's aliases), Tier.
TraceRows = Callable[[Params, int, int, "Node | None", str, bool, tuple[str, ...]], str]
SPAN_SLACK_NS = 3600 * 10**9  # a trace's spans are looked for up to 1 h after its window, as the trace list does
GROUP_KEYS = {"user": "Usr", "service": "RootService", "project": "Proj", "session": "Sess"}
_COLUMNS = {"count": (), "error_rate": ("Errors",), "p50_latency": ("TS", "TE"), "p95_latency": ("TS", "TE"),
            "p99_latency": ("TS", "TE"), "tokens": ("InTok", "OutTok"), "cost": ("CostUsd",)}
_QUANTILES = {"p50_latency": 0.5, "p95_latency": 0.95, "p99_latency": 0.99}

# rule key (project/name) -> group key ('' when not grouped) -> value per instant (None: no data)
Values = dict[str, dict[str, list["float | None"]]]


def score_sql(aggregate: Aggregate, cond: str, p: Params) -> tuple[str, tuple[str, ...]]:
    """The one place score aggregates are computed (average score, count of a score value).

    Wired when the ``scores`` table (branch scores) is merged: until then every score rule is in
    state ``error`` saying so, and the rule file still validates."""
    raise ScoresUnavailable(f"{aggregate}: score aggregates need the scores table, not in this build yet")


def value_sql(rule: Rule, cond: str, p: Params) -> tuple[str, tuple[str, ...]]:
    """The rule's aggregate over the rows where ``cond`` holds, and the columns it reads. Cost is
    compile.py's ``CostUsd`` alias, so moving cost to query time changes it there only."""
    kind = rule.aggregate.kind
    if kind == "count":
        return f"countIf({cond})", ()
    if kind == "error_rate":
        return f"countIf({cond} AND Errors > 0) / greatest(countIf({cond}), 1)", _COLUMNS[kind]
    if kind in _QUANTILES:
        return f"quantileTDigestIf({_QUANTILES[kind]})(TE - TS, {cond}) / 1e6", _COLUMNS[kind]
    if kind == "tokens":
        return f"sumIf(InTok + OutTok, {cond})", _COLUMNS[kind]
    if kind == "cost":
        return f"sumIf(CostUsd, {cond})", _COLUMNS[kind]
    return score_sql(rule.aggregate, cond, p)


@dataclass
class _Batch:
    window_ns: int
    group_by: str
    rules: list[Rule] = field(default_factory=list)


def _condition(rule: Rule, node: Node | None, p: Params, lo: str, hi: str, archive: bool) -> tuple[str, set[str]]:
    """The rule's filter (and project) as a condition on a trace row of either tier."""
    needs: set[str] = set()
    parts = []
    if rule.project:
        needs.add("Proj")
        parts.append(f"Proj = {p.s(rule.project)}")
    if node is not None:
        hot = Compiler(p, lo, hi, tier=HOT)
        c_hot = hot.compile(node)
        needs |= hot.needs
        if archive and has_span_terms(node):
            # Span-level terms read each tier's own span table.
            arch = Compiler(p, lo, hi, tier=ARCHIVE)
            c_arch = arch.compile(node)
            needs |= arch.needs
            parts.append(f"((Tier = 'hot' AND {c_hot}) OR (Tier = 'archive' AND {c_arch}))")
        else:
            parts.append(c_hot)
    return (" AND ".join(f"({c})" for c in parts) or "1"), needs


def _instant_sql(points: list[int], window_ns: int) -> str:
    """The 1-based index of every instant whose window holds the row's ``TS`` (an array join: a
    trace counts at each of them). Instants are equally spaced; integer arithmetic only, so a
    trace on a boundary counts exactly where the evaluation at that instant counts it."""
    n = len(points)
    step = points[1] - points[0] if n > 1 else window_ns
    base = points[0] - step
    shift = (window_ns // step + 2) * step  # keeps the dividends positive: intDiv then floors
    lo_k = f"intDiv(TS - ({base}) + {shift}, {step}) - {shift // step} + 1"
    hi_k = f"intDiv(TS - ({base}) + {window_ns} + {shift}, {step}) - {shift // step}"
    return f"arrayJoin(range(toInt64(greatest(1, {lo_k})), toInt64(least({n}, {hi_k})) + 1))"


def _batch_sql(batch: _Batch, points: list[int], trace_rows: TraceRows, visible: str, archive: bool,
               errors: dict[str, str]) -> tuple[str, Params, list[Rule]]:
    p = Params()
    lo, hi = points[0] - batch.window_ns, points[-1]
    span_lo, span_hi = p.i(lo), p.i(hi + SPAN_SLACK_NS)
    cols: set[str] = {"TS"}
    selects: list[str] = []
    used: list[Rule] = []
    for rule in batch.rules:
        try:
            node = parse(rule.filter) if rule.filter else None
            cond, needs = _condition(rule, node, p, span_lo, span_hi, archive)
            value, reads = value_sql(rule, cond, p)
        except (AlertError, ValueError) as exc:
            errors[rule.key] = str(exc)
            continue
        cols |= needs | set(reads)
        i = len(used)
        selects.append(f"{value} AS v{i}, countIf({cond}) AS n{i}")
        used.append(rule)
    if batch.group_by == "model":
        cols.add("Mods")
        key = "arrayJoin(if(empty(Mods), [''], Mods))"  # a trace counts under each model it used
    elif batch.group_by:
        key = GROUP_KEYS[batch.group_by]
        cols.add(key)
    else:
        key = "''"
    rows = trace_rows(p, lo, hi, None, visible, archive, tuple(sorted(cols)))
    sql = (f"SELECT P, K, {', '.join(selects)} FROM (SELECT *, {_instant_sql(points, batch.window_ns)} AS P, "
           f"toString({key}) AS K FROM ({rows})) GROUP BY P, K")
    return sql, p, used


def values(store: Store, rules: list[Rule], points: list[int], trace_rows: TraceRows) -> tuple[Values, dict[str, str]]:
    """Each rule's value per group at each instant of ``points`` (ns, ascending, equally spaced),
    and the rules that could not be computed with why (a score rule before scores, a query that
    failed). Ungrouped rules always have the group '' (a count of nothing is 0; a rate of nothing
    is None); a group appears where its rule saw traces."""
    out: Values = {r.key: ({"": [None] * len(points)} if not r.group_by else {}) for r in rules}
    errors: dict[str, str] = {}
    if not rules or not points:
        return out, errors
    batches: dict[tuple[int, str], _Batch] = {}
    for rule in rules:
        w = int(rule.window.total_seconds()) * 10**9
        batches.setdefault((w, rule.group_by), _Batch(w, rule.group_by)).rules.append(rule)
    for batch in batches.values():
        lo = points[0] - batch.window_ns
        archive = tiers.archive_reaches(store, lo)
        holder: dict[str, list[Rule]] = {}

        def read(visible: str) -> list[dict]:  # type: ignore[type-arg]
            sql, p, used = _batch_sql(batch, points, trace_rows, visible, archive, errors)
            holder["used"] = used
            return query(store, sql, p) if used else []

        try:
            rows = tiers.read_hot(store, read)
        except Exception as exc:  # noqa: BLE001 - one failing batch must not stop the others
            for rule in batch.rules:
                errors.setdefault(rule.key, f"query failed: {type(exc).__name__}: {str(exc)[:300]}")
            continue
        _fill(out, holder.get("used", []), rows, len(points))
    return out, errors


def _fill(out: Values, used: list[Rule], rows: list[dict], n: int) -> None:  # type: ignore[type-arg]
    for row in rows:
        k = int(row["P"]) - 1
        for i, rule in enumerate(used):
            count = int(row[f"n{i}"])
            if rule.group_by and count == 0:
                continue  # this group has no trace of this rule
            value = row[f"v{i}"]
            if count < max(rule.min_traces, 1 if rule.aggregate.needs_traces else 0) or value is None:
                value = None
            groups = out[rule.key]
            series = groups.setdefault(row["K"], [None] * n)
            series[k] = None if value is None else float(value)
    # Ungrouped counts and sums over no trace at all are 0, not "no data".
    for rule in used:
        if not rule.group_by and not rule.aggregate.needs_traces and rule.min_traces == 0:
            series = out[rule.key][""]
            for k in range(n):
                if series[k] is None:
                    series[k] = 0.0


__all__ = ["SPAN_SLACK_NS", "TraceRows", "Values", "score_sql", "value_sql", "values"]
