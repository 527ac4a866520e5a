"""The big-trace tree (ui/queries/trace_tree.py) on skeletons built in memory: order, sizes,
folding, windows, reveal — no store needed."""
from __future__ import annotations

import pyarrow as pa

from tracelake.ui.queries import trace_tree
from tracelake.ui.queries.trace_tree import ViewState, build_tree, reveal, visible_position, window


def skeleton(spans: list[tuple[str, str, str, int]]) -> pa.Table:
    """(span id, parent id, name, start) rows, in start order as the store returns them."""
    spans = sorted(spans, key=lambda s: (s[3], s[0]))
    n = len(spans)
    return pa.table({
        "SpanId": [s[0] for s in spans], "ParentSpanId": [s[1] for s in spans], "SpanName": [s[2] for s in spans],
        "SpanKind": ["Internal"] * n, "ServiceName": ["svc"] * n, "TsNs": [s[3] for s in spans],
        "Duration": [10] * n, "StatusCode": ["Error" if s[2] == "bad" else "Ok" for s in spans],
        "StatusMessage": [""] * n, "LlmOperation": [""] * n, "LlmModel": [""] * n, "InputTokens": [0] * n,
        "OutputTokens": [0] * n, "CostUsd": [0.0] * n, "NEvents": [0] * n, "HasExc": [False] * n})


def agent(steps: int) -> pa.Table:
    """root -> step x N -> (llm, tool, tool); the third tool of every 10th step fails."""
    rows = [("r", "", "root", 0)]
    t = 1
    for k in range(steps):
        sid = f"s{k}"
        rows.append((sid, "r", "step", t))
        rows.append((f"l{k}", sid, "llm", t + 1))
        rows.append((f"a{k}", sid, "tool", t + 2))
        rows.append((f"b{k}", sid, "bad" if k % 10 == 0 else "tool", t + 3))
        t += 5
    return skeleton(rows)


def test_depth_first_order_sizes_and_orphans():
    tree = build_tree("t", skeleton([("a", "", "root", 0), ("b", "a", "x", 1), ("c", "b", "y", 2), ("d", "a", "z", 3),
                                     ("e", "gone", "orphan", 4)]))
    assert [r.span_id for r in tree.rows(list(range(len(tree))))] == ["a", "b", "c", "d", "e"]
    assert tree.depth.tolist() == [0, 1, 2, 1, 0]
    assert tree.size.tolist() == [4, 2, 1, 1, 1]
    assert tree.kids.tolist() == [2, 1, 0, 0, 0]
    assert tree.orphan.tolist() == [False, False, False, False, True]


def test_a_chain_ten_thousand_deep_needs_no_recursion():
    n = 10_000
    tree = build_tree("t", skeleton([(f"s{i}", f"s{i - 1}" if i else "", "hop", i) for i in range(n)]))
    assert tree.depth[-1] == n - 1 and tree.size[0] == n
    state = ViewState()
    deep = tree.index("s5000")
    assert tree.ancestors(deep)[-1] == 0 and len(tree.ancestors(deep)) == 5000
    state.collapse_all = True
    reveal(tree, state, deep)
    assert visible_position(tree, state, deep) == 5000  # every ancestor expanded above it


def test_cycles_are_shown_flat_not_lost():
    tree = build_tree("t", skeleton([("a", "", "root", 0), ("x", "y", "loop", 1), ("y", "x", "loop", 2)]))
    assert sorted([r.span_id for r in tree.rows(list(range(len(tree))))]) == ["a", "x", "y"] and tree.depth.tolist() == [0, 0, 0]


def test_long_sibling_runs_fold_with_their_totals():
    steps = trace_tree.FOLD_MIN * 2
    tree = build_tree("t", agent(steps))
    assert len(tree.groups) == 1
    (g,) = tree.groups.values()
    assert (g.count, g.name, g.depth, g.end) == (steps, "step", 1, len(tree))
    assert g.errors == steps // 10 and g.total_ns == steps * 10
    rows = window(tree, ViewState()).rows
    assert [r.name for r in rows] == ["root", "step"] and rows[1] is g  # root + the folded run
    opened = window(tree, ViewState(opened={g.first}), limit=9).rows
    assert [r.name for r in opened] == ["root", "step", "llm", "tool", "bad", "step", "llm", "tool", "tool"]


def test_short_runs_are_not_folded():
    tree = build_tree("t", agent(trace_tree.FOLD_MIN - 1))
    assert tree.groups == {}


def test_windows_continue_and_skip_collapsed_subtrees():
    tree = build_tree("t", agent(10))
    first = window(tree, ViewState(), limit=7)
    assert len(first.rows) == 7 and first.next == 7
    rest = window(tree, ViewState(), start=first.next, limit=1000)
    assert rest.next is None and len(first.rows) + len(rest.rows) == len(tree)
    step1 = tree.index("s1")
    collapsed = window(tree, ViewState(collapsed={step1}), limit=1000).rows
    assert len(collapsed) == len(tree) - 3 and "l1" not in {r.span_id for r in collapsed}
    only_top = window(tree, ViewState(collapse_all=True), limit=1000).rows
    assert [r.name for r in only_top] == ["root"] + ["step"] * 10


def test_reveal_opens_the_group_and_ancestors_of_a_deep_span():
    tree = build_tree("t", agent(trace_tree.FOLD_MIN * 3))
    target = tree.index("b120")
    state = ViewState(collapse_all=True)
    reveal(tree, state, target)
    pos = visible_position(tree, state, target)
    rows = window(tree, state, limit=pos + 1).rows
    assert rows[pos].span_id == "b120"


def test_an_erased_trace_is_forgotten_by_the_tree_cache():
    """The archiver announces erased and restored traces (tracelake.events); the UI's cache drops
    their trees, so no window of an erased trace is served from memory."""
    from tracelake.events import on_traces_changed, traces_changed

    key = trace_tree._cache_key(object(), "t-erased", 5)
    other = trace_tree._cache_key(object(), "t-kept", 5)
    with trace_tree._CACHE_LOCK:
        trace_tree._CACHE[key] = trace_tree._CACHE[other] = build_tree("t", agent(1))
    on_traces_changed(trace_tree.forget)
    traces_changed(["t-erased"])
    assert key not in trace_tree._CACHE and other in trace_tree._CACHE
    trace_tree.forget(frozenset({"t-kept"}))
