"""A trace of any size: totals by SQL, a compact skeleton in tree order, and windows of its rows.

The page and the API never load a whole big trace to show its top. Instead:

* :func:`trace_totals` — spans, errors, duration, services, tokens and cost of the *whole* trace,
  from SQL aggregates (never from what a browser loaded);
* :func:`trace_tree` — the skeleton (ids, parent, name, start, duration, status, kind, model,
  tokens) read once as Arrow columns, put in depth-first order with numpy (subtree sizes make a
  collapsed subtree a contiguous range to skip), runs of similar siblings grouped; cached per
  caller, trace and span count;
* :func:`window` — ``limit`` visible rows from a position, given what the viewer collapsed and
  which folded groups they opened: O(window), whatever the trace's size.

Deep chains are walked iteratively (no recursion limit). Spans whose parent is missing are roots
(marked orphan); spans in a parent cycle are shown flat at the end, as :func:`trace.tree_order`.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tracelake.query.params import Params
from tracelake.store.base import Store
from tracelake.ui.highlight import Highlight, parse_find
from tracelake.ui.queries.span_terms import span_term_sql
from tracelake.ui.queries.trace import SPAN_COLUMNS, Location, SpanRow, _query_spans, _span_row, query_spans_arrow

FOLD_MIN = 50  # a run of at least this many same-named siblings is folded into one row
CACHE_SPANS = 2_000_000  # trees kept in memory, counted in spans (LRU)
REUSE_S = 10.0  # a tree confirmed this recently serves windows without asking the store again

# Trace's SPAN_COLUMNS with the status message cut short: the skeleton stays small at a million spans
# (the span panel reads the whole message).
SKELETON_COLUMNS = SPAN_COLUMNS.replace("StatusMessage", "leftUTF8(StatusMessage, 300) AS StatusMessage")


@dataclass(frozen=True)
class TraceTotals:
    """The whole trace, from SQL aggregates over every (deduplicated) span."""

    spans: int
    errors: int
    start_ns: int
    end_ns: int
    services: list[str]
    input_tokens: int
    output_tokens: int
    cost: float
    unpriced: int = 0  # LLM spans with tokens and no price
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def duration_ns(self) -> int:
        return max(1, self.end_ns - self.start_ns)

    def as_json(self) -> dict[str, Any]:
        return {"spans": self.spans, "error_spans": self.errors, "start_ns": self.start_ns, "end_ns": self.end_ns,
                "duration_ms": self.duration_ns / 1e6, "services": self.services, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "cost_usd": self.cost, "unpriced_spans": self.unpriced,
                "cache_read_tokens": self.cache_read_tokens, "cache_write_tokens": self.cache_write_tokens,
                "reasoning_tokens": self.reasoning_tokens}


def trace_totals(store: Store, loc: Location) -> TraceTotals | None:
    rows = _query_spans(store, loc, lambda p, source: (
        "SELECT count() AS n, countIf(lower(StatusCode) LIKE '%error%') AS errors, min(TsNs) AS s, "
        "max(TsNs + Duration) AS e, arraySort(groupUniqArray(toString(ServiceName))) AS services, "
        "sum(InputTokens) AS i, sum(OutputTokens) AS o, sum(CostUsd) AS c, sum(Unpriced) AS u, "
        "sum(CacheReadTokens) AS cr, sum(CacheWriteTokens) AS cw, sum(ReasoningTokens) AS rt FROM ("
        "SELECT SpanId, StatusCode, toUnixTimestamp64Nano(Timestamp) AS TsNs, Duration, ServiceName, InputTokens, "
        f"OutputTokens, CostUsd, Unpriced, CacheReadTokens, CacheWriteTokens, ReasoningTokens {source} LIMIT 1 BY SpanId)"))
    if not rows or not rows[0]["n"]:
        return None
    r = rows[0]
    return TraceTotals(int(r["n"]), int(r["errors"]), int(r["s"]), int(r["e"]), list(r["services"]), int(r["i"]),
                       int(r["o"]), float(r["c"]), int(r["u"]), int(r["cr"]), int(r["cw"]), int(r["rt"]))


@dataclass(frozen=True)
class Group:
    """A run of similar siblings shown as one row until opened."""

    first: int  # tree index of the first member (the group's key)
    first_span_id: str  # ... and its span id (what a viewer names to open the group)
    end: int  # tree index just past the last member's subtree
    count: int
    name: str
    parent: int
    depth: int
    start_ns: int
    end_ns: int
    total_ns: int  # sum of the members' durations
    errors: int  # error spans inside the group (members and their subtrees)


@dataclass
class TraceTree:
    """The skeleton and its depth-first order: tree position i is row ``perm[i]`` of ``table``
    (kept in the order it was read: no copy of the columns)."""

    trace_id: str
    table: pa.Table
    perm: np.ndarray
    parent: np.ndarray  # tree index of the parent, -1 for roots
    depth: np.ndarray
    size: np.ndarray  # subtree size including the span itself: its subtree is [i, i + size)
    kids: np.ndarray
    orphan: np.ndarray
    error: np.ndarray
    groups: dict[int, Group] = field(default_factory=dict)
    location: Location | None = None  # where it was read (trace_tree sets it)
    totals: TraceTotals | None = None  # of the trace when it was built
    built_at: float = field(default_factory=time.monotonic)  # or last confirmed against the store
    search_hits: dict[str, np.ndarray] = field(default_factory=dict)  # hl query -> matching positions (:func:`marks`)

    @property
    def pos(self) -> np.ndarray:
        inverse = np.empty(len(self.perm), np.int64)
        inverse[self.perm] = np.arange(len(self.perm))
        return inverse

    def column(self, name: str) -> np.ndarray:
        """A numeric skeleton column in tree order."""
        return self.table.column(name).to_numpy()[self.perm]

    def __len__(self) -> int:
        return self.table.num_rows

    def index(self, span_id: str) -> int | None:
        """The tree position of a span (a vectorized search, no per-span Python dict)."""
        hits = pc.indices_nonzero(pc.equal(self.table.column("SpanId"), span_id))
        return int(self.pos[hits[0].as_py()]) if len(hits) else None

    def ancestors(self, i: int) -> list[int]:
        out = []
        p = int(self.parent[i])
        while p >= 0:
            out.append(p)
            p = int(self.parent[p])
        return out

    def group_of(self, i: int) -> Group | None:
        """The folded group whose members' subtrees hold position ``i`` (innermost not needed:
        groups of one parent do not overlap, and a caller opens every enclosing one)."""
        for g in self.groups.values():
            if g.first <= i < g.end:
                return g
        return None

    def rows(self, positions: list[int]) -> list[SpanRow]:
        """The spans at these tree positions (only they are converted from Arrow)."""
        if not positions:
            return []
        out = []
        for i, r in zip(positions, self.table.take(pa.array(self.perm[positions])).to_pylist()):
            row = _span_row(r)
            row.depth, row.children, row.orphan, row.position = (int(self.depth[i]), int(self.kids[i]),
                                                                 bool(self.orphan[i]), i)
            out.append(row)
        return out


def _read_skeleton(store: Store, loc: Location) -> pa.Table:
    return query_spans_arrow(store, loc, lambda p, source: (
        f"SELECT {SKELETON_COLUMNS} {source} ORDER BY TsNs, SpanId LIMIT 1 BY SpanId"))


def build_tree(trace_id: str, table: pa.Table) -> TraceTree:
    """Depth-first order (children by start time), depths, subtree sizes and folded groups.

    Vectorized with numpy so that a million spans take about a second: depths by pointer
    doubling, then one pass per tree level (a chain 10,000 deep is 10,000 small array steps, no
    recursion), never a Python step per span."""
    n = table.num_rows
    if n == 0:
        empty = np.zeros(0, np.int64)
        return TraceTree(trace_id, table, empty, empty, empty, empty, empty, np.zeros(0, bool), np.zeros(0, bool))
    ids = table.column("SpanId")
    parent_ids = table.column("ParentSpanId")
    found = pc.index_in(parent_ids, value_set=ids)
    par = pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    idx = np.arange(n)
    par[par == idx] = -1  # a span that names itself as parent is a root
    orphan = pc.not_equal(parent_ids, "").to_numpy(zero_copy_only=False) & (par < 0)

    depth, cyclic = _depths(par)
    par[cyclic] = -1  # spans in a parent loop are shown flat, as roots
    # Children of each parent contiguous, in start order (rows arrive start-ordered; stable sort).
    by_parent = np.argsort(par, kind="stable")
    by_depth = np.argsort(depth, kind="stable")
    level_ends = np.cumsum(np.bincount(depth))
    levels = np.split(by_depth, level_ends[:-1])

    size = np.ones(n, np.int64)
    for level in reversed(levels[1:]):  # bottom-up: each level adds its subtrees to its parents
        np.add.at(size, par[level], size[level])
    # A span's position = its parent's + 1 + the sizes of the siblings before it.
    sizes_in_order = size[by_parent]
    before = np.cumsum(sizes_in_order) - sizes_in_order
    seg_par = par[by_parent]
    seg_start = np.r_[0, np.nonzero(seg_par[1:] != seg_par[:-1])[0] + 1]
    seg_base = np.repeat(before[seg_start], np.diff(np.r_[seg_start, n]))
    offset = np.empty(n, np.int64)
    offset[by_parent] = before - seg_base
    pos = np.empty(n, np.int64)
    pos[levels[0]] = offset[levels[0]]  # roots: one after another
    for level in levels[1:]:
        pos[level] = pos[par[level]] + 1 + offset[level]
    perm = np.empty(n, np.int64)
    perm[pos] = idx

    parent = np.where(par[perm] >= 0, pos[np.maximum(par[perm], 0)], -1)
    kids = np.bincount(parent[parent >= 0], minlength=n).astype(np.int64)
    status = pc.utf8_lower(table.column("StatusCode"))
    error = pc.match_substring(status, "error").to_numpy(zero_copy_only=False)[perm]
    tree = TraceTree(trace_id, table, perm, parent, depth[perm], size[perm], kids, orphan[perm], error)
    tree.groups = _groups(tree)
    return tree


def _depths(par: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each span's depth by pointer doubling (log2 of the deepest chain rounds), and which spans
    never reach a root (a parent loop)."""
    jump = par.copy()
    dist = (par >= 0).astype(np.int64)
    for _ in range(int(np.log2(max(len(par), 2))) + 2):
        live = jump >= 0
        if not live.any():
            break
        j = jump[live]
        dist[live] += dist[j]
        jump[live] = jump[j]
    cyclic = jump >= 0
    dist[cyclic] = 0
    return dist, cyclic


def _groups(tree: TraceTree) -> dict[int, Group]:
    """Runs of >= FOLD_MIN consecutive siblings with the same name."""
    n = len(tree)
    if n < FOLD_MIN:
        return {}
    names = pc.dictionary_encode(tree.table.column("SpanName")).combine_chunks().indices.to_numpy()[tree.perm]
    # Siblings are the children of one parent in tree order; a run continues while the name does.
    sib = np.argsort(tree.parent, kind="stable")
    p, nm = tree.parent[sib], names[sib]
    new_run = np.r_[True, (p[1:] != p[:-1]) | (nm[1:] != nm[:-1])]
    run_starts = np.nonzero(new_run)[0]
    lengths = np.diff(np.r_[run_starts, n])
    starts, durs = tree.column("TsNs"), tree.column("Duration")
    err_prefix = np.r_[0, np.cumsum(tree.error, dtype=np.int64)]
    groups = {}
    for r in np.nonzero(lengths >= FOLD_MIN)[0]:
        members = sib[run_starts[r]:run_starts[r] + lengths[r]]
        first, last = int(members[0]), int(members[-1])
        end = last + int(tree.size[last])
        row = int(tree.perm[first])
        groups[first] = Group(first, tree.table.column("SpanId")[row].as_py(), end, len(members),
                              tree.table.column("SpanName")[row].as_py(), int(tree.parent[first]),
                              int(tree.depth[first]), int(starts[members].min()), int((starts[members] + durs[members]).max()),
                              int(durs[members].sum()), int(err_prefix[end] - err_prefix[first]))
    return groups


@dataclass
class ViewState:
    """What the viewer changed from the default (everything expanded, long sibling runs folded)."""

    collapsed: set[int] = field(default_factory=set)
    expanded: set[int] = field(default_factory=set)  # with collapse_all: the spans opened again
    opened: set[int] = field(default_factory=set)  # folded groups shown member by member
    collapse_all: bool = False

    def is_collapsed(self, tree: TraceTree, i: int) -> bool:
        if tree.kids[i] == 0:
            return False
        if self.collapse_all:
            return tree.depth[i] >= 1 and i not in self.expanded
        return i in self.collapsed


@dataclass
class Window:
    rows: list[SpanRow | Group]  # a folded group is one row
    next: int | None  # tree position to continue from, None at the end


def window(tree: TraceTree, state: ViewState, start: int = 0, limit: int = 500) -> Window:
    """Up to ``limit`` visible rows from tree position ``start`` (a position the viewer sees)."""
    picked: list[tuple[str, int]] = []  # ("span" | "group", position)
    i, n = start, len(tree)
    while i < n and len(picked) < limit:
        g = tree.groups.get(i)
        if g is not None and g.first not in state.opened:
            picked.append(("group", i))
            i = g.end
            continue
        picked.append(("span", i))
        i = i + int(tree.size[i]) if state.is_collapsed(tree, i) else i + 1
    spans = iter(tree.rows([p for kind, p in picked if kind == "span"]))
    out: list[SpanRow | Group] = []
    for kind, p in picked:
        if kind == "group":
            out.append(tree.groups[p])
            continue
        row = next(spans)
        row.collapsed = state.is_collapsed(tree, p)
        out.append(row)
    return Window(out, i if i < n else None)


def reveal(tree: TraceTree, state: ViewState, i: int) -> None:
    """Change ``state`` so that position ``i`` is visible: expand its ancestors, open the folded
    groups that hold it (find-in-trace and a selected deep span use this)."""
    for a in tree.ancestors(i):
        state.collapsed.discard(a)
        if state.collapse_all:
            state.expanded.add(a)
    for g in tree.groups.values():
        if g.first <= i < g.end:
            state.opened.add(g.first)


def visible_position(tree: TraceTree, state: ViewState, i: int) -> int:
    """How many visible rows come before position ``i`` (its row number), ``i`` being visible."""
    count, j = 0, 0
    while j < i:
        g = tree.groups.get(j)
        if g is not None and g.first not in state.opened:
            if g.end > i:
                return count
            count += 1
            j = g.end
            continue
        count += 1
        j = j + int(tree.size[j]) if state.is_collapsed(tree, j) and j + int(tree.size[j]) <= i else j + 1
    return count


# -- the cache: one tree per (caller's store, trace, span count) ----------------------------------
_CACHE: "OrderedDict[tuple, TraceTree]" = OrderedDict()
_CACHE_LOCK = threading.Lock()
_BUILD_LOCKS: dict[tuple, threading.Lock] = {}


def _cache_key(store: Store, trace_id: str, spans: int) -> tuple:
    # The caller's project set is part of the key: a tree read through one caller's filters is never
    # served to another (ScopedStore.projects; None for an unscoped store).
    return (id(getattr(store, "inner", store)), getattr(store, "projects", None), trace_id, spans)


def forget(trace_ids: frozenset[str]) -> None:
    """Drop every cached tree of these traces (they were erased or restored: tracelake.events)."""
    with _CACHE_LOCK:
        for key in [k for k in _CACHE if k[2] in trace_ids]:
            del _CACHE[key]


def forget_all() -> None:
    """Drop every cached tree (prices changed: their costs are stale)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def cached_tree(store: Store, trace_id: str, spans: int, max_age_s: float = REUSE_S) -> TraceTree | None:
    """The tree this caller built for this trace at this span count, if built less than
    ``max_age_s`` ago: windows asked for while scrolling skip the totals query. Older trees are
    checked against the store again (a trace erased meanwhile is not served from memory for long)."""
    with _CACHE_LOCK:
        found = _CACHE.get(_cache_key(store, trace_id, spans))
    if found is None or time.monotonic() - found.built_at > max_age_s:
        return None
    return found


def trace_tree(store: Store, loc: Location, spans: int) -> TraceTree:
    """The trace's tree, built once per span count (a trace still growing is rebuilt)."""
    key = _cache_key(store, loc.trace_id, spans)
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            return found
        lock = _BUILD_LOCKS.setdefault(key, threading.Lock())
    with lock:  # two viewers opening the same big trace build it once
        with _CACHE_LOCK:
            found = _CACHE.get(key)
        if found is not None:
            found.built_at = time.monotonic()  # checked against the store just now (the span count)
        if found is None:
            found = build_tree(loc.trace_id, _read_skeleton(store, loc))
            found.location = loc
            with _CACHE_LOCK:
                _CACHE[key] = found
                total = sum(len(t) for t in _CACHE.values())
                while total > CACHE_SPANS and len(_CACHE) > 1:
                    _, old = _CACHE.popitem(last=False)
                    total -= len(old)
                _BUILD_LOCKS.pop(key, None)
    return found


def shape(store: Store, loc: Location, limit: int = 100) -> list[dict[str, Any]]:
    """The trace's shape at a glance: per span name and model, count, total and p95 time,
    tokens, cost and errors, biggest total time first."""
    rows = _query_spans(store, loc, lambda p, source: (
        "SELECT SpanName AS name, LlmModel AS model, any(LlmOperation) AS operation, count() AS n, "
        "sum(Duration) AS total_ns, quantileExact(0.95)(Duration) AS p95_ns, max(Duration) AS max_ns, "
        "sum(InputTokens) AS input_tokens, sum(OutputTokens) AS output_tokens, sum(CostUsd) AS cost, "
        "sum(Unpriced) AS unpriced, sum(CacheReadTokens) AS cache_read_tokens, "
        "countIf(lower(StatusCode) LIKE '%error%') AS errors FROM ("
        "SELECT SpanId, SpanName, LlmModel, LlmOperation, Duration, InputTokens, OutputTokens, CostUsd, Unpriced, "
        "CacheReadTokens, StatusCode "
        f"{source} LIMIT 1 BY SpanId) GROUP BY name, model ORDER BY total_ns DESC, name LIMIT {int(limit)}"))
    return [{**r, "total_ms": r["total_ns"] / 1e6, "p95_ms": r["p95_ns"] / 1e6, "max_ms": r["max_ns"] / 1e6}
            for r in rows]


FLAME_MAX_WIDTH = 4_000  # pixels a flame view may ask for
FLAME_MAX_DEPTHS = 200  # tree levels in one flame view (deeper: ask again from a lower depth)


@dataclass
class Flame:
    """A flame view of the trace between two times, at most one bar per (depth, pixel column): the
    longest span that starts in that column (an error span before any other). Columns of numbers,
    ready for a canvas."""

    lo_ns: int
    hi_ns: int
    depth_from: int
    max_depth: int  # deepest level of the whole trace
    depth: list[int]
    x0: list[int]
    x1: list[int]
    kind: list[int]  # 0 plain, 1 LLM, 2 tool, 3 error
    critical: list[bool]
    span_id: list[str]
    name: list[int]  # index into names
    names: list[str]


def flame(tree: TraceTree, lo_ns: int | None, hi_ns: int | None, width: int, depth_from: int = 0,
          depths: int = 60) -> Flame:
    """Bars for a canvas ``width`` pixels wide showing ``depths`` levels from ``depth_from``."""
    width = max(1, min(width, FLAME_MAX_WIDTH))
    depths = max(1, min(depths, FLAME_MAX_DEPTHS))
    start, dur = tree.column("TsNs").astype(np.int64), tree.column("Duration").astype(np.int64)
    end = start + dur
    lo = int(start.min()) if lo_ns is None and len(tree) else int(lo_ns or 0)
    hi = int(end.max()) if hi_ns is None and len(tree) else int(hi_ns or 0)
    hi = max(hi, lo + 1)
    pick = (end >= lo) & (start <= hi) & (tree.depth >= depth_from) & (tree.depth < depth_from + depths)
    idx = np.nonzero(pick)[0]
    scale = width / (hi - lo)
    x0 = np.clip(((start[idx] - lo) * scale).astype(np.int64), 0, width - 1)
    x1 = np.clip(np.ceil((end[idx] - lo) * scale).astype(np.int64), x0 + 1, width)
    # One span per (depth, column): an error first (density never hides one), else the longest.
    order = np.lexsort((-dur[idx], ~tree.error[idx], x0, tree.depth[idx]))
    idx, x0, x1 = idx[order], x0[order], x1[order]
    d = tree.depth[idx]
    keep = np.r_[True, (d[1:] != d[:-1]) | (x0[1:] != x0[:-1])] if len(idx) else np.zeros(0, bool)
    idx, x0, x1, d = idx[keep], x0[keep], x1[keep], d[keep]
    rows = tree.perm[idx]
    table = tree.table.take(pa.array(rows)) if len(idx) else tree.table.slice(0, 0)
    op = table.column("LlmOperation").to_pylist()
    model = table.column("LlmModel").to_pylist()
    kind = [3 if tree.error[i] else 1 if (m or o in ("chat", "text_completion", "generate_content")) else
            2 if o in ("execute_tool", "tool") else 0 for i, o, m in zip(idx.tolist(), op, model)]
    encoded = pc.dictionary_encode(table.column("SpanName")).combine_chunks()
    critical = critical_path(tree)
    return Flame(lo, hi, depth_from, int(tree.depth.max()) if len(tree) else 0, d.tolist(), x0.tolist(), x1.tolist(),
                 kind, critical[idx].tolist(), table.column("SpanId").to_pylist(),
                 encoded.indices.to_pylist(), encoded.dictionary.to_pylist())


def critical_path(tree: TraceTree) -> np.ndarray:
    """Which spans are on the critical path: from the root that ends last, walking back from a
    span's end through the children that end last before it, each child's own path, then on from
    that child's start (the sequential work that made the trace as long as it is). Computed once."""
    cached = getattr(tree, "_critical", None)
    if cached is not None:
        return cached
    n = len(tree)
    on = np.zeros(n, bool)
    if n == 0:
        return on
    start = tree.column("TsNs").astype(np.int64)
    end = start + tree.column("Duration").astype(np.int64)
    size = tree.size
    roots = np.nonzero(tree.parent < 0)[0]
    stack = [int(roots[np.argmax(end[roots])])]
    while stack:  # iterative: deep chains
        node = stack.pop()
        on[node] = True
        kids = []
        c = node + 1
        stop = node + int(size[node])
        while c < stop:
            kids.append(c)
            c += int(size[c])
        if not kids:
            continue
        kids_arr = np.asarray(kids)
        t = None  # the last-finishing child is on the path even when it outlasts its parent (clock skew)
        for k in kids_arr[np.argsort(-end[kids_arr], kind="stable")].tolist():
            if t is None or end[k] <= t:
                stack.append(k)
                t = start[k]
    tree._critical = on  # type: ignore[attr-defined]
    return on


FIND_LIMIT = 10_000  # matches returned by find-in-trace (the count says when there were more)
MARKS_KEPT = 4  # highlight queries whose matching spans a cached tree remembers


def _positions(store: Store, loc: Location, tree: TraceTree, where: Callable[[Params], str]) -> np.ndarray:
    """Sorted tree positions of the spans passing ``where(params)`` (an SQL condition), found by one
    query over the trace's spans: never a Python step per span."""
    ids = query_spans_arrow(store, loc, lambda p, source: f"SELECT DISTINCT SpanId {source} AND {where(p)}").column("SpanId")
    if not len(ids):
        return np.zeros(0, np.int64)
    rows = pc.indices_nonzero(pc.is_in(tree.table.column("SpanId"), value_set=ids)).to_numpy()
    return np.sort(tree.pos[rows])


def find(store: Store, loc: Location, tree: TraceTree, text: str) -> tuple[list[str], int]:
    """Spans of the trace matching ``text``, in tree order (up to FIND_LIMIT), and how many match.

    Words mean what free text means in the filter (tracelake.query.text_search, over the tier's
    searchable text; :mod:`.span_terms`): ``refund`` the word, ``refund*`` a word starting
    with it, ``"order 4417"`` the words in order. ``status:error`` finds error spans; ``key=value``
    spans whose attribute ``key`` contains ``value`` (any case). Every test must match."""
    asked = parse_find(text)
    if not asked:
        return [], 0
    hot = loc.tier == "hot"

    def where(p: Params) -> str:
        conds = ["lower(StatusCode) LIKE '%error%'"] if asked.errors else []
        conds += [f"positionCaseInsensitiveUTF8(SpanAttributes[{p.s(key)}], {p.s(value)}) > 0" for key, value in asked.attrs]
        conds += [span_term_sql(p, t, hot) for t in asked.terms]
        return " AND ".join(conds)

    positions = _positions(store, loc, tree, where)
    span_ids = tree.table.column("SpanId").take(pa.array(tree.perm[positions[:FIND_LIMIT]]))
    return span_ids.to_pylist(), len(positions)


def marks(store: Store, loc: Location, tree: TraceTree, hl: Highlight) -> np.ndarray:
    """Per tree position, whether the span matches any of ``hl``'s terms (the trace page marks these).
    One query per tree and highlight: remembered on the cached tree, so scrolling reuses it."""
    found = tree.search_hits.get(hl.query)
    if found is not None:
        return found
    hot = loc.tier == "hot"
    hit = np.zeros(len(tree), bool)
    hit[_positions(store, loc, tree, lambda p: "(" + " OR ".join(span_term_sql(p, t, hot) for t in hl.terms) + ")")] = True
    with _CACHE_LOCK:  # the tree is shared by the viewer's concurrent requests
        while len(tree.search_hits) >= MARKS_KEPT:
            tree.search_hits.pop(next(iter(tree.search_hits)))
        tree.search_hits[hl.query] = hit
    return hit


def spans_page(tree: TraceTree, offset: int, limit: int) -> list[SpanRow]:
    """Rows ``offset .. offset+limit`` of the whole tree (depth-first, nothing folded), for the API."""
    return tree.rows(list(range(offset, min(len(tree), offset + limit))))


__all__ = ["FOLD_MIN", "Group", "TraceTotals", "TraceTree", "ViewState", "Window", "build_tree", "critical_path", "find", "flame", "marks", "reveal",
           "forget_all", "shape", "spans_page", "trace_totals", "trace_tree", "visible_position", "window"]
