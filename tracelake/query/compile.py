"""Filter AST -> parameterized ClickHouse SQL over trace aggregates.

Rules kept everywhere here:

* every user value is a ``{pN:Type}`` query parameter; the only text that reaches SQL from a
  filter is a fixed fragment chosen by the field's name (never the name itself);
* trace-level terms are conditions on aggregates named by alias (:data:`AGGREGATES`); the caller
  computes only the aliases in :attr:`Compiler.needs`;
* span-level terms ("some span of the trace ...") become ``TraceId IN (SELECT TraceId FROM
  <spans> ...)`` bounded by a time window, so they read one window of span rows.

Two tiers answer the same filter (docs/archive.md): the hot tier aggregates ``trace_summary``'s
partial rows (:data:`AGGREGATES`); the archive's trace index ``archived_traces`` holds one row per
trace with finalized values (:data:`ARCHIVE_COLUMNS`), and its spans are ``otel_traces_archive``,
partitioned by the trace's ``Day``. A :class:`Tier` names both, and the compiled condition is the
same text over the same aliases.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from tracelake.query.filters import And, Cmp, Node, Not, Or, Text
from tracelake.query.params import Params
from tracelake.query.text_search import term_sql
from tracelake.store.search_text import ARCHIVE_VIEW_TEXT, HOT_TEXT
from tracelake.store import cost_schema as cost

ERROR_CODES = "('Error', 'STATUS_CODE_ERROR')"

_USAGE = "mapValues(maxMap(SpanUsage))"

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
    # Priced when read from the usage kept per LLM span (store.cost_schema): each span once, after
    # maxMap dropped a retried span's second copy.
    "CostUsd": cost.at_read(cost.usage_cost(_USAGE)),
    "Unpriced": cost.at_read(cost.usage_unpriced(_USAGE)),
    "CacheReadTok": cost.usage_tokens(_USAGE, cost.USAGE_POS["CacheReadTokens"]),
    "CacheWriteTok": cost.usage_tokens(_USAGE, cost.USAGE_POS["CacheWriteTokens"]),
    "ReasonTok": cost.usage_tokens(_USAGE, cost.USAGE_POS["ReasoningTokens"]),
    "Sess": "max(SessionId)",
    "Usr": "max(UserId)",
    "Proj": "any(Project)",
}
ALL_AGGS = tuple(AGGREGATES)
COST_MAP = "Cost"  # trace_summary's per-span cost map (priced when read)
# Cost is priced when read: a per-row bound would price every span of the window once more before
# the exact pass prices them again, so cost filters get no bound (tokens keep theirs).
COST_BOUND = False

# The same aliases over the archive's trace index (archived_traces): one finalized row per trace.
ARCHIVE_COLUMNS: dict[str, str] = {
    "TS": "toUnixTimestamp64Nano(Start)",
    "TE": "toUnixTimestamp64Nano(End)",
    "Root": "RootName",
    "RootService": "RootService",
    "NSpans": "SpanCount",
    "Errors": "ErrorCount",
    "Svcs": "Services",
    "Mods": "Models",
    "InTok": "InputTokens",
    "OutTok": "OutputTokens",
    "CostUsd": "CostUsd",  # priced when read by the archived_traces view
    "Unpriced": "Unpriced",
    "CacheReadTok": "CacheReadTokens",
    "CacheWriteTok": "CacheWriteTokens",
    "ReasonTok": "ReasoningTokens",
    "Sess": "SessionId",
    "Usr": "UserId",
    "Proj": "Project",
}
assert ARCHIVE_COLUMNS.keys() == AGGREGATES.keys()


@dataclass(frozen=True)
class Tier:
    """Where a tier's traces are: the alias expressions over its trace table, its span table, and
    whether spans are partitioned by the trace's ``Day`` (then span subqueries bound ``Day`` too,
    so they read only the partitions of the window), and a span's searchable text over its span
    table's columns (tracelake.store.search_text)."""

    name: str
    columns: dict[str, str]
    spans_table: str
    day_partitioned: bool
    text: str = ARCHIVE_VIEW_TEXT


HOT = Tier("hot", AGGREGATES, "otel_traces", False, HOT_TEXT)
ARCHIVE = Tier("archive", ARCHIVE_COLUMNS, "otel_traces_archive", True)


def aggs(names: Iterable[str], tier: Tier = HOT) -> str:
    """``expr AS alias, ...`` for the named trace aggregates (hot) or index columns (archive)."""
    return ", ".join(f"{tier.columns[n]} AS {n}" for n in names)


def _like(value: str) -> str:
    """A '*' wildcard value as a LIKE pattern (the user's % and _ stay literal)."""
    esc = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return esc.replace("*", "%")


def _num_op(op: str) -> str:
    return {":": "=", "=": "=", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}[op]


class Compiler:
    """Filter AST -> SQL over trace aggregates, with span-level terms as ``TraceId IN (...)``.

    ``lo_ns``/``hi_ns`` bound span-level subqueries: spans of a trace starting in the window."""

    def __init__(self, params: Params, span_lo: str, span_hi: str, scope_ids: str = "", tier: Tier = HOT) -> None:
        self.p = params
        self.tier = tier
        self.span_lo = span_lo
        self.span_hi = span_hi
        # When set (the exact pass over a page's traces), span subqueries only look at these
        # traces: the bloom index on TraceId makes that a few granules instead of a window scan.
        self.scope_ids = scope_ids
        self.needs: set[str] = set()
        self.selective = False  # a bloom-indexed needle (session, user, trace id) narrows the scan
        self._scored_sql: dict[tuple, str] = {}
        self.score_names: set[str] = set()  # of top-level positive score terms (the list may scan the range at once)

    def compile(self, node: Node | None) -> str:
        if node is None:
            return "1"
        return self._node(node)

    def split(self, node: Node | None, row_lo: str | None, row_hi: str | None) -> tuple[str, str]:
        """(WHERE prefilter, HAVING) for the hot tier's windowed list query.

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
        if n.field.name == "cost" and not COST_BOUND:
            return ""
        cols = {"tokens": ("InputTokens", "OutputTokens"), "input_tokens": ("InputTokens",),
                "output_tokens": ("OutputTokens",), "cost": (COST_MAP,)}[n.field.name]
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
        if name == "pinned" and _pinned(n).startswith("TraceId IN"):
            return _pinned(n)
        if name in ("score.<name>", "has"):
            self.score_names.add(n.key)
            return f"(Project, TraceId) IN ({self._scored(n)})"
        if name in ("session", "user") and not n.wildcard:
            self.selective = True
            return f"{'SessionId' if name == 'session' else 'UserId'} = {self.p.s(str(n.value))}"
        return ""

    def _scored(self, c: Cmp) -> str:
        """One text per score term: the WHERE prefilter and the HAVING then name the same subquery,
        which ClickHouse builds once per query."""
        key = (c.key, c.op, c.value, c.wildcard)
        if key not in self._scored_sql:
            # The exact pass over a page's traces: their scores only.
            among = f"TraceId IN ({self.scope_ids})" if self.scope_ids else ""
            self._scored_sql[key] = _scored_sql(self.p, c, among)
        return self._scored_sql[key]

    def _node(self, node: Node) -> str:
        if isinstance(node, And):
            return "(" + " AND ".join(self._node(n) for n in node.items) + ")"
        if isinstance(node, Or):
            return "(" + " OR ".join(self._node(n) for n in node.items) + ")"
        if isinstance(node, Not):
            return f"(NOT {self._node(node.item)})"
        if isinstance(node, Text):
            return self._spans(term_sql(self.p, node, self.tier.text))
        return self._cmp(node)


    def _spans(self, cond: str) -> str:
        scope = f"TraceId IN ({self.scope_ids}) AND " if self.scope_ids else ""
        days = ""
        if self.tier.day_partitioned:
            days = (f"Day >= toDate(fromUnixTimestamp64Nano({self.span_lo})) "
                    f"AND Day <= toDate(fromUnixTimestamp64Nano({self.span_hi})) AND ")
        return (f"TraceId IN (SELECT TraceId FROM {self.tier.spans_table} WHERE {scope}{days}"
                f"Timestamp >= fromUnixTimestamp64Nano({self.span_lo}) "
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
        if name == "pinned":
            return _pinned(c)
        if name == "unpriced":
            self.needs.add("Unpriced")
            return "Unpriced > 0" if (c.value == "true") != (c.op == "!=") else "Unpriced = 0"
        if name in ("score.<name>", "has"):
            self.needs.add("Proj")
            test = f"(Proj, TraceId) IN ({self._scored(_positive(c) if c.op == '!=' else c)})"
            return f"NOT {test}" if c.op == "!=" else test
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


def _scored_sql(p: Params, c: Cmp, among: str = "") -> str:
    """``SELECT Project, TraceId`` of the traces with a target (the trace or a span) whose current
    score ``c.key`` (its newest: CreatedAt, in microseconds) passes ``c`` (a positive comparison),
    among the traces ``among`` allows. The ``scores`` table serves both tiers (docs/scores.md); a
    caller's store reads its projects' rows."""
    name = p.s(c.key) + (f" AND {among}" if among else "")
    if c.value == "*":
        return f"SELECT Project, TraceId FROM scores WHERE Name = {name}"
    if isinstance(c.value, float):
        test = f"argMax(Value, CreatedAt) {_num_op(c.op)} {p.f(c.value)}"
    elif c.wildcard:
        test = f"argMax(StringValue, CreatedAt) LIKE {p.s(_like(str(c.value)))}"
    else:
        test = f"argMax(StringValue, CreatedAt) = {p.s(str(c.value))}"
    return f"SELECT Project, TraceId FROM scores WHERE Name = {name} GROUP BY Project, TraceId, SpanId HAVING {test}"


def _pinned(c: Cmp) -> str:
    """``pinned:true``: the trace has an active pin (tracelake.archiver.keep), in either tier."""
    from tracelake.store.keep_schema import PINNED_TRACES_SQL

    want = (c.value == "true") != (c.op == "!=")
    return f"TraceId {'IN' if want else 'NOT IN'} ({PINNED_TRACES_SQL})"


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
