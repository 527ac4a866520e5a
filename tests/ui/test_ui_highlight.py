"""Search results shown (issue 23): the words highlighted with the filter's meaning and always
escaped, the span that matched in the trace list, matching spans marked on the trace page.

The known traces (ui_traces.known_traces) hold "refund" in the error trace's root and chat span, and
the hostile trace's root holds ``ui_traces.XSS_SEARCH``: "quokka" against HTML tags."""
from __future__ import annotations

import re
import time

import pytest

import ui_traces
from tracelake.query.filters import Text, parse
from tracelake.query.compile import HOT
from tracelake.query.params import Params, query
from tracelake.query.text_search import term_sql
from tracelake.store.search_text import _unescape
from tracelake.ui.highlight import Highlight, free_text_terms, parse_find, searchable_key
from tracelake.ui.queries.span_terms import maybe_sql, span_term_sql


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
             "re-fund", "refunding now", 'a "order" <4417>', "ΟΔΟΣ.A", "ΟΔΟΣ A", "\u212aelvin"]
    terms = [Text("refund", 0), Text("refund*", 0, "prefix"), Text("order 4417", 0, "phrase"),
             Text("order_4417", 0), Text("café", 0), Text("order_44*", 0, "prefix"), Text("re fund", 0, "phrase"),
             Text("οδος", 0), Text("οδοσ", 0), Text("kelvin", 0), Text("ΟΔΟΣ.A", 0)]  # a final sigma depends on what follows
    for t in terms:
        p = Params()
        conds = ", ".join(f"({term_sql(p, t, f'lowerUTF8({_unescape(p.s(x))})')}) AS c{i}" for i, x in enumerate(texts))
        sql_hits = [bool(v) for v in query(store, f"SELECT {conds}", p)[0].values()]
        assert [bool(Highlight([t]).ranges(x)) for x in texts] == sql_hits, t


EDGE_TEXT = {  # words whose case folding or escaping is unusual (a trace of this module only)
    "input.value": "\u212aelvin said: ISTANBUL \u0130stanbul STRA\u1e9eE",  # Kelvin sign, dotted I, capital sharp s
    "output.value": "zebra\\nZEBRAS \\tzebra_crossing",
}


@pytest.fixture(scope="module")
def edge(known_store):
    store, _ = known_store
    trace_id, span_id = "e" * 32, "e" * 16
    spec = ui_traces.SpanSpec("edge case", span_id, "", 0, 5, EDGE_TEXT,
                              events=[("note", 1, {"detail": "an ev\u00e9nement about ZEBRA-fish"})])
    ui_traces.insert(store, [ui_traces.request(trace_id, [spec], time.time_ns() - 3600 * ui_traces.S, "edge-svc").SerializeToString()])
    return store


@pytest.mark.parametrize("term", [Text("kelvin", 0), Text("istanbul", 0), Text("i\u0307stanbul", 0), Text("straße", 0),
                                  Text("zebra", 0), Text("zebra*", 0, "prefix"), Text("zebra crossing", 0, "phrase"),
                                  Text("fish", 0), Text("vénement", 0), Text("ev", 0), Text("chat gpt", 0, "phrase"),
                                  Text("refund", 0), Text("look*", 0, "prefix")])
def test_span_terms_cheap_test_never_drops_a_match(edge, term):
    """span_term_sql (a substring test before term_sql) keeps exactly the spans term_sql keeps."""
    p = Params()
    fast, exact = span_term_sql(p, term, hot=True), term_sql(p, term, HOT.text)
    got = query(edge, f"SELECT countIf({fast}) AS f, countIf({exact}) AS e FROM otel_traces", p)[0]
    assert got["f"] == got["e"]
    if term.value in ("kelvin", "zebra", "fish", "refund"):
        assert got["e"] > 0 and maybe_sql(Params(), term, True) != "1"


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
    rows = re.findall(r'class="srow([^"]*)" data-id="([0-9a-f]{16})"', html)
    assert len(rows) == 2 and [cls.split() for cls, _ in rows].count(["sel", "hit"]) == 1  # the root, selected
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


def test_search_in_the_url_is_text(client, known):
    """hl= is the caller's text: on the page it is rebuilt from its words, and shown escaped."""
    html = client.get(f"/traces/{known.error}", params={"hl": '<script>alert(1)</script> "x<img src=y onerror=z>"'}).text
    assert "<script>alert" not in html and "<img src=y" not in html
    assert 'value="&#34;script alert 1 script&#34; &#34;x img src y onerror z&#34;"' in html
