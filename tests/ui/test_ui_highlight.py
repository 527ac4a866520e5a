"""Search results shown (issue 23): the words highlighted with the filter's meaning and always
escaped, the span that matched in the trace list, matching spans marked on the trace page.

The known traces (ui_traces.known_traces) hold "refund" in the error trace's root and chat span, and
the hostile trace's root holds ``ui_traces.XSS_SEARCH``: "quokka" against HTML tags."""
from __future__ import annotations

import re

import pytest

import ui_traces
from tracelake.query.filters import Text, parse
from tracelake.query.params import Params, query
from tracelake.query.text_search import term_sql
from tracelake.store.search_text import _unescape
from tracelake.ui.highlight import Highlight, free_text_terms, parse_find, searchable_key


def marked(text: str, hl: str) -> list[str]:
    return [text[a:b] for a, b in Highlight.from_query(hl).ranges(text)]


@pytest.mark.parametrize("text,hl,want", [
    ("Refund? refunds, REFUND", "refund", ["Refund", "REFUND"]),  # whole words, any case
    ("refunded refund_policy prefund", "refund*", ["refunded", "refund"]),  # a word starting with it
    ("order  4417; order_4417 4417 order", '"order 4417"', ["order  4417", "order_4417"]),  # words in order
    ("see order_4417 or order-4417x", "order_4417", ["order_4417"]),  # a bare value with separators: its phrase
    ('{"a": "x\\nrefund\\tok"}', "refund", ["refund"]),  # a JSON escape separates words
    ("café Café cafés 東京へ", "café", ["café", "Café"]),  # non-ASCII: word characters
    ("gpt-4o-mini gpt-4o", "gpt-4o", ["gpt-4o", "gpt-4o"]),  # a phrase may be followed by more words
    ("order 44 17", "order_44*", ["order 44"]),  # prefix: whole words, then the start of the last
])
def test_highlight_means_what_the_filter_means(text, hl, want):
    assert marked(text, hl) == want


def test_highlight_agrees_with_the_sql_on_every_case(known_store):
    """Each term matches a text in Python exactly when term_sql matches it in ClickHouse."""
    store, _ = known_store
    texts = ["Refund? refunds", 'x\\nrefund', "order  4417", "order_44171", "café Cafés", "prefund", "4417 order",
             "re-fund", "refunding now", 'a "order" <4417>']
    terms = [Text("refund", 0), Text("refund*", 0, "prefix"), Text("order 4417", 0, "phrase"),
             Text("order_4417", 0), Text("café", 0), Text("order_44*", 0, "prefix"), Text("re fund", 0, "phrase")]
    for t in terms:
        p = Params()
        conds = ", ".join(f"({term_sql(p, t, f'lowerUTF8({_unescape(p.s(x))})')}) AS c{i}" for i, x in enumerate(texts))
        sql_hits = [bool(v) for v in query(store, f"SELECT {conds}", p)[0].values()]
        assert [bool(Highlight([t]).ranges(x)) for x in texts] == sql_hits, t


def test_highlight_escapes_everything_and_marks_across_tags():
    out = str(Highlight.from_query('quokka "quokka hop"')(ui_traces.XSS_SEARCH))
    assert "<script" not in out and "<img" not in out and out.count("<") == out.count("<mark>") + out.count("</mark>")
    assert "&lt;/script&gt;<mark>quokka</mark>&lt;img src=x" in out
    assert "<mark>Quokka</mark> quokkas \\n<mark>quokka</mark> <mark>quokka&lt;hop</mark>" in out
    assert str(Highlight.from_query("script")("<script>")) == "&lt;<mark>script</mark>&gt;"
    assert str(Highlight()("<b>")) == "&lt;b&gt;"  # no search: escaped as it is


def test_terms_from_the_filter_and_back():
    terms = free_text_terms(parse('service:x refund* -secret "order 4417" (a OR gpt-4o) NOT "b c"'))
    assert [(t.value, t.mode) for t in terms] == [("refund*", "prefix"), ("order 4417", "phrase"), ("a", "word"),
                                                  ("gpt-4o", "word")]
    hl = Highlight(terms)
    assert hl.query == 'refund* "order 4417" a gpt-4o'
    assert Highlight.from_query(hl.query).needles == hl.needles
    asked = parse_find('status:error gen_ai.tool.name=lookup "not found" ord* ---')
    assert asked.errors and asked.attrs == [("gen_ai.tool.name", "lookup")]
    assert [(t.value, t.mode) for t in asked.terms] == [("not found", "phrase"), ("ord*", "prefix")]
    assert searchable_key("gen_ai.prompt.0.content") and searchable_key("output.value")
    assert not searchable_key("session.id") and not searchable_key("http.url")


# --- the trace list: which span matched -----------------------------------------------------------
def test_list_says_which_span_matched(client, known):
    rows = client.get("/api/traces", params={"range": "1h", "q": "refund"}).json()["traces"]
    assert [r["trace_id"] for r in rows] == [known.error]
    m = rows[0]["matched_span"]
    # Both spans of the error trace hold the word; the first to start is the root.
    assert m["name"] == "agent run" and m["count"] == 2 and m["span_id"] != known.error_span
    plain = client.get("/api/traces", params={"range": "1h", "q": "status:error"}).json()["traces"]
    assert "matched_span" not in plain[0]
    html = client.get("/traces", params={"range": "1h", "q": "refund status:error"}).text
    assert "Matched span" in html and 'mcount">2 spans' in html
    assert f'href="/traces/{known.error}?span={m["span_id"]}&amp;hl=refund"' in html
    assert "Matched span" not in client.get("/traces", params={"range": "1h", "q": "-refund"}).text


def test_list_matched_span_is_escaped(client, known):
    html = client.get("/traces", params={"range": "1h", "q": "quokka"}).text
    cell = re.search(r'<td class="matched">(.*?)</td>', html, re.S).group(1)
    assert "&lt;img src=x onerror=" in cell and "<img" not in cell and 'mcount">1 span<' in cell
    assert f"/traces/{known.xss}?span=" in cell and "hl=quokka" in cell


# --- the trace page: spans marked, words highlighted, always escaped --------------------------------
def test_trace_page_marks_matching_spans_and_highlights_escaped(client, known):
    html = client.get(f"/traces/{known.xss}", params={"hl": 'quokka "quokka hop"'}).text
    assert "<script>window.__xss" not in html and "<img src=x" not in html
    assert "&lt;/script&gt;<mark>quokka</mark>&lt;img src=x" in html  # output value and its attribute
    assert "<mark>quokka&lt;hop</mark>" in html and "<mark>quokkas</mark>" not in html
    assert re.search(r'id="hl-note"[^>]*>Search <code>quokka &#34;quokka hop&#34;</code>: 1 span of this trace matches', html)
    hits = re.findall(r'class="srow([^"]*)" data-id="([0-9a-f]{16})"', html)
    assert [sid for cls, sid in hits if "hit" in cls.split()] != [] and len([c for c, _ in hits if "hit" in c.split()]) == 1
    # Not a search attribute: session.id holds <script> too, shown escaped, never marked.
    assert "&lt;script&gt;window.__xss=1;alert(1)&lt;/script&gt;</pre>" in html


def test_span_panel_keeps_the_search(client, known):
    page = client.get(f"/traces/{known.error}", params={"hl": "refund"}).text
    assert len(re.findall(r'class="srow[^"]* hit"', page)) == 2 and "2 spans of this trace match" in page
    assert f'data-panel="/traces/{known.error}/spans/{known.error_span}?hl=refund"' in page
    panel = client.get(f"/traces/{known.error}/spans/{known.error_span}", params={"hl": "refund"},
                       headers={"HX-Request": "true"}).text
    assert "I want a <mark>refund</mark> for order 7" in panel
    assert "<mark>" not in client.get(f"/traces/{known.error}/spans/{known.error_span}",
                                      headers={"HX-Request": "true"}).text
