"""Free-text terms over the spans of a few traces (a trace's find, its search marks, the list's
matched span): :func:`tracelake.query.text_search.term_sql`, exact, behind a cheap necessary test.

Within one trace the text index does not help much (the trace's rows fill its granules), and building
a span's searchable text costs ~2 µs per span: ~200 ms for a 100k-span trace, whatever the term. So
each term is first tested more cheaply — its longest ASCII word is a substring of the lowercased span
name, status message, an attribute value or an event attribute value — and only the spans that pass
get the exact test (ClickHouse evaluates ``AND`` short-circuit). Measured on a 100k-span trace: a
rare word 216 -> 30 ms, a phrase 370 -> 40 ms, no match 215 -> 21 ms, a word in 2/3 of the spans
209 -> 109 ms.

Why the first test never drops a span the exact one keeps: the searchable text is ``lowerUTF8`` of
those fields joined by spaces, after the JSON-escape replacement (tracelake.store.search_text); the
replacement only turns characters into spaces, and lowercasing maps ASCII output from characters of
the same place (only final sigma depends on neighbours, and it is not ASCII). So an ASCII word of
the text lies inside one field's ``lowerUTF8``. Non-ASCII words get no first test. (Not
``positionCaseInsensitiveUTF8``: on a column it misses the Kelvin sign, which ``lowerUTF8`` turns
into ``k``; tests/ui/test_ui_highlight.py checks such cases.)
"""
from __future__ import annotations

from tracelake.query.compile import ARCHIVE, HOT
from tracelake.query.filters import Text
from tracelake.query.params import Params
from tracelake.query.text_search import term_sql, words

# A span's event attribute values, over each tier's columns (as tracelake.store.search_text builds them).
HOT_EVENT_VALUES = "arrayFlatten(Events.Attributes.values)"
ARCHIVE_EVENT_VALUES = "arrayFlatten(arrayMap(m -> mapValues(m), `Events.Attributes`))"


def _probe(term: Text) -> str | None:
    """The term's longest ASCII word (a prefix term's last word counts: it is a substring too)."""
    value = term.value.rstrip("*") if term.mode == "prefix" else term.value
    ascii_words = [w for w in words(value) if w.isascii()]
    return max(ascii_words, key=len) if ascii_words else None


def maybe_sql(p: Params, term: Text, hot: bool) -> str:
    """A necessary condition for ``term`` on one span row (``1`` when none is cheap)."""
    word = _probe(term)
    if word is None:
        return "1"
    w = p.s(word.lower())
    events = HOT_EVENT_VALUES if hot else ARCHIVE_EVENT_VALUES
    return (f"(position(lowerUTF8(SpanName), {w}) > 0 OR position(lowerUTF8(StatusMessage), {w}) > 0 "
            f"OR arrayExists(x -> position(lowerUTF8(x), {w}) > 0, mapValues(SpanAttributes)) "
            f"OR arrayExists(x -> position(lowerUTF8(x), {w}) > 0, {events}))")


def span_term_sql(p: Params, term: Text, hot: bool) -> str:
    """``term`` on one span row of the hot tier (``otel_traces``) or the archive (its view's columns,
    also when its files are read directly): the cheap test, then :func:`term_sql`."""
    exact = term_sql(p, term, HOT.text if hot else ARCHIVE.text)
    return f"({maybe_sql(p, term, hot)} AND {exact})"
