#!/usr/bin/env python3
"""What search results cost the UI (issue 23): the trace list's matched-span query, a big trace's
page and windows with a search marked, find-in-trace, and the highlighter itself.

Seeds an embedded store with 8-span agent traces (``--spans``, default 200k) and one agent loop of
``--big`` spans (default 100k; every 97th tool call fails with "order not found"), then times, in
process (FastAPI TestClient for pages: SQL, rendering and all), each pair "with search" / "without"
and prints p50s and their ratio:

* the list page with a free-text filter, and the matched-span query alone for that page's 50 rows,
  against the list query alone;
* the big trace's page with ``hl=`` (the first open computes the matching spans; later opens reuse
  them) against the page without;
* a window of the big trace (``/rows``) with ``hl=`` against without;
* find-in-trace for a phrase against ``status:error`` (a column test), and its SQL against the
  substring SQL find ran before;
* the highlighter over a 4,000-character value (what the page shows of one value).

    python benchmarks/search_ui.py
    python benchmarks/search_ui.py --spans 1000000 --big 1000000
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "ui"))

import ui_traces  # noqa: E402


def timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def row(name: str, ms: list[float], base: float | None) -> float:
    p50 = statistics.median(ms)
    ratio = f"{p50 / base:6.2f}x" if base else "  base "
    print(f"  {name:<58} p50 {p50:8.1f} ms  max {max(ms):8.1f} ms  {ratio}")
    return p50


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=200_000)
    ap.add_argument("--big", type=int, default=100_000)
    ap.add_argument("-n", type=int, default=15, help="repetitions per measure")
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from tracelake.config import Settings
    from tracelake.query.filters import parse
    from tracelake.store import open_store
    from tracelake.ui.highlight import Highlight, free_text_terms
    from tracelake.query.compile import HOT
    from tracelake.query.filters import Text
    from tracelake.query.text_search import term_sql
    from tracelake.store import tiers
    from tracelake.ui.queries import matched, trace, trace_list, trace_tree
    from tracelake.ui.queries.span_terms import span_term_sql
    from tracelake.web import create_app

    tmp = tempfile.mkdtemp(prefix="tl-search-ui-")
    store = open_store(data_dir=Path(tmp) / "data")
    now = time.time_ns()
    t0 = time.perf_counter()
    ui_traces.insert(store, ui_traces.synthetic_requests(args.spans, 5, now - 3600 * ui_traces.S))
    steps = max(1, (args.big - 1) // 6)
    loop, loop_id = ui_traces.agent_loop_requests(steps, now - 1800 * ui_traces.S)
    ui_traces.insert(store, loop)
    print(f"seeded {args.spans:,} spans of 8-span traces and a {1 + 6 * steps:,}-span trace in "
          f"{time.perf_counter() - t0:.0f} s")
    client = TestClient(create_app(store, Settings()))
    get = client.get

    print("trace list (range 6h, 50 rows)")
    node = parse("support")  # a word of every third trace's root name ("invoke_agent support-agent")
    lo, hi = now - 6 * 3600 * ui_traces.S, now + 60 * ui_traces.S
    page = trace_list.list_traces(store, node, lo, hi)
    terms = free_text_terms(node)
    base = row("list query alone, free text 'support'", timed(lambda: trace_list.list_traces(store, node, lo, hi), args.n), None)
    row("matched-span query for its 50 rows", timed(lambda: matched.matched_spans(store, terms, page.rows), args.n), base)
    base = row("list page, filter service:support-agent", timed(lambda: get("/traces", params={"q": "service:support-agent", "range": "6h"}), args.n), None)
    row("list page, filter support (free text + matched column)", timed(lambda: get("/traces", params={"q": "support", "range": "6h"}), args.n), base)

    print(f"big trace ({1 + 6 * steps:,} spans)")
    url = f"/traces/{loop_id}"
    get(url)  # build the tree once
    base = row("page, no search", timed(lambda: get(url), args.n), None)
    first = timed(lambda: get(url, params={"hl": '"not found"'}), 1)
    row("page, hl=\"not found\", first open (matching spans found)", first, base)
    row("page, hl=\"not found\", again (remembered on the tree)", timed(lambda: get(url, params={"hl": '"not found"'}), args.n), base)
    errors = get(f"/api/traces/{loop_id}/find", params={"q": "status:error"}).json()["matches"]
    rows = f"/traces/{loop_id}/rows"
    base = row("window (reveal a match), no search", timed(lambda: get(rows, params={"reveal": errors[3]}), args.n), None)
    row("window (reveal a match), hl=\"not found\"", timed(lambda: get(rows, params={"reveal": errors[3], "hl": '"not found"'}), args.n), base)
    find = f"/api/traces/{loop_id}/find"
    base = row("find status:error", timed(lambda: get(find, params={"q": "status:error"}), args.n), None)
    row("find \"order not found\" (term_sql over the searchable text)", timed(lambda: get(find, params={"q": '"order not found"'}), args.n), base)
    row("find zzzq (no match)", timed(lambda: get(find, params={"q": "zzzq"}), args.n), base)
    # Before issue 23, find looked for a case-insensitive substring in names, status messages and
    # every attribute value: the same SQL here, for the before/after ratio.
    loc = tiers.locate(store, loop_id)

    def substring_find() -> None:
        def build(p, source: str) -> str:
            v = p.s("not found")
            return (f"SELECT DISTINCT SpanId {source} AND (positionCaseInsensitiveUTF8(SpanName, {v}) > 0 OR "
                    f"positionCaseInsensitiveUTF8(StatusMessage, {v}) > 0 OR "
                    f"arrayExists(x -> positionCaseInsensitiveUTF8(x, {v}) > 0, mapValues(SpanAttributes)))")
        trace.query_spans_arrow(store, loc, build)

    tree = trace_tree.trace_tree(store, loc, 1 + 6 * steps)
    phrase = Text("order not found", 0, "phrase")
    sub = row("SQL of the substring find before (\"not found\"), query only", timed(substring_find, args.n), None)
    row("term_sql alone, \"order not found\", query only", timed(
        lambda: trace_tree._positions(store, loc, tree, lambda p: term_sql(p, phrase, HOT.text)), args.n), sub)
    row("span_term_sql (what find runs now), query only", timed(
        lambda: trace_tree._positions(store, loc, tree, lambda p: span_term_sql(p, phrase, True)), args.n), sub)

    print("highlighter")
    dense = ("I want a refund for order 4417 <b>now</b>, refunds\\nplease. " * 80)[:4000]
    plain = ("Nothing to see here, a long prompt about shipping <b>now</b>. " * 80)[:4000]
    one = plain[:2000] + " refund " + plain[2000:]
    hl = Highlight.from_query('refund* "order 4417" please')
    base = row("escape only (no search), 4,000 characters", timed(lambda: str(Highlight()(plain)), 200), None)
    row("3 terms, none in the text", timed(lambda: str(hl(plain)), 200), base)
    row("3 terms, one match", timed(lambda: str(hl(one)), 200), base)
    row("3 terms, ~500 matches (every other word)", timed(lambda: str(hl(dense)), 200), base)
    store.close()


if __name__ == "__main__":
    main()
