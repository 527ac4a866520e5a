"""SQL for the UI: filter AST -> parameterized ClickHouse SQL, and the page queries.

Rules kept everywhere here:

* every user value is a ``{pN:Type}`` query parameter; the only text that reaches SQL from a
  filter is a fixed fragment chosen by the field's name (never the name itself);
* span reads deduplicate (``LIMIT 1 BY SpanId``: otel_traces is a ReplacingMergeTree);
* trace_summary holds several partial rows per trace until merged, so it is always aggregated
  ``GROUP BY TraceId``.

The trace list is the hot path. Aggregating every trace of a 24 h range costs ~400 ms at 120k
traces, so the list scans time windows newest-first (5 min, then x4 each time) and stops once a
page is full; each window computes only the aggregates the filter needs, and the page's rows are
then re-aggregated exactly by TraceId (primary key lookups). A trace whose spans straddle a window
edge can look newer in the window than it is: the exact pass drops it and it is found, whole, in
the older window.
"""
from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from tracelake.store.base import Store
from tracelake.ui.filters import And, Cmp, Node, Not, Or, Text

ERROR_CODES = "('Error', 'STATUS_CODE_ERROR')"
HEX_ID = re.compile(r"^[0-9a-f]{1,32}$")
SPAN_SLACK_NS = 3600 * 10**9  # spans of a trace are looked for up to 1 h after the trace's window
FIRST_WINDOW_NS = 300 * 10**9
SPAN_FILTER_FIRST_WINDOW_NS = 30 * 10**9
WINDOW_GROWTH = 8  # span-level terms read payloads: start smaller
MAX_TRACE_SPANS = 20_000

# --- parameters -----------------------------------------------------------------------------------
_ESCAPE_NEEDED: dict[int, bool] = {}


def _escape_needed(store: Store) -> bool:
    """Whether this store passes string parameters raw to ClickHouse, which reads them in escaped
    text form (chdb does; clickhouse-connect escapes itself). Probed once per store."""
    key = id(store)
    if key not in _ESCAPE_NEEDED:
        try:
            got = store.query_arrow("SELECT {p:String} AS v", {"p": "a\\\\b"}).column("v")[0].as_py()
            _ESCAPE_NEEDED[key] = got == "a\\b"
        except Exception:  # noqa: BLE001 - a store that chokes on backslashes needs escaping
            _ESCAPE_NEEDED[key] = True
    return _ESCAPE_NEEDED[key]


def _escape(value: str) -> str:
    return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r").replace("\0", "\\0"))


class Params:
    """Collects query parameters and hands out their ``{pN:Type}`` placeholders."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any, ch_type: str) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"{{{name}:{ch_type}}}"

    def s(self, value: str) -> str:
        return self.add(value, "String")

    def i(self, value: int) -> str:
        return self.add(int(value), "Int64")

    def f(self, value: float) -> str:
        return self.add(float(value), "Float64")

    def bound(self, store: Store) -> dict[str, Any]:
        if not _escape_needed(store):
            return dict(self.values)
        return {k: _escape(v) if isinstance(v, str) else v for k, v in self.values.items()}


def query(store: Store, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
    return store.query_arrow(sql, params.bound(store) if params else {}).to_pylist()


# --- filter compilation ---------------------------------------------------------------------------
# Trace-level aggregates, by alias. Filters name the aliases they need; the list computes only those.
AGGREGATES: dict[str, str] = {
    "TS": "toUnixTimestamp64Nano(min(Start))",
    "TE": "toUnixTimestamp64Nano(max(End))",
    "Root": "if(max(RootName) != '', max(RootName), argMinMerge(FirstSpanName))",
    "RootService": "max(RootService)",
    "NSpans": "uniqMerge(SpanCount)",
    "Errors": "length(groupUniqArrayArray(ErrorSpans))",
    "Svcs": "groupUniqArrayArray(Services)",
    "Mods": "groupUniqArrayArray(Models)",
    "InTok": "arraySum(mapValues(maxMap(InputTokens)))",
    "OutTok": "arraySum(mapValues(maxMap(OutputTokens)))",
    "CostUsd": "arraySum(mapValues(maxMap(Cost)))",
    "Sess": "max(SessionId)",
    "Usr": "max(UserId)",
    "Proj": "any(Project)",
}
ALL_AGGS = tuple(AGGREGATES)


def _like(value: str) -> str:
    """A '*' wildcard value as a LIKE pattern (the user's % and _ stay literal)."""
    esc = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return esc.replace("*", "%")


def _num_op(op: str) -> str:
    return {":": "=", "=": "=", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}[op]


@dataclass
class Compiled:
    """A filter as SQL: ``having`` over the trace aggregates, ``where`` for row-level prefilters."""

    having: str = "1"
    needs: set[str] = field(default_factory=set)


class Compiler:
    """Filter AST -> SQL over trace aggregates, with span-level terms as ``TraceId IN (...)``.

    ``lo_ns``/``hi_ns`` bound span-level subqueries: spans of a trace starting in the window."""

    def __init__(self, params: Params, span_lo: str, span_hi: str, scope_ids: str = "") -> None:
        self.p = params
        self.span_lo = span_lo
        self.span_hi = span_hi
        # When set (the exact pass over a page's traces), span subqueries only look at these
        # traces: the bloom index on TraceId makes that a few granules instead of a window scan.
        self.scope_ids = scope_ids
        self.needs: set[str] = set()
        self.selective = False  # a bloom-indexed needle (session, user, trace id) narrows the scan

    def compile(self, node: Node | None) -> str:
        if node is None:
            return "1"
        return self._node(node)

    def split(self, node: Node | None, row_lo: str | None, row_hi: str | None) -> tuple[str, str]:
        """(WHERE prefilter, HAVING) for the windowed list query.

        Top-level AND terms that select whole traces by a per-row property become
        ``TraceId IN (...)`` conditions in WHERE, so the GROUP BY only sees candidate traces
        (all of their rows: the subquery keeps traces, not rows). Span-level terms are exact
        there and leave the HAVING; trace_summary row properties (a service, model, error,
        session, user in some partial row) are necessary conditions, so the HAVING keeps them."""
        if node is None:
            return "1", "1"
        items = list(node.items) if isinstance(node, And) else [node]
        where: list[str] = []
        having: list[str] = []
        window = f"Start >= fromUnixTimestamp64Nano({row_lo}) AND Start < fromUnixTimestamp64Nano({row_hi})"
        bounds: list[str] = []
        for item in items:
            if is_span_term(item):
                if row_lo is not None:
                    where.append(self._node(item))
                continue
            if row_lo is None:  # HAVING only (the exact pass)
                having.append(self._node(item))
                continue
            row = self._row_condition(item)
            if row:
                where.append(f"TraceId IN (SELECT TraceId FROM trace_summary WHERE {window} AND {row})")
            bound = self._bound(item)
            if bound:
                bounds.append(bound)
            having.append(self._node(item))
        if bounds:
            # Cheap sums bound the exact (maxMap) totals: only traces within the bounds get the
            # expensive aggregation. 4x faster for rare token/cost filters.
            where.append(f"TraceId IN (SELECT TraceId FROM trace_summary WHERE {window} GROUP BY TraceId "
                         f"HAVING {' AND '.join(bounds)})")
        return " AND ".join(where) or "1", " AND ".join(having) or "1"

    def _bound(self, n: Node) -> str:
        """A necessary condition on cheap per-row sums for token/cost comparisons, or ''.

        Each partial row's map counts a span once, and a retried span may sit in two rows: the sum
        over rows is an upper bound of the trace total, the largest row a lower bound."""
        if isinstance(n, Cmp) and n.field.name == "duration" and n.op in (">", ">=", ":", "="):
            # Exact for the traces of the window (all their rows are in it), cheap min/max.
            op = "=" if n.op == ":" else n.op
            return f"toUnixTimestamp64Nano(max(End)) - toUnixTimestamp64Nano(min(Start)) {op} {self.p.i(int(n.value))}"
        if not isinstance(n, Cmp) or n.field.name not in ("tokens", "input_tokens", "output_tokens", "cost"):
            return ""
        cols = {"tokens": ("InputTokens", "OutputTokens"), "input_tokens": ("InputTokens",),
                "output_tokens": ("OutputTokens",), "cost": ("Cost",)}[n.field.name]
        row = " + ".join(f"arraySum(mapValues({c}))" for c in cols)
        value = self.p.f(float(n.value))
        if n.op in (">", ">="):
            return f"sum({row}) {n.op} {value}"
        if n.op in (":", "="):
            return f"sum({row}) >= {value} AND max({row}) <= {value}"
        if n.op in ("<", "<="):
            return f"max({row}) {n.op} {value}"
        return ""

    def _row_condition(self, n: Node) -> str:
        """A per-row necessary condition on trace_summary for a positive trace-level term, or ''."""
        if not isinstance(n, Cmp) or n.op == "!=" and n.field.name != "status":
            return ""
        name = n.field.name
        if name in ("service", "model"):
            col = "Services" if name == "service" else "Models"
            if n.wildcard:
                return f"arrayExists(x -> x LIKE {self.p.s(_like(str(n.value)))}, {col})"
            return f"has({col}, {self.p.s(str(n.value))})"
        if name == "status" and (n.value == "error") != (n.op == "!="):
            return "notEmpty(ErrorSpans)"
        if name in ("session", "user") and not n.wildcard:
            self.selective = True
            return f"{'SessionId' if name == 'session' else 'UserId'} = {self.p.s(str(n.value))}"
        return ""

    def _node(self, node: Node) -> str:
        if isinstance(node, And):
            return "(" + " AND ".join(self._node(n) for n in node.items) + ")"
        if isinstance(node, Or):
            return "(" + " OR ".join(self._node(n) for n in node.items) + ")"
        if isinstance(node, Not):
            return f"(NOT {self._node(node.item)})"
        if isinstance(node, Text):
            return self._spans(self._text(node.value))
        return self._cmp(node)

    def _text(self, value: str) -> str:
        v = self.p.s(value)
        return (f"(positionCaseInsensitive(SpanName, {v}) > 0 OR "
                f"arrayExists(x -> positionCaseInsensitive(x, {v}) > 0, mapValues(SpanAttributes)))")

    def _spans(self, cond: str) -> str:
        scope = f"TraceId IN ({self.scope_ids}) AND " if self.scope_ids else ""
        return (f"TraceId IN (SELECT TraceId FROM otel_traces WHERE {scope}Timestamp >= fromUnixTimestamp64Nano({self.span_lo}) "
                f"AND Timestamp < fromUnixTimestamp64Nano({self.span_hi}) AND {cond})")

    def _str_match(self, expr: str, c: Cmp, lower: bool = False) -> str:
        value = str(c.value).lower() if lower else str(c.value)
        if c.wildcard:
            test = f"{expr} LIKE {self.p.s(_like(value))}"
        else:
            test = f"{expr} = {self.p.s(value)}"
        return f"NOT ({test})" if c.op == "!=" else test

    def _list_match(self, alias: str, c: Cmp) -> str:
        self.needs.add(alias)
        if c.wildcard:
            test = f"arrayExists(x -> x LIKE {self.p.s(_like(str(c.value)))}, {alias})"
        else:
            test = f"has({alias}, {self.p.s(str(c.value))})"
        return f"NOT {test}" if c.op == "!=" else test

    def _cmp(self, c: Cmp) -> str:
        name = c.field.name
        if name == "service":
            return self._list_match("Svcs", c)
        if name == "model":
            return self._list_match("Mods", c)
        if name == "status":
            self.needs.add("Errors")
            want_error = (c.value == "error") != (c.op == "!=")
            return "Errors > 0" if want_error else "Errors = 0"
        if name in ("duration", "tokens", "input_tokens", "output_tokens", "cost", "spans"):
            expr = {"duration": "(TE - TS)", "tokens": "(InTok + OutTok)", "input_tokens": "InTok",
                    "output_tokens": "OutTok", "cost": "CostUsd", "spans": "NSpans"}[name]
            self.needs.update({"duration": ("TS", "TE"), "tokens": ("InTok", "OutTok")}.get(name, (expr,)))
            value = self.p.i(c.value) if name == "duration" else self.p.f(float(c.value))
            return f"{expr} {_num_op(c.op)} {value}"
        if name in ("session", "user", "name", "project"):
            alias = {"session": "Sess", "user": "Usr", "name": "Root", "project": "Proj"}[name]
            self.needs.add(alias)
            return self._str_match(alias, c)
        if name == "trace":
            test = f"startsWith(TraceId, {self.p.s(str(c.value))})"
            return f"NOT {test}" if c.op == "!=" else test
        # span-level fields: "some span of the trace ..."; '!=' means no span of the trace matches.
        if name == "span":
            cond = self._str_match("SpanName", _positive(c))
        elif name == "kind":
            kind = str(c.value).lower()
            cond = (f"(lower(SpanKind) = {self.p.s(kind)} OR lower(SpanKind) = {self.p.s('span_kind_' + kind)})"
                    if not c.wildcard else self._str_match("lower(SpanKind)", _positive(c), lower=True))
        elif name == "operation":
            cond = self._str_match("LlmOperation", _positive(c), lower=True)
        elif name == "provider":
            cond = self._str_match("LlmProvider", _positive(c), lower=True)
        elif name == "event":
            cond = (f"arrayExists(x -> x LIKE {self.p.s(_like(str(c.value)))}, Events.Name)" if c.wildcard
                    else f"has(Events.Name, {self.p.s(str(c.value))})")
        elif name in ("attr.<key>", "resource.<key>"):
            col = "SpanAttributes" if name == "attr.<key>" else "ResourceAttributes"
            key = self.p.s(c.key)
            if isinstance(c.value, float):  # ordered comparison: numeric
                cond = f"toFloat64OrNull({col}[{key}]) {_num_op(c.op)} {self.p.f(c.value)}"
                return self._spans(cond)
            if c.value == "*":
                cond = f"mapContains({col}, {key})"
            else:
                cond = self._str_match(f"{col}[{key}]", _positive(c))
        else:  # pragma: no cover - the parser only makes the fields above
            raise ValueError(name)
        sub = self._spans(cond)
        return f"NOT {sub}" if c.op == "!=" else sub


def is_span_term(node: Node) -> bool:
    """A positive term answered by span rows alone (free text, span-level fields)."""
    if isinstance(node, Text):
        return True
    return isinstance(node, Cmp) and node.field.level == "span" and node.op != "!="


def has_span_terms(node: Node | None) -> bool:
    """Whether the filter reads span rows (free text, span-level fields)."""
    if node is None:
        return False
    if isinstance(node, Text):
        return True
    if isinstance(node, Cmp):
        return node.field.level == "span"
    if isinstance(node, Not):
        return has_span_terms(node.item)
    return any(has_span_terms(n) for n in node.items)


def _positive(c: Cmp) -> Cmp:
    return Cmp(c.field, c.key, ":", c.value, c.raw, c.pos, c.wildcard)


# --- trace list -----------------------------------------------------------------------------------
@dataclass
class TraceRow:
    trace_id: str
    start_ns: int
    end_ns: int
    root: str
    root_service: str
    spans: int
    errors: int
    services: list[str]
    models: list[str]
    input_tokens: int
    output_tokens: int
    cost: float
    session: str
    user: str
    project: str

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)

    @property
    def status(self) -> str:
        return "error" if self.errors else "ok"

    def as_json(self) -> dict[str, Any]:
        return {"trace_id": self.trace_id, "start_ns": self.start_ns, "end_ns": self.end_ns,
                "duration_ms": self.duration_ns / 1e6, "name": self.root, "root_service": self.root_service,
                "status": self.status, "error_spans": self.errors, "spans": self.spans,
                "services": self.services, "models": self.models, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "cost_usd": self.cost, "session_id": self.session,
                "user_id": self.user, "project": self.project}


@dataclass
class TracePage:
    rows: list[TraceRow]
    next_cursor: str | None
    windows_scanned: int = 0


def encode_cursor(start_ns: int, trace_id: str) -> str:
    return base64.urlsafe_b64encode(f"{start_ns}:{trace_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str] | None:
    """(start_ns, trace_id) of the last row shown, or None if the cursor is not ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, tid = raw.split(":", 1)
        if not HEX_ID.match(tid):
            return None
        return int(ts), tid
    except (ValueError, UnicodeDecodeError):
        return None


def _row(r: dict[str, Any]) -> TraceRow:
    return TraceRow(r["TraceId"], int(r["TS"]), int(r["TE"]), r["Root"], r["RootService"], int(r["NSpans"]),
                    int(r["Errors"]), sorted(r["Svcs"]), sorted(r["Mods"]), int(r["InTok"]), int(r["OutTok"]),
                    float(r["CostUsd"]), r["Sess"], r["Usr"], r["Proj"])


def _aggs(names: Iterable[str]) -> str:
    return ", ".join(f"{AGGREGATES[n]} AS {n}" for n in names)


def _exact(store: Store, node: Node | None, ids: list[str], lo_ns: int, hi_ns: int) -> dict[str, TraceRow]:
    """Full aggregates of ``ids`` over all their rows, keeping those that start in [lo, hi)
    and pass the filter on exact data."""
    if not ids:
        return {}
    p = Params()
    id_list = ", ".join(p.s(t) for t in ids)
    comp = Compiler(p, p.i(lo_ns), p.i(hi_ns + SPAN_SLACK_NS), scope_ids=id_list)
    # Top-level span terms were answered exactly by the candidate query (they select whole
    # traces); only the trace-level rest is re-checked on the complete aggregates.
    _, having = comp.split(node, None, None)
    sql = (f"SELECT TraceId, {_aggs(ALL_AGGS)} FROM trace_summary WHERE TraceId IN ({id_list}) "
           f"GROUP BY TraceId HAVING TS >= {p.i(lo_ns)} AND TS < {p.i(hi_ns)} AND {having}")
    return {r["TraceId"]: _row(r) for r in query(store, sql, p)}


def list_traces(store: Store, node: Node | None, lo_ns: int, hi_ns: int, cursor: tuple[int, str] | None = None,
                limit: int = 50) -> TracePage:
    """Newest-first page of traces that started in [lo_ns, hi_ns) and match ``node``."""
    rows: list[TraceRow] = []
    upper_ts, upper_id = (cursor if cursor else (hi_ns, ""))
    window = SPAN_FILTER_FIRST_WINDOW_NS if has_span_terms(node) else FIRST_WINDOW_NS
    # Start the first window at the newest trace, not at the range's end: ranges are often wider
    # than the data (a 7-day range over traces of this morning).
    p0 = Params()
    newest = query(store, f"SELECT toUnixTimestamp64Nano(max(Start)) AS M, count() AS N FROM trace_summary "
                          f"WHERE Start >= fromUnixTimestamp64Nano({p0.i(lo_ns)}) "
                          f"AND Start < fromUnixTimestamp64Nano({p0.i(upper_ts)})", p0)
    if not newest or not newest[0]["N"]:
        return TracePage([], None, 0)
    newest_ts = int(newest[0]["M"]) + 1
    if not upper_id:
        upper_ts = min(upper_ts, newest_ts)
    scanned = 0
    while len(rows) <= limit and upper_ts > lo_ns:
        w_lo = max(lo_ns, upper_ts - window)
        want = limit + 1 - len(rows)
        p = Params()
        comp = Compiler(p, p.i(w_lo), p.i(upper_ts + SPAN_SLACK_NS))
        prefilter, having = comp.split(node, p.i(w_lo), p.i(upper_ts + SPAN_SLACK_NS))
        if comp.selective and w_lo > lo_ns:
            # Few traces match anywhere: one pass over the whole range beats growing windows.
            window = upper_ts - lo_ns
            continue
        needs = ["TS"] + sorted(comp.needs - {"TS"})
        # (TS, TraceId) < upper: the cursor, or the previous window's lower edge.
        if upper_id:
            bound = f"(TS < {p.i(upper_ts)} OR (TS = {p.i(upper_ts)} AND TraceId < {p.s(upper_id)}))"
        else:
            bound = f"TS < {p.i(upper_ts)}"
        sql = (f"SELECT TraceId, {_aggs(needs)} FROM trace_summary "
               f"WHERE Start >= fromUnixTimestamp64Nano({p.i(w_lo)}) "
               f"AND Start < fromUnixTimestamp64Nano({p.i(upper_ts + SPAN_SLACK_NS)}) AND {prefilter} "
               f"GROUP BY TraceId HAVING TS >= {p.i(w_lo)} AND {bound} AND {having} "
               f"ORDER BY TS DESC, TraceId DESC LIMIT {int(want) + 8}")
        cands = query(store, sql, p)
        scanned += 1
        exact = _exact(store, node, [c["TraceId"] for c in cands], w_lo, hi_ns)
        for c in cands:
            r = exact.get(c["TraceId"])
            if r is not None and (r.start_ns, r.trace_id) < (upper_ts, upper_id or "\uffff"):
                rows.append(r)
        if len(cands) >= want + 8:
            # The window had more: carry on below the last candidate.
            last = cands[-1]
            upper_ts, upper_id = int(last["TS"]), last["TraceId"]
        else:
            upper_ts, upper_id = w_lo, ""
            window *= WINDOW_GROWTH
    rows.sort(key=lambda r: (r.start_ns, r.trace_id), reverse=True)
    # Dedupe (a straddling trace can be a candidate of two windows).
    seen: set[str] = set()
    uniq = [r for r in rows if not (r.trace_id in seen or seen.add(r.trace_id))]  # type: ignore[func-returns-value]
    page = uniq[:limit]
    nxt = encode_cursor(page[-1].start_ns, page[-1].trace_id) if len(uniq) > limit and page else None
    return TracePage(page, nxt, scanned)


# --- one trace ------------------------------------------------------------------------------------
@dataclass
class SpanRow:
    span_id: str
    parent_id: str
    name: str
    kind: str
    service: str
    start_ns: int
    duration_ns: int
    status: str  # ok / error / unset
    status_message: str
    operation: str
    model: str
    input_tokens: int
    output_tokens: int
    cost: float
    n_events: int
    has_exception: bool
    depth: int = 0
    children: int = 0
    orphan: bool = False

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_ns

    def as_json(self) -> dict[str, Any]:
        return {"span_id": self.span_id, "parent_span_id": self.parent_id, "name": self.name, "kind": self.kind,
                "service": self.service, "start_ns": self.start_ns, "duration_ms": self.duration_ns / 1e6,
                "status": self.status, "status_message": self.status_message, "operation": self.operation,
                "model": self.model, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cost_usd": self.cost, "events": self.n_events, "depth": self.depth, "children": self.children}


def _status(code: str) -> str:
    c = code.lower()
    if "error" in c:
        return "error"
    if c in ("ok", "status_code_ok"):
        return "ok"
    return "unset"


def trace_window(store: Store, trace_id: str) -> tuple[int, int] | None:
    """The trace's [start, end] in ns from the lookup table, widened by a second each side
    (the table keeps whole seconds)."""
    p = Params()
    rows = query(store, "SELECT toUnixTimestamp(min(Start)) AS s, toUnixTimestamp(max(End)) AS e, count() AS n "
                        f"FROM otel_traces_trace_id_ts WHERE TraceId = {p.s(trace_id)}", p)
    if not rows or not rows[0]["n"]:
        return None
    return (int(rows[0]["s"]) - 1) * 10**9, (int(rows[0]["e"]) + 2) * 10**9


SPAN_COLUMNS = ("SpanId, ParentSpanId, SpanName, SpanKind, ServiceName, toUnixTimestamp64Nano(Timestamp) AS TsNs, "
                "Duration, StatusCode, StatusMessage, LlmOperation, LlmModel, InputTokens, OutputTokens, CostUsd, "
                "length(Events.Name) AS NEvents, has(Events.Name, 'exception') AS HasExc")


def _span_row(r: dict[str, Any]) -> SpanRow:
    """A SpanRow from a result row holding SPAN_COLUMNS."""
    return SpanRow(r["SpanId"], r["ParentSpanId"], r["SpanName"], r["SpanKind"], r["ServiceName"], int(r["TsNs"]),
                   int(r["Duration"]), _status(r["StatusCode"]), r["StatusMessage"], r["LlmOperation"], r["LlmModel"],
                   int(r["InputTokens"]), int(r["OutputTokens"]), float(r["CostUsd"]), int(r["NEvents"]),
                   bool(r["HasExc"]))


def _within(p: Params, window: tuple[int, int]) -> str:
    """Spans inside a trace's time window (from trace_window), so the primary key prunes parts."""
    return (f"Timestamp >= fromUnixTimestamp64Nano({p.i(window[0])}) "
            f"AND Timestamp <= fromUnixTimestamp64Nano({p.i(window[1])})")


def get_trace(store: Store, trace_id: str) -> list[SpanRow] | None:
    """The trace's spans in tree (depth-first, start-ordered) order, or None if unknown."""
    win = trace_window(store, trace_id)
    if win is None:
        return None
    p = Params()
    sql = (f"SELECT {SPAN_COLUMNS} FROM otel_traces WHERE TraceId = {p.s(trace_id)} "
           f"AND {_within(p, win)} "
           f"ORDER BY TsNs, SpanId LIMIT 1 BY SpanId LIMIT {MAX_TRACE_SPANS}")
    spans = [_span_row(r) for r in query(store, sql, p)]
    return tree_order(spans)


def tree_order(spans: list[SpanRow]) -> list[SpanRow]:
    """Depth-first order with depths; spans whose parent is missing become roots (marked orphan)."""
    ids = {s.span_id for s in spans}
    kids: dict[str, list[SpanRow]] = {}
    roots: list[SpanRow] = []
    for s in spans:
        if s.parent_id and s.parent_id in ids and s.parent_id != s.span_id:
            kids.setdefault(s.parent_id, []).append(s)
        else:
            s.orphan = bool(s.parent_id)
            roots.append(s)
    out: list[SpanRow] = []
    seen: set[str] = set()
    stack = [(r, 0) for r in reversed(roots)]
    while stack:  # iterative: deep traces must not hit the recursion limit
        s, depth = stack.pop()
        if s.span_id in seen:
            continue
        seen.add(s.span_id)
        s.depth = depth
        ch = kids.get(s.span_id, [])
        s.children = len(ch)
        out.append(s)
        stack.extend((c, depth + 1) for c in reversed(ch))
    # Cycles (a span whose ancestors loop) leave spans unvisited: show them at the end, flat.
    out.extend(s for s in spans if s.span_id not in seen)
    return out


@dataclass
class SpanDetail:
    row: SpanRow
    trace_id: str
    attributes: dict[str, str]
    resource: dict[str, str]
    scope: str
    events: list[dict[str, Any]]
    links: list[dict[str, str]]


def get_span(store: Store, trace_id: str, span_id: str) -> SpanDetail | None:
    win = trace_window(store, trace_id)
    if win is None:
        return None
    p = Params()
    sql = (f"SELECT {SPAN_COLUMNS}, SpanAttributes, ResourceAttributes, ScopeName, ScopeVersion, "
           f"arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS EvTs, Events.Name AS EvName, "
           f"Events.Attributes AS EvAttrs, Links.TraceId AS LTrace, Links.SpanId AS LSpan "
           f"FROM otel_traces WHERE TraceId = {p.s(trace_id)} AND SpanId = {p.s(span_id)} "
           f"AND {_within(p, win)} "
           f"LIMIT 1")
    rows = query(store, sql, p)
    if not rows:
        return None
    r = rows[0]
    row = _span_row(r)
    events = [{"time_ns": int(t), "name": n, "attributes": dict(a)}
              for t, n, a in zip(r["EvTs"], r["EvName"], r["EvAttrs"])]
    links = [{"trace_id": t, "span_id": s} for t, s in zip(r["LTrace"], r["LSpan"])]
    scope = r["ScopeName"] + (f" {r['ScopeVersion']}" if r["ScopeVersion"] else "")
    return SpanDetail(row, trace_id, dict(r["SpanAttributes"]), dict(r["ResourceAttributes"]), scope, events, links)


def attachment_meta(store: Store, shas: list[str]) -> dict[str, dict[str, Any]]:
    """sha256 -> {mime_type, size} from the attachments table, when it exists (issue 4)."""
    shas = [s for s in dict.fromkeys(shas) if re.fullmatch(r"[0-9a-f]{64}", s)][:200]
    if not shas:
        return {}
    p = Params()
    try:
        rows = query(store, "SELECT Sha256, any(MimeType) AS MimeType, max(Size) AS Size FROM attachments "
                            f"WHERE Sha256 IN ({', '.join(p.s(s) for s in shas)}) GROUP BY Sha256", p)
    except Exception:  # noqa: BLE001 - no attachments table yet: render by what the span says
        return {}
    return {r["Sha256"]: {"mime_type": r["MimeType"], "size": int(r["Size"])} for r in rows}


# --- sessions -------------------------------------------------------------------------------------
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
    sql = (f"SELECT TraceId, {_aggs(ALL_AGGS)} FROM trace_summary WHERE TraceId IN "
           f"(SELECT TraceId FROM trace_summary WHERE SessionId = {p.s(session_id)}) "
           f"GROUP BY TraceId ORDER BY TS ASC LIMIT {int(limit)}")
    return [_row(r) for r in query(store, sql, p)]


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


# --- dashboard ------------------------------------------------------------------------------------
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


def dashboard(store: Store, lo_ns: int, hi_ns: int, node: Node | None = None) -> dict[str, Any]:
    """Time series of requests, errors, latency, tokens and cost; totals by model and by service."""
    step = bucket_seconds(lo_ns, hi_ns)
    p = Params()
    comp = Compiler(p, p.i(lo_ns), p.i(hi_ns + SPAN_SLACK_NS))
    having = comp.compile(node)
    inner = (f"SELECT TraceId, {_aggs(('TS', 'TE', 'Errors', 'InTok', 'OutTok', 'CostUsd', 'Svcs', 'Mods', 'Root', 'Sess', 'Usr', 'Proj', 'NSpans'))} "
             f"FROM trace_summary WHERE Start >= fromUnixTimestamp64Nano({p.i(lo_ns)}) "
             f"AND Start < fromUnixTimestamp64Nano({p.i(hi_ns)}) GROUP BY TraceId "
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
                    f"AND LlmModel != '' LIMIT 1 BY TraceId, SpanId) GROUP BY K ORDER BY Calls DESC LIMIT 20")
    by_model = query(store, by_model_sql, p2)
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


def now_ns() -> int:
    return time.time_ns()
