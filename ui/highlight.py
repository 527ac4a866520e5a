"""Search words highlighted in span text, with the meaning free text has everywhere else
(tracelake.query.text_search, docs/search.md):

* a word term matches a whole word, case-insensitively (``refund`` not in ``refunds``);
* ``refund*`` matches a word starting with "refund";
* a phrase (``"order 4417"``, or a bare value with separators such as ``order_4417``) matches its
  words one after the other, whatever separates them;
* words are runs of ASCII letters and digits or of non-ASCII characters (ClickHouse's
  ``splitByNonAlpha``), and a JSON ``\\n``, ``\\r`` or ``\\t`` escape separates words, as it does in
  the searchable text.

The SQL decides which spans match; this module only finds, in the text a page shows, the character
ranges to mark. :meth:`Highlight.__call__` returns markup built from escaped pieces of the text and
``<mark>`` tags only, so no HTML from span content reaches the page unescaped.

The trace page and find-in-trace read terms from a small syntax (:func:`parse_find`): ``"a phrase"``,
``word*``, ``word``; find also knows ``status:error`` and ``key=value``. The trace list carries its
filter's free text to the trace page in that syntax (:attr:`Highlight.query`, the ``hl=`` parameter).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from markupsafe import Markup, escape

from tracelake.query.filters import Node, Not, Text
from tracelake.query.text_search import words
from tracelake.store.search_text import SEARCH_KEYS

_WORD = re.compile(r"[A-Za-z0-9\x80-\U0010ffff]+")
_JSON_ESCAPE = re.compile(r"\\[nrt]")  # the searchable text turns these into spaces (search_text._unescape)
_FIND_TOKEN = re.compile(r'"([^"]*)"?|(\S+)')
_BARE_SAFE = re.compile(r"^[A-Za-z0-9_.\-\x80-\U0010ffff]+$")
STATUS_WORDS = ("status:error", "error:true", "is:error")
MAX_TERMS = 8  # find and highlight take at most this many terms (the rest is ignored)
MAX_QUERY_CHARS = 500  # of an hl= parameter (find's own limit); the rest is ignored


@dataclass(frozen=True)
class Needle:
    """One term as lowercased words; ``prefix``: the last word only has to start the text's word."""

    words: tuple[str, ...]
    prefix: bool


def needle(term: Text) -> Needle | None:
    """The term's words as the SQL splits them (None for a term without a word)."""
    value = term.value.rstrip("*") if term.mode == "prefix" else term.value
    ws = tuple(words(value.lower()))  # lowercased whole, then split: as the SQL does
    return Needle(ws, term.mode == "prefix") if ws else None


def free_text_terms(node: Node | None) -> list[Text]:
    """The filter's free-text terms a match can show: every Text outside a NOT, in order, once each."""
    out: list[Text] = []

    def walk(n: Node | None) -> None:
        if n is None or isinstance(n, Not):
            return
        if isinstance(n, Text):
            if all((t.value, t.mode) != (n.value, n.mode) for t in out):
                out.append(n)
            return
        for item in getattr(n, "items", ()):
            walk(item)

    walk(node)
    return out[:MAX_TERMS]


@dataclass
class FindWords:
    """What find-in-trace was asked: free-text terms, whether to keep error spans only, and
    ``key=value`` attribute tests (kept as they were: a case-insensitive substring of the value)."""

    terms: list[Text] = field(default_factory=list)
    errors: bool = False
    attrs: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.terms or self.errors or self.attrs)


def parse_find(text: str) -> FindWords:
    """``"a phrase"``, ``word*`` (prefix), ``word``, ``status:error``, ``key=value``; tokens that hold
    no letter or digit are dropped (they could not match a word). At most :data:`MAX_TERMS` tests."""
    found = FindWords()
    count = 0
    for m in _FIND_TOKEN.finditer(text or ""):
        if count >= MAX_TERMS:
            break
        quoted, bare = m.group(1), m.group(2)
        if quoted is not None:
            term = Text(quoted, m.start(), "phrase")
        elif bare.lower() in STATUS_WORDS:
            found.errors = True
            count += 1
            continue
        elif "=" in bare.strip("="):
            key, _, value = bare.partition("=")
            found.attrs.append((key, value))
            count += 1
            continue
        else:
            term = Text(bare, m.start(), "prefix" if bare.endswith("*") else "word")
        if needle(term) is not None:
            found.terms.append(term)
            count += 1
    return found


def terms_query(terms: Iterable[Text]) -> str:
    """The terms in :func:`parse_find`'s syntax (what ``hl=`` carries), meaning the same: a plain
    value bare when nothing in it is syntax, else its words quoted; a prefix as its words joined by
    ``_`` (a separator) and ``*``."""
    out = []
    for t in terms:
        if t.mode == "prefix":
            out.append("_".join(words(t.value.rstrip("*"))) + "*")
        elif _BARE_SAFE.match(t.value):
            out.append(t.value)
        else:
            out.append('"' + " ".join(words(t.value)) + '"')
    return " ".join(out)


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


class Highlight:
    """The words of some terms, ready to mark in any text; falsy when there is nothing to mark."""

    def __init__(self, terms: Sequence[Text] = ()) -> None:
        self.terms = list(terms)[:MAX_TERMS]
        self.needles = [n for n in (needle(t) for t in self.terms) if n is not None]
        self.query = terms_query(self.terms)

    @classmethod
    def from_query(cls, text: str | None) -> "Highlight":
        """From an ``hl=`` parameter (find's syntax; status and key=value tests are not words)."""
        return cls(parse_find((text or "")[:MAX_QUERY_CHARS]).terms)

    def __bool__(self) -> bool:
        return bool(self.needles)

    def ranges(self, text: str) -> list[tuple[int, int]]:
        """[start, end) character ranges of ``text`` that match a term, sorted and merged. A phrase's
        range runs from its first word to its last, separators included."""
        if not self.needles or not text:
            return []
        scan = _JSON_ESCAPE.sub("  ", text)  # same length: offsets stay those of ``text``
        # Most values hold none of the words: an ASCII word that is not even a substring of the
        # lowercased text cannot match (lowercasing maps characters one by one, but for non-ASCII
        # sigma), so such values cost one pass in C.
        low = scan.lower()
        needles = [nd for nd in self.needles if not nd.words[0].isascii() or nd.words[0] in low]
        if not needles:
            return []
        found = [(m.start(), m.end()) for m in _WORD.finditer(scan)]
        # Words lowercased in their context, as lowerUTF8 lowercases the whole text (a final sigma
        # depends on what follows); word by word only when lowercasing changed the length (İ).
        lows = [low[a:b] for a, b in found] if len(low) == len(scan) else [scan[a:b].lower() for a, b in found]
        at: dict[str, list[int]] = {}  # word -> where it is: a needle's whole first word is looked up
        for i, w in enumerate(lows):
            at.setdefault(w, []).append(i)
        out: list[tuple[int, int]] = []
        for nd in needles:
            k, first, last = len(nd.words), nd.words[0], nd.words[-1]
            if nd.prefix and k == 1:
                starts: Iterable[int] = (i for i, w in enumerate(lows) if w.startswith(first))
            else:
                starts = at.get(first, ())
            for i in starts:
                j = i + k - 1
                if j < len(lows) and (lows[j].startswith(last) if nd.prefix else lows[j] == last) \
                        and all(lows[i + x] == nd.words[x] for x in range(1, k - 1)):
                    out.append((found[i][0], found[j][1]))
        return _merge(out)

    def __call__(self, text: str | None) -> Markup:
        """``text`` escaped, with every match inside ``<mark>``; only escaped text and the tags."""
        text = "" if text is None else str(text)
        pieces: list[str] = []
        at = 0
        for a, b in self.ranges(text):
            pieces += [str(escape(text[at:a])), "<mark>", str(escape(text[a:b])), "</mark>"]
            at = b
        pieces.append(str(escape(text[at:])))
        return Markup("".join(pieces))  # every piece of the text went through escape()


NO_HIGHLIGHT = Highlight()


def _like(pattern: str) -> re.Pattern[str]:
    """A SQL LIKE pattern as a regex: ``%`` any run, ``_`` any one character (as the SQL reads it)."""
    return re.compile("".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern), re.DOTALL)


_EXACT_KEYS = frozenset(k for k in SEARCH_KEYS if "%" not in k)
_KEY_PATTERNS = tuple(_like(k) for k in SEARCH_KEYS if "%" in k)


def searchable_key(key: str) -> bool:
    """Whether free text searches this span attribute's value (tracelake.store.search_text)."""
    return key in _EXACT_KEYS or any(p.fullmatch(key) for p in _KEY_PATTERNS)
