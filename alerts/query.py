"""The values of many rules at many instants, in as few queries as possible.

Rules that share a window are answered by one query: the traces of the window are read once (the
dashboard's per-trace rows over both tiers, :data:`TraceRows`, given by the UI that owns them;
settled ones from :mod:`tracelake.alerts.cache`), each distinct filter becomes a flag on those
rows, each row is repeated per grouping, and each rule's aggregate is an ``-If`` aggregate over its
grouping's rows where its flag holds. 200 rules over three windows are three queries.

The same query answers an evaluation (one instant: ``now``) and a preview (every step over the
last days): a trace at ``TS`` counts for the instant ``t`` when ``t - window <= TS < t``, the
trace list's rule ("started in the range"). Preview and evaluation therefore agree by
construction; tests/alerts/test_alerts_preview.py checks it.
"""
from __future__ import annotations

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
    """The one place score aggregates are computed, over each trace's current score of a name (the
    newest of its trace- and span-level scores, as the list's scores column shows it; docs/scores.md):

    * ``avg_score(name)``: the average of those numbers over the rule's traces that have one
      (thumbs count up as 1 and down as 0; categories without a number are left out);
    * ``score_count(name=value)``: how many of the rule's traces have that current value.

    The traces' current scores of the name are read once per query (scalar subqueries over the
    ``scores`` table, keyed by project and trace: a shared trace id is a trace per project)."""
    key = "concat(toString(Proj), '/', TraceId)"
    current = (f"SELECT concat(toString(Project), '/', TraceId) AS k, argMax(Value, CreatedAt) AS v, "
               f"argMax(if(StringValue != '', StringValue, toString(Value)), CreatedAt) AS sv "
               f"FROM scores WHERE Name = {p.s(aggregate.score)} GROUP BY Project, TraceId")
    if aggregate.kind == "avg_score":
        score = f"transform({key}, (SELECT groupArray(k) FROM ({current})), (SELECT groupArray(v) FROM ({current})), nan)"
        return f"avgIf({score}, {cond} AND NOT isNaN({score}))", ("Proj",)
    if aggregate.kind == "score_count":
        matching = f"(SELECT k FROM ({current}) WHERE sv = lower({p.s(aggregate.value)}))"
        return f"countIf({cond} AND {key} IN {matching})", ("Proj",)
    raise ScoresUnavailable(f"{aggregate}: not a score aggregate")


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
            # Span-level terms read each tier's own span table; a cached row's spans may have been
            # archived since it was cached (tracelake.alerts.cache): either table then.
            arch = Compiler(p, lo, hi, tier=ARCHIVE)
            c_arch = arch.compile(node)
            needs |= arch.needs
            parts.append(f"((Tier = 'hot' AND {c_hot}) OR (Tier = 'archive' AND {c_arch}) "
                         f"OR (Tier = 'cached' AND ({c_hot} OR {c_arch})))")
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


def _rows(p: Params, lo: int, hi: int, visible: str, archive: bool, cols: tuple[str, ...], trace_rows: TraceRows,
          store: Store | None) -> str:
    """One row per trace started in [lo, hi): settled traces from the cache when that saves
    reading an hour or more (:mod:`tracelake.alerts.cache`), the rest built live."""
    if store is not None:
        import time

        from tracelake.alerts import cache

        settled = cache.settled_before(hi, time.time_ns())
        if (settled - lo >= cache.MIN_GAIN_NS and set(cols) <= set(cache.COLUMNS)
                and cache.ensure(store, trace_rows, lo, settled)):
            names = ", ".join(("TraceId", *cols, "Tier"))
            live = trace_rows(p, settled, hi, None, visible, archive, cols)
            return (f"SELECT {names} FROM ({cache.cached_rows(p, lo, settled, cols, archive)}) "
                    f"UNION ALL SELECT {names} FROM ({live})")
    return trace_rows(p, lo, hi, None, visible, archive, cols)


def _group_keys(groupings: list[str], cols: set[str]) -> str:
    """(grouping, key) pairs of a trace row: once per grouping its rules use; a trace counts under
    each model it used."""
    parts = []
    for g in groupings:
        if g == "":
            parts.append("[('', '')]")
        elif g == "model":
            cols.add("Mods")
            parts.append("arrayMap(m -> ('model', m), if(empty(Mods), [''], Mods))")
        else:
            cols.add(GROUP_KEYS[g])
            parts.append(f"[('{g}', toString({GROUP_KEYS[g]}))]")
    if groupings == [""]:
        return "('', '')"  # no grouping: one row per trace, no array join
    return f"arrayJoin(arrayConcat({', '.join(parts)}))"


def _batch_sql(batch: _Batch, points: list[int], trace_rows: TraceRows, visible: str, archive: bool,
               errors: dict[str, str], store: Store | None = None,
               use_cache: bool = False) -> tuple[str, Params, list[Rule]]:
    """One query for every rule of a window: the window's traces are built once, each row repeated
    per grouping (G) and key (K), each rule's aggregate taken over its grouping's rows where its
    filter holds."""
    p = Params()
    lo, hi = points[0] - batch.window_ns, points[-1]
    span_lo, span_hi = p.i(lo), p.i(hi + SPAN_SLACK_NS)
    cols: set[str] = {"TS"}
    selects: list[str] = []
    used: list[Rule] = []
    conditions: dict[tuple[str, str], tuple[str, set[str]]] = {}  # (filter, project) -> flag column, columns
    flags: list[str] = []
    for rule in batch.rules:
        try:
            key = (rule.filter, rule.project)
            if key not in conditions:
                node = parse(rule.filter) if rule.filter else None
                cond, needs = _condition(rule, node, p, span_lo, span_hi, archive)
                conditions[key] = (f"f{len(flags)}", needs)
                flags.append(f"toUInt8({cond}) AS f{len(flags)}")
            flag, needs = conditions[key]
            # Each distinct filter is computed once per trace (a flag), before rows repeat per group.
            cond = f"{flag} AND G = '{rule.group_by}'"  # a name from model.GROUP_BY, never the caller's text
            value, reads = value_sql(rule, cond, p)
        except (AlertError, ValueError) as exc:
            errors[rule.key] = str(exc)
            continue
        cols |= needs | set(reads)
        i = len(used)
        selects.append(f"{value} AS v{i}, countIf({cond}) AS n{i}")
        used.append(rule)
    groupings = sorted({r.group_by for r in used})
    keys = _group_keys(groupings or [""], cols)
    rows = _rows(p, lo, hi, visible, archive, tuple(sorted(cols)), trace_rows, store if use_cache else None)
    flagged = f"SELECT *, {', '.join(flags)} FROM ({rows})" if flags else rows
    sql = (f"SELECT P, G, K, {', '.join(selects) or '0 AS v0'} FROM (SELECT *, {_instant_sql(points, batch.window_ns)} "
           f"AS P, {keys} AS GK, GK.1 AS G, GK.2 AS K FROM ({flagged})) GROUP BY P, G, K")
    return sql, p, used


def values(store: Store, rules: list[Rule], points: list[int], trace_rows: TraceRows,
           use_cache: bool = False) -> tuple[Values, dict[str, str]]:
    """Each rule's value per group at each instant of ``points`` (ns, ascending, equally spaced),
    and the rules that could not be computed with why (a score rule before scores, a query that
    failed). Ungrouped rules always have the group '' (a count of nothing is 0; a rate of nothing
    is None); a group appears where its rule saw traces. ``use_cache``: settled traces of long
    windows from :mod:`tracelake.alerts.cache` (the evaluating engine only: one process owns the
    cache table); otherwise everything is built live (pages, previews, comparisons)."""
    out: Values = {r.key: ({"": [None] * len(points)} if not r.group_by else {}) for r in rules}
    errors: dict[str, str] = {}
    if not rules or not points:
        return out, errors
    batches: dict[int, _Batch] = {}
    for rule in rules:
        w = int(rule.window.total_seconds()) * 10**9
        batches.setdefault(w, _Batch(w)).rules.append(rule)
    for batch in batches.values():
        lo = points[0] - batch.window_ns
        archive = tiers.archive_reaches(store, lo)
        holder: dict[str, list[Rule]] = {}

        def read(visible: str) -> list[dict]:  # type: ignore[type-arg]
            sql, p, used = _batch_sql(batch, points, trace_rows, visible, archive, errors, store, use_cache)
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
            if row["G"] != rule.group_by:
                continue
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
