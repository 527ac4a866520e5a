"""Free-text terms as SQL over a span's searchable text (tracelake.store.search_text), one meaning
for every place spans live (docs/search.md):

* ``refund`` -- the word "refund" (case-insensitive; ``refunds`` is another word). A value with
  separators inside (``order_4417``, ``gpt-4o``) is the phrase of its words.
* ``refund*`` -- a word starting with "refund".
* ``"order 4417"`` -- these words one after the other, whatever separates them (spaces,
  punctuation, a JSON ``\\n``).

Words are what ClickHouse's ``splitByNonAlpha`` tokenizer makes of the lowercased text: runs of
ASCII letters and digits and of any non-ASCII characters (so ``café`` and ``東京`` are words). All
lowercasing and splitting of the user's value happens in SQL, with the same functions that built
the index, so a term can never mean one thing to the index and another to the check.

Each condition is exact on its own (the text index only decides which rows are read), so the same
SQL run without an index -- an old part, an archived file -- finds exactly the same spans.
"""
from __future__ import annotations

import re

from tracelake.query.filters import Text
from tracelake.query.params import Params
from tracelake.store.search_text import TOKENIZER

# splitByNonAlpha's separators: the ASCII characters that are not letters or digits.
_SEP_CLASS = r"[\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]"
_SEP = re.compile(_SEP_CLASS + "+")


def words(value: str) -> list[str]:
    """The words of ``value`` as the tokenizer splits them (not lowercased: SQL lowercases)."""
    return [w for w in _SEP.split(value) if w]


def _words_sql(p: Params, term: Text) -> str:
    """The term's words, lowercased and split in SQL (a constant array): the SQL's shape never depends
    on the user's text, only its parameters do."""
    value = term.value.rstrip("*") if term.mode == "prefix" else term.value
    return f"tokens(lowerUTF8({p.s(value)}), '{TOKENIZER}')"


def _sequence_regex(p: Params, ws: str, whole_last: bool) -> str:
    """A constant RE2 pattern: the words ``ws`` in order, separated by separators, starting at a word
    boundary (and ending at one when ``whole_last``). Words hold no ASCII punctuation, so nothing in
    them is special to RE2."""
    start, sep = p.s(f"(?:^|{_SEP_CLASS})"), p.s(f"{_SEP_CLASS}+")
    end = p.s(f"(?:{_SEP_CLASS}|$)" if whole_last else "")
    return f"concat({start}, arrayStringConcat({ws}, {sep}), {end})"


def term_sql(p: Params, term: Text, text: str) -> str:
    """A condition on one span row: its searchable text ``text`` (an SQL expression) matches ``term``."""
    ws = _words_sql(p, term)
    if term.mode == "prefix":
        # '%last%' lets the index answer from its dictionary (needles of 4+ characters); the regex
        # keeps the words that start with it, after the whole words before it.
        return (f"((length({ws}) = 1 OR hasAllTokens({text}, arrayPopBack({ws}))) AND {text} LIKE concat('%', arrayElement({ws}, -1), '%') "
                f"AND match({text}, {_sequence_regex(p, ws, whole_last=False)}))")
    # One word: the index answers exactly (the constant length test drops the regex).
    return (f"(hasAllTokens({text}, {ws}) AND (length({ws}) = 1 "
            f"OR match({text}, {_sequence_regex(p, ws, whole_last=True)})))")


def archive_term_groups(p: Params, term: Text) -> str:
    """SELECT (Path, RowGroup, TraceLo, TraceHi) of the archive's indexed row groups holding every
    word of ``term`` (a necessary condition: they may be in different spans of the row group)."""
    ws = _words_sql(p, term)
    # IN a subquery's set and startsWith: both read only their ranges of the table's sorted Token key.
    if term.mode == "prefix":
        whole, last = f"arrayPopBack({ws})", f"arrayElement({ws}, -1)"
        where = f"Token IN (SELECT arrayJoin({whole})) OR startsWith(Token, {last})"
        having = f"uniqExactIf(Token, has({whole}, Token)) = length(arrayDistinct({whole})) AND countIf(startsWith(Token, {last})) > 0"
    else:
        where = f"Token IN (SELECT arrayJoin({ws}))"
        having = f"uniqExact(Token) = length(arrayDistinct({ws}))"
    return (f"SELECT Path, RowGroup, any(TraceLo) AS TraceLo, any(TraceHi) AS TraceHi FROM archive_terms "
            f"WHERE {where} GROUP BY Path, RowGroup HAVING {having}")
