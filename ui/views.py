"""Page data shared by the HTML pages and the JSON API: request params in, plain data out."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool

from tracelake.query.filters import Explained, FilterError, explain
from tracelake.store import tiers
from tracelake.store.base import Store
from tracelake.store.scores import latest_by_trace
from tracelake.ui import messages, queries
from tracelake.ui.highlight import NO_HIGHLIGHT, Highlight, free_text_terms, searchable_key
from tracelake.ui.render import TimeRange, time_range

TRACE_ID_RE = re.compile(r"^[0-9a-fA-F]{1,32}$")
SPAN_ID_RE = re.compile(r"^[0-9a-fA-F]{1,16}$")
PAGE_SIZES = (25, 50, 100, 200)


@dataclass
class ListView:
    q: str
    filt: Explained
    tr: TimeRange
    limit: int
    cursor: str = ""
    page: queries.trace_list.TracePage | None = None
    cursor_error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    hl: Highlight = NO_HIGHLIGHT  # the filter's free text: marked in the rows, carried to the trace page

    @property
    def error(self) -> FilterError | None:
        return self.filt.error


def clamp_limit(limit: int | None) -> int:
    if not limit:
        return 50
    return max(1, min(200, int(limit)))


async def trace_list(store: Store, q: str, range_: str | None, frm: str | None, to: str | None,
                     cursor: str | None, limit: int | None) -> ListView:
    view = ListView(q or "", explain(q or ""), time_range(range_, frm, to), clamp_limit(limit), cursor or "")
    if view.error is not None:
        return view
    cur = None
    if cursor:
        cur = queries.trace_list.decode_cursor(cursor)
        if cur is None:
            view.cursor_error = "the page cursor is not valid; showing the first page"
    view.page = await run_in_threadpool(queries.trace_list.list_traces, store, view.filt.node, view.tr.lo_ns, view.tr.hi_ns,
                                        cur, view.limit)
    view.hl = Highlight(free_text_terms(view.filt.node))
    if view.hl and view.page.rows:
        # Which span matched: one more query per tier, for this page's traces only.
        found = await run_in_threadpool(queries.matched.matched_spans, store, view.hl.terms, view.page.rows)
        for row in view.page.rows:
            row.matched = found.get(row.trace_id)
    # The list's scores column: each score name's current value per trace of the page.
    view.extra["scores"] = await run_in_threadpool(latest_by_trace, store, [r.trace_id for r in view.page.rows])
    return view


def valid_trace_id(trace_id: str) -> str | None:
    return trace_id.lower() if TRACE_ID_RE.match(trace_id) else None


FULL_TRACE_ID_RE = re.compile(r"^\s*([0-9a-fA-F]{32})\s*$")


def bare_trace_id(q: str) -> str | None:
    """The trace id when the search box holds nothing else (someone pasted one from their logs)."""
    m = FULL_TRACE_ID_RE.match(q or "")
    return m.group(1).lower() if m else None


async def trace_exists(store: Store, trace_id: str) -> bool:
    """Whether the caller can open this trace (in either tier)."""
    return await run_in_threadpool(lambda: tiers.locate(store, trace_id) is not None)


def valid_span_id(span_id: str) -> str | None:
    return span_id.lower() if SPAN_ID_RE.match(span_id) else None


SMALL_TRACE = 2_000  # up to this many spans the page holds every row (collapse happens in the browser)
WINDOW_ROWS = 100  # a bigger trace's page holds windows of this many rows, loaded as they come in view
PATH_ROWS = 100  # opened at a deep span: the root and its nearest ancestors are shown above it
MAX_STATE_IDS = 2_000  # span ids a viewer's collapse/expand state may name in one request


@dataclass
class TraceView:
    trace_id: str
    totals: queries.trace_tree.TraceTotals
    location: tiers.Location
    rows: list  # SpanRow | Group: every span of a small trace, else one window of a big one
    next: str | None = None  # windowed: the span id the next window starts at
    windowed: bool = False
    above: int = 0  # windowed and opened at a deep span: rows above it that are not in the page
    root_service: str = ""  # the first root's service (rows of other services say theirs)
    state_change: dict[str, list[str]] | None = None  # a revealed span: what the viewer's state gains
    hl: Highlight = NO_HIGHLIGHT  # a search to show (hl=): matching spans marked, their words highlighted
    hits: int = 0  # spans of the whole trace matching it
    hit_prefix: np.ndarray | None = None  # running count of matching spans in tree order (folded groups)

    @property
    def tier(self) -> str:
        return self.location.tier

    @property
    def root(self) -> queries.trace.SpanRow:
        return next(r for r in self.rows if isinstance(r, queries.trace.SpanRow))

    start_ns = property(lambda self: self.totals.start_ns)
    end_ns = property(lambda self: self.totals.end_ns)
    duration_ns = property(lambda self: self.totals.duration_ns)
    errors = property(lambda self: self.totals.errors)
    services = property(lambda self: self.totals.services)
    input_tokens = property(lambda self: self.totals.input_tokens)
    output_tokens = property(lambda self: self.totals.output_tokens)
    cost = property(lambda self: self.totals.cost)
    unpriced = property(lambda self: self.totals.unpriced)

    def group_hits(self, g: queries.trace_tree.Group) -> int:
        """Matching spans inside a folded group (its members and their subtrees)."""
        return 0 if self.hit_prefix is None else int(self.hit_prefix[g.end] - self.hit_prefix[g.first])

    def bar(self, s: Any) -> tuple[float, float]:
        """(x, width) of a span's (or a folded group's) bar on a 0..1000 scale, at least 2 units wide."""
        start, dur = (s.start_ns, s.end_ns - s.start_ns)
        x = (start - self.start_ns) / self.duration_ns * 1000
        w = max(2.0, dur / self.duration_ns * 1000)
        x = min(max(0.0, x), 998.0)
        return round(x, 2), round(min(w, 1000 - x), 2)


def _ids(text: str | None) -> list[str]:
    """Span ids from a comma-separated parameter (anything that is not a span id is dropped)."""
    if not text:
        return []
    return [sid for sid in (valid_span_id(x.strip()) for x in text.split(",")[:MAX_STATE_IDS]) if sid]


@dataclass
class TreeRequest:
    """What a viewer asks of a big trace's tree: where to start, and what they collapsed/opened."""

    start: str | None = None  # span id of the first row (a folded group: its first member)
    collapsed: str | None = None
    expanded: str | None = None
    opened: str | None = None
    collapse_all: bool = False
    limit: int = WINDOW_ROWS
    spans: int | None = None  # the span count the page was drawn with (lets a recent tree be reused)
    reveal: str | None = None  # a span to show (find-in-trace): its path, then the rows from it on
    hl: str | None = None  # a search whose matching spans are marked (the trace page's hl=)

    def state(self, tree: queries.trace_tree.TraceTree) -> queries.trace_tree.ViewState:
        def positions(text: str | None) -> set[int]:
            return {i for i in (tree.index(s) for s in _ids(text)) if i is not None}

        return queries.trace_tree.ViewState(positions(self.collapsed), positions(self.expanded),
                                            positions(self.opened), self.collapse_all)


def _located_totals(store: Store, trace_id: str):
    loc = tiers.locate(store, trace_id)
    totals = queries.trace_tree.trace_totals(store, loc) if loc else None
    if totals is None and loc is not None and loc.tier == "hot":
        # Deleted from the hot tier since the lookup (an archive run finished in between).
        loc = tiers.archive_location(store, trace_id)
        totals = queries.trace_tree.trace_totals(store, loc) if loc else None
    return (loc, totals) if totals is not None else (None, None)


def _marked(store: Store, tree: queries.trace_tree.TraceTree, view: TraceView, hl: Highlight) -> TraceView:
    """``view`` with the spans matching ``hl`` marked: one query over the trace's spans per tree and
    search (remembered on the tree), then a lookup per row shown."""
    if not hl or tree.location is None:
        return view
    hit = queries.trace_tree.marks(store, tree.location, tree, hl)
    view.hl, view.hits = hl, int(hit.sum())
    view.hit_prefix = np.r_[0, np.cumsum(hit)]
    for r in view.rows:
        if isinstance(r, queries.trace.SpanRow) and r.position >= 0:
            r.hit = bool(hit[r.position])
    return view


def _trace_view(store: Store, trace_id: str, select: str | None, hl: Highlight = NO_HIGHLIGHT) -> TraceView | None:
    loc, totals = _located_totals(store, trace_id)
    if loc is None:
        return None
    tree = queries.trace_tree.trace_tree(store, loc, totals.spans)
    tree.totals = totals
    return _marked(store, tree, _tree_view(tree, select), hl)


def _tree_view(tree: queries.trace_tree.TraceTree, select: str | None) -> TraceView:
    assert tree.totals is not None and tree.location is not None
    totals, loc, trace_id = tree.totals, tree.location, tree.trace_id
    service = tree.rows([0])[0].service
    if totals.spans <= SMALL_TRACE:
        return TraceView(trace_id, totals, loc, tree.rows(list(range(len(tree)))), root_service=service)
    state = queries.trace_tree.ViewState()
    target = tree.index(select) if select else None
    if target is not None and queries.trace_tree.visible_position(tree, state, target) >= WINDOW_ROWS:
        return _revealed(tree, state, target)
    win = queries.trace_tree.window(tree, state, 0, WINDOW_ROWS)
    return TraceView(trace_id, totals, loc, win.rows, _next_id(tree, win), True, root_service=service)


def _revealed(tree: queries.trace_tree.TraceTree, state: queries.trace_tree.ViewState, target: int) -> TraceView:
    """A deep span made visible (a link, find-in-trace): the root and its nearest ancestors, then
    the rows from the span on; ``above`` says how many rows above are not in the page."""
    before = (set(state.collapsed), set(state.expanded), set(state.opened))
    queries.trace_tree.reveal(tree, state, target)
    changed = {  # what reveal changed in the viewer's state, for the page to keep (span ids)
        "uncollapsed": _span_ids(tree, before[0] - state.collapsed),
        "expanded": _span_ids(tree, state.expanded - before[1]),
        "opened": [tree.groups[g].first_span_id for g in sorted(state.opened - before[2])]}
    above = queries.trace_tree.visible_position(tree, state, target)
    chain = sorted(tree.ancestors(target))
    path = tree.rows(chain if len(chain) <= PATH_ROWS else chain[:1] + chain[-PATH_ROWS + 1:])
    win = queries.trace_tree.window(tree, state, target, WINDOW_ROWS)
    assert tree.totals is not None and tree.location is not None
    return TraceView(tree.trace_id, tree.totals, tree.location, path + win.rows, _next_id(tree, win), True,
                     above - len(path), tree.rows([0])[0].service, changed)


def _span_ids(tree: queries.trace_tree.TraceTree, positions: set[int]) -> list[str]:
    return [r.span_id for r in tree.rows(sorted(positions))]


def _next_id(tree: queries.trace_tree.TraceTree, win: queries.trace_tree.Window) -> str | None:
    return None if win.next is None else tree.rows([win.next])[0].span_id


async def trace_view(store: Store, trace_id: str, select: str | None = None,
                     hl: Highlight = NO_HIGHLIGHT) -> TraceView | None:
    """The trace page's data: totals of the whole trace, and its rows (all, or a first window);
    with ``hl``, the spans matching it marked."""
    return await run_in_threadpool(_trace_view, store, trace_id, select, hl)


@dataclass
class TreeWindow:
    view: TraceView
    tree: queries.trace_tree.TraceTree


def _cached_or_built(store: Store, trace_id: str, spans: int | None) -> queries.trace_tree.TraceTree | None:
    """The caller's tree of the trace: a recent one from memory when the page's span count still
    names it, else located, totalled and built (or found) again."""
    tree = queries.trace_tree.cached_tree(store, trace_id, spans) if spans else None
    if tree is not None and tree.totals is not None and tree.location is not None:
        return tree  # scrolling: no query at all
    loc, totals = _located_totals(store, trace_id)
    if loc is None:
        return None
    tree = queries.trace_tree.trace_tree(store, loc, totals.spans)
    tree.totals = totals
    return tree


def _tree_window(store: Store, trace_id: str, req: TreeRequest) -> TreeWindow | None:
    tree = _cached_or_built(store, trace_id, req.spans)
    if tree is None:
        return None
    assert tree.totals is not None and tree.location is not None
    state = req.state(tree)
    target = tree.index(req.reveal) if req.reveal else None
    hl = Highlight.from_query(req.hl)
    if target is not None:
        return TreeWindow(_marked(store, tree, _revealed(tree, state, target), hl), tree)
    start = tree.index(req.start) if req.start else 0
    win = queries.trace_tree.window(tree, state, start or 0, max(1, min(req.limit, 5 * WINDOW_ROWS)))
    view = TraceView(trace_id, tree.totals, tree.location, win.rows, _next_id(tree, win), True,
                     root_service=tree.rows([0])[0].service)
    return TreeWindow(_marked(store, tree, view, hl), tree)


async def tree_window(store: Store, trace_id: str, req: TreeRequest) -> TreeWindow | None:
    """A window of a trace's tree as the viewer's collapse/expand state shows it."""
    return await run_in_threadpool(_tree_window, store, trace_id, req)


def _trace_find(store: Store, trace_id: str, text: str, spans: int | None):
    tree = _cached_or_built(store, trace_id, spans)
    if tree is None:
        return None
    assert tree.location is not None
    return queries.trace_tree.find(store, tree.location, tree, text)


async def trace_find(store: Store, trace_id: str, text: str, spans: int | None = None):
    """(span ids matching ``text`` in tree order, how many match), or None for an unknown trace."""
    return await run_in_threadpool(_trace_find, store, trace_id, text, spans)


def _trace_flame(store: Store, trace_id: str, spans: int | None, lo: int | None, hi: int | None, width: int,
                 depth_from: int, depths: int):
    tree = _cached_or_built(store, trace_id, spans)
    if tree is None:
        return None
    return queries.trace_tree.flame(tree, lo, hi, width, depth_from, depths)


async def trace_flame(store: Store, trace_id: str, spans: int | None, lo: int | None, hi: int | None, width: int,
                      depth_from: int = 0, depths: int = 60):
    """The flame view's bars for a time range and canvas width, or None for an unknown trace."""
    return await run_in_threadpool(_trace_flame, store, trace_id, spans, lo, hi, width, depth_from, depths)


def _trace_spans(store: Store, trace_id: str, offset: int, limit: int):
    loc, totals = _located_totals(store, trace_id)
    if loc is None:
        return None
    tree = queries.trace_tree.trace_tree(store, loc, totals.spans)
    return loc, totals, queries.trace_tree.spans_page(tree, offset, limit)


async def trace_spans(store: Store, trace_id: str, offset: int, limit: int):
    """(location, totals, spans offset..offset+limit in depth-first order), or None."""
    return await run_in_threadpool(_trace_spans, store, trace_id, offset, limit)


def _trace_shape(store: Store, trace_id: str):
    loc, totals = _located_totals(store, trace_id)
    if loc is None:
        return None
    return totals, queries.trace_tree.shape(store, loc)


async def trace_shape(store: Store, trace_id: str):
    """(totals, per name and model: count, time, tokens, cost, errors), or None."""
    return await run_in_threadpool(_trace_shape, store, trace_id)


@dataclass
class SpanView:
    detail: queries.trace.SpanDetail
    io: messages.SpanIO
    attr_filter: str = ""
    hl: Highlight = NO_HIGHLIGHT  # words to highlight where free text searches (hl=)

    def hl_attr(self, key: str) -> Highlight:
        """The highlight for an attribute's value: only values free text searches are marked, so a
        highlight always says why the span matched."""
        return self.hl if self.hl and searchable_key(key) else NO_HIGHLIGHT

    @property
    def exceptions(self) -> list[dict[str, Any]]:
        return [e for e in self.detail.events if e["name"] == "exception"]


def _span_view(store: Store, trace_id: str, span_id: str, loc: tiers.Location | None = None,
               hl: Highlight = NO_HIGHLIGHT) -> SpanView | None:
    detail = queries.trace.get_span(store, trace_id, span_id, loc)
    if detail is None:
        return None
    io = messages.normalize(detail.attributes)
    shas = [m.sha256 for m in io.attachments if m.sha256]
    if shas:
        messages.apply_attachment_meta(io, queries.attachments.attachment_meta(store, shas))
    return SpanView(detail, io, hl=hl)


async def span_view(store: Store, trace_id: str, span_id: str, loc: tiers.Location | None = None,
                    hl: Highlight = NO_HIGHLIGHT) -> SpanView | None:
    return await run_in_threadpool(_span_view, store, trace_id, span_id, loc, hl)


def full_value(view: SpanView, path: str) -> str | None:
    """The untruncated text a "show all" button asks for: ``attr:<key>``, ``res:<key>``,
    ``io:<section>.<message>.<part>``, ``val:input|output``, ``doc:<n>``, ``event:<n>.<key>``."""
    kind, _, rest = path.partition(":")
    d = view.detail
    if kind == "attr":
        from tracelake.ui.render import pretty_value

        v = d.attributes.get(rest)
        return pretty_value(v) if v is not None else None
    if kind == "res":
        return d.resource.get(rest)
    if kind == "val":
        v = view.io.input_value if rest == "input" else view.io.output_value if rest == "output" else None
        return v.text if v else None
    try:
        if kind == "io":
            section, mi, pi = rest.split(".")
            msgs = {"system": view.io.system, "input": view.io.input, "output": view.io.output}[section]
            return msgs[int(mi)].parts[int(pi)].text
        if kind == "doc":
            return view.io.documents[int(rest)].content
        if kind == "event":
            ei, _, key = rest.partition(".")
            return d.events[int(ei)]["attributes"].get(key)
        if kind == "tool":
            return view.io.tools[int(rest)].text
    except (ValueError, IndexError, KeyError):
        return None
    return None


@dataclass
class SessionsView:
    q: str
    tr: TimeRange
    rows: list[dict[str, Any]]


async def sessions_list(store: Store, q: str, range_: str | None, frm: str | None, to: str | None) -> SessionsView:
    tr = time_range(range_, frm, to)
    rows = await run_in_threadpool(queries.sessions.list_sessions, store, tr.lo_ns, tr.hi_ns, (q or "").strip())
    return SessionsView(q or "", tr, rows)


@dataclass
class DashboardView:
    q: str
    filt: Explained
    tr: TimeRange
    data: dict[str, Any] | None = None  # None when the filter has an error

    @property
    def error(self) -> FilterError | None:
        return self.filt.error


async def dashboard_view(store: Store, q: str, range_: str | None, frm: str | None, to: str | None) -> DashboardView:
    view = DashboardView(q or "", explain(q or ""), time_range(range_, frm, to))
    if view.error is None:
        view.data = await run_in_threadpool(queries.dashboard.dashboard, store, view.tr.lo_ns, view.tr.hi_ns, view.filt.node)
    return view


def conversation(store: Store, session_id: str) -> tuple[list[queries.trace_list.TraceRow], list[dict[str, Any]]]:
    """The session's traces (oldest first) and one turn per trace: what the user said, what came back."""
    traces = queries.sessions.session_traces(store, session_id)
    spans = queries.sessions.conversation_spans(store, traces)
    turns = []
    for t in traces:
        ss = spans.get(t.trace_id, [])
        root = next((s for s in ss if s["ParentSpanId"] == ""), None)
        llm = [s for s in ss if s["ParentSpanId"] != "" or s is not root]
        user_text = assistant_text = ""
        if root is not None:
            io = messages.normalize(root["SpanAttributes"])
            user_text = messages.summary_text([m for m in io.input if m.role == "user"]) or (io.input_value.text[:400] if io.input_value else "")
            assistant_text = messages.summary_text(io.output) or (io.output_value.text[:400] if io.output_value else "")
        llm_spans = [s for s in llm if s["LlmOperation"] in ("chat", "llm", "text_completion", "generate_content", "completion")]
        if llm_spans and not user_text:
            io = messages.normalize(llm_spans[0]["SpanAttributes"])
            user_text = messages.summary_text([m for m in io.input if m.role == "user"])
        if llm_spans and not assistant_text:
            io = messages.normalize(llm_spans[-1]["SpanAttributes"])
            assistant_text = messages.summary_text(io.output)
        turns.append({"trace": t, "user": user_text, "assistant": assistant_text})
    return traces, turns


async def retention_view(store: Store, archiver: Any) -> queries.retention.Retention:
    """The Retention page: ``archiver`` is ``app.state.archiver`` (None without a retention policy)."""
    return await run_in_threadpool(queries.retention.retention, store, archiver)


async def session_view(store: Store, session_id: str) -> tuple[list[queries.trace_list.TraceRow], list[dict[str, Any]]]:
    return await run_in_threadpool(conversation, store, session_id)
