"""The trace filter language: a small tokenizer/parser (positions kept) producing an AST.

    query    := or_expr? EOF
    or_expr  := and_expr ('OR' and_expr)*
    and_expr := unary (['AND'] unary)*              -- juxtaposition means AND
    unary    := ('-' | 'NOT') unary | '(' or_expr ')' | term
    term     := STRING                               -- free text
              | WORD [OP value]                      -- field predicate, or a free-text word
    OP       := ':' | '=' | '!=' | '>' | '>=' | '<' | '<='
    value    := STRING | bare run of characters up to whitespace or ')'

Every error is a :class:`FilterError` carrying the character offset where the problem starts, so
the UI can point at it. The parser only builds the tree; turning it into SQL (with every user
value bound as a query parameter) is :mod:`tracelake.query.compile`'s job, but field names, operators
and value types are checked here so a bad filter is reported before any SQL exists.

Shared by the UI (trace list, dashboard) and the archiver (a retention rule's ``match``).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal, Union

Op = Literal[":", "=", "!=", ">", ">=", "<", "<="]
OPS: tuple[str, ...] = (">=", "<=", "!=", ":", "=", ">", "<")  # longest first
Kind = Literal["text", "list", "number", "duration", "status", "id", "bool", "score", "has"]
Level = Literal["trace", "span"]

MAX_QUERY_CHARS = 2000
MAX_TERMS = 40
MAX_DEPTH = 16


class FilterError(ValueError):
    """A filter that cannot be parsed or typed; ``pos``..``end`` is the offending span of text."""

    def __init__(self, message: str, pos: int, end: int | None = None) -> None:
        super().__init__(f"{message} (at character {pos + 1})")
        self.message = message
        self.pos = pos
        self.end = pos + 1 if end is None else max(end, pos + 1)


@dataclass(frozen=True)
class FieldSpec:
    """A filterable field: its kind decides the operators and how the value is read."""

    name: str
    kind: Kind
    level: Level
    doc: str
    aliases: tuple[str, ...] = ()


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("service", "list", "trace", "a service that produced any span of the trace"),
    FieldSpec("model", "list", "trace", "an LLM model used by any span (response or request model)", ("models",)),
    FieldSpec("status", "status", "trace", "error (any span failed) or ok (none failed)"),
    FieldSpec("duration", "duration", "trace", "trace wall time, with unit ns/us/ms/s/m/h (bare number: ms)", ("latency",)),
    FieldSpec("tokens", "number", "trace", "input + output tokens of the whole trace; 1k, 2.5m allowed", ("total_tokens",)),
    FieldSpec("input_tokens", "number", "trace", "input (prompt) tokens of the trace", ("in_tokens", "prompt_tokens")),
    FieldSpec("output_tokens", "number", "trace", "output (completion) tokens of the trace", ("out_tokens", "completion_tokens")),
    FieldSpec("cost", "number", "trace", "cost of the trace in USD ($ sign optional), priced when read"),
    FieldSpec("unpriced", "bool", "trace", "true: some LLM span of the trace has tokens but no price (its cost counts as 0)"),
    FieldSpec("spans", "number", "trace", "number of spans in the trace", ("span_count",)),
    FieldSpec("session", "text", "trace", "session id (session.id, gen_ai.conversation.id, ...)", ("session_id",)),
    FieldSpec("user", "text", "trace", "user id (user.id, enduser.id, ...)", ("user_id",)),
    FieldSpec("name", "text", "trace", "root span name (first span's name if the root is missing)", ("root",)),
    FieldSpec("project", "text", "trace", "project (tracelake.project / openinference.project.name)"),
    FieldSpec("trace", "id", "trace", "trace id (hex)", ("trace_id", "id")),
    FieldSpec("pinned", "bool", "trace", "true: the trace has an active pin (kept hot, never deleted); false: it has none"),
    FieldSpec("span", "text", "span", "any span of the trace has this name", ("span_name",)),
    FieldSpec("kind", "text", "span", "any span of this kind: server, client, internal, producer, consumer"),
    FieldSpec("operation", "text", "span", "any span with this LLM operation: chat, embeddings, execute_tool, llm, retriever, tool, agent, ...", ("op",)),
    FieldSpec("provider", "text", "span", "any span calling this LLM provider (openai, anthropic, ...)"),
    FieldSpec("event", "text", "span", "any span has an event with this name (e.g. exception)"),
    FieldSpec("attr.<key>", "text", "span", "any span has this attribute value; numeric comparisons allowed; attr.<key>:* means present"),
    FieldSpec("resource.<key>", "text", "span", "any span's resource has this attribute value"),
    FieldSpec("score.<name>", "score", "trace", "the current score of this name on the trace or one of its spans: "
                                                "score.correctness<3, score.thumbs:down, score.tone:*"),
    FieldSpec("has", "has", "trace", "has:score.<name>: the trace or one of its spans has a score of this name"),
)
_BY_NAME: dict[str, FieldSpec] = {}
for _f in FIELDS:
    if "<" not in _f.name:
        for _n in (_f.name, *_f.aliases):
            _BY_NAME[_n] = _f
ATTR = next(f for f in FIELDS if f.name == "attr.<key>")
RESOURCE = next(f for f in FIELDS if f.name == "resource.<key>")
SCORE = next(f for f in FIELDS if f.name == "score.<name>")
_SCORE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")  # tracelake.store.scores_schema.NAME_PATTERN

BOOL_VALUES = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
STATUS_VALUES = {"error": "error", "err": "error", "failed": "error", "ok": "ok", "success": "ok", "unset": "ok"}
DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                  "m": 60_000_000_000, "min": 60_000_000_000, "h": 3_600_000_000_000}
_NUM = re.compile(r"^\$?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?([kKmM]?)$")
_DUR = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(ns|us|µs|ms|s|m|min|h)?$")
_HEX = re.compile(r"^[0-9a-fA-F]{1,32}$")
_FIELD_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/@]*$")
_BARE_STOP = set(" \t\r\n\f\v()\"")
_WORD_STOP = _BARE_STOP | set(":=!<>")


# --- AST ---------------------------------------------------------------------------------------
TextMode = Literal["word", "phrase", "prefix"]


@dataclass(frozen=True)
class Text:
    """Free text: some span of the trace has these words in its searchable text (case-insensitive;
    tracelake.query.text_search). ``word``: a bare word (its words in order when it holds
    separators); ``phrase``: a quoted string, its words in order; ``prefix``: ``word*``."""

    value: str
    pos: int
    mode: TextMode = "word"


@dataclass(frozen=True)
class Cmp:
    """``field op value``. ``value`` is already typed: str, float (numbers), int (duration ns)."""

    field: FieldSpec
    key: str  # attribute key for attr./resource. fields, else ''
    op: Op
    value: Union[str, float, int]
    raw: str
    pos: int
    wildcard: bool = False  # value holds '*' wildcards (text fields)


@dataclass(frozen=True)
class Not:
    item: "Node"
    pos: int


@dataclass(frozen=True)
class And:
    items: tuple["Node", ...]


@dataclass(frozen=True)
class Or:
    items: tuple["Node", ...]


Node = Union[Text, Cmp, Not, And, Or]


@dataclass
class _Tok:
    kind: Literal["word", "string", "op", "lparen", "rparen", "minus", "eof"]
    text: str
    pos: int
    end: int
    space_before: bool = False


def _text(value: str, pos: int, end: int, mode: TextMode) -> Text:
    """Free text, refused when it holds no word to search (only punctuation) or a ``*`` elsewhere
    than at the end of a bare word."""
    bare = value.rstrip("*") if mode == "prefix" else value
    if not _WORD_CHARS.search(bare):
        raise FilterError("search text needs a letter or a digit (punctuation alone is not searched)", pos, end)
    if mode != "phrase" and "*" in bare:
        raise FilterError("'*' is allowed only at the end of a word (refund*)", pos, end)
    return Text(value, pos, mode)


_WORD_CHARS = re.compile(r"[A-Za-z0-9\x80-\U0010ffff]")


# --- Tokenizer ---------------------------------------------------------------------------------
def tokenize(text: str) -> list[_Tok]:
    """Split ``text`` into tokens. After an operator the next bare run is a value, so it may hold
    ':' or '<' (``attr.url:https://x``)."""
    toks: list[_Tok] = []
    i, n = 0, len(text)
    after_op = False
    while True:
        space = False
        while i < n and text[i].isspace():
            i += 1
            space = True
        if i >= n:
            toks.append(_Tok("eof", "", n, n, space))
            return toks
        c = text[i]
        if c == '"':
            start = i
            i += 1
            buf: list[str] = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                buf.append(text[i])
                i += 1
            if i >= n:
                raise FilterError("unterminated quoted string: add a closing \"", start, n)
            i += 1
            toks.append(_Tok("string", "".join(buf), start, i, space))
            after_op = False
            continue
        if c == "(" and not after_op:
            toks.append(_Tok("lparen", c, i, i + 1, space))
            i += 1
            continue
        if c == ")":
            toks.append(_Tok("rparen", c, i, i + 1, space))
            i += 1
            after_op = False
            continue
        if not after_op:
            op = next((o for o in OPS if text.startswith(o, i)), None)
            if op is not None:
                toks.append(_Tok("op", op, i, i + len(op), space))
                i += len(op)
                after_op = True
                continue
            if c == "-" and i + 1 < n and not text[i + 1].isspace() and (not toks or toks[-1].kind != "op"):
                toks.append(_Tok("minus", c, i, i + 1, space))
                i += 1
                continue
        start = i
        stop = _BARE_STOP if after_op else _WORD_STOP
        while i < n and text[i] not in stop:
            i += 1
        if i == start:  # a lone '!' or the like
            raise FilterError(f"unexpected character {text[i]!r}", i)
        toks.append(_Tok("word", text[start:i], start, i, space))
        after_op = False


# --- Parser ------------------------------------------------------------------------------------
class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0
        self.terms = 0

    def peek(self, k: int = 0) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i = min(self.i + 1, len(self.toks) - 1)
        return t

    def parse(self) -> Node | None:
        if self.peek().kind == "eof":
            return None
        node = self.or_expr(0)
        t = self.peek()
        if t.kind == "rparen":
            raise FilterError("unmatched ')'", t.pos)
        if t.kind != "eof":
            raise FilterError(f"unexpected {t.text!r}", t.pos, t.end)
        return node

    def _is_kw(self, t: _Tok, kw: str) -> bool:
        return t.kind == "word" and t.text == kw and self.peek(1).kind != "op"

    def or_expr(self, depth: int) -> Node:
        items = [self.and_expr(depth)]
        while self._is_kw(self.peek(), "OR"):
            t = self.take()
            if self.peek().kind in ("eof", "rparen"):
                raise FilterError("OR needs a term after it", t.pos, t.end)
            items.append(self.and_expr(depth))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self, depth: int) -> Node:
        items = [self.unary(depth)]
        while True:
            t = self.peek()
            if t.kind in ("eof", "rparen") or self._is_kw(t, "OR"):
                break
            if self._is_kw(t, "AND"):
                self.take()
                if self.peek().kind in ("eof", "rparen"):
                    raise FilterError("AND needs a term after it", t.pos, t.end)
            items.append(self.unary(depth))
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise FilterError("filter nested too deeply", self.peek().pos)
        t = self.peek()
        if t.kind == "minus" or self._is_kw(t, "NOT"):
            self.take()
            nxt = self.peek()
            if nxt.kind in ("eof", "rparen") or (t.kind == "minus" and nxt.space_before):
                raise FilterError(f"{t.text!r} must be followed by a term", t.pos, t.end)
            return Not(self.unary(depth + 1), t.pos)
        if t.kind == "lparen":
            self.take()
            if self.peek().kind == "rparen":
                raise FilterError("empty parentheses", t.pos, self.peek().end)
            if self.peek().kind == "eof":
                raise FilterError("missing ')' to close this '('", t.pos, t.end)
            node = self.or_expr(depth + 1)
            close = self.peek()
            if close.kind != "rparen":
                raise FilterError("missing ')' to close this '('", t.pos, t.end)
            self.take()
            return node
        return self.term()

    def term(self) -> Node:
        t = self.take()
        if t.kind == "eof":
            raise FilterError("expected a term here", t.pos)
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise FilterError(f"too many terms (at most {MAX_TERMS})", t.pos, t.end)
        if t.kind == "string":
            if not t.text.strip():
                raise FilterError("empty search text", t.pos, t.end)
            return _text(t.text, t.pos, t.end, "phrase")
        if t.kind == "op":
            raise FilterError(f"operator {t.text!r} needs a field name before it, e.g. duration{t.text}2s", t.pos, t.end)
        if t.kind == "rparen":
            raise FilterError("unmatched ')'", t.pos)
        if t.kind != "word":
            raise FilterError(f"unexpected {t.text!r}", t.pos, t.end)
        if self.peek().kind != "op":
            return _text(t.text, t.pos, t.end, "prefix" if t.text.endswith("*") else "word")
        op_tok = self.take()
        val = self.peek()
        if val.kind not in ("word", "string"):
            raise FilterError(f"missing value after {t.text}{op_tok.text}", op_tok.pos, op_tok.end)
        self.take()
        return make_cmp(t.text, t.pos, op_tok.text, op_tok.pos, val.text, val.pos, val.end, val.kind == "string")


def _number(raw: str, pos: int, end: int) -> float:
    m = _NUM.match(raw.strip().replace("_", ""))
    if not m:
        raise FilterError(f"expected a number, got {raw!r}", pos, end)
    mult = {"": 1, "k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6}[m.group(2)]
    num = float(m.group(0).lstrip("$").rstrip("kKmM")) * mult
    if not math.isfinite(num):
        raise FilterError(f"number out of range: {raw!r}", pos, end)
    return num


def _duration(raw: str, pos: int, end: int) -> int:
    m = _DUR.match(raw.strip())
    if not m:
        raise FilterError(f"expected a duration like 250ms, 2s, 1.5m or 1h, got {raw!r}", pos, end)
    value = float(m.group(1)) * DURATION_UNITS[m.group(2) or "ms"]
    if not math.isfinite(value) or value > 2**63 - 1:
        raise FilterError(f"duration out of range: {raw!r}", pos, end)
    return int(value)


def resolve_field(name: str, pos: int) -> tuple[FieldSpec, str]:
    """Field spec and attribute key (for attr./resource.) of a field word."""
    lower = name.lower()
    for prefix, spec in (("attr.", ATTR), ("attribute.", ATTR), ("attrs.", ATTR), ("resource.", RESOURCE)):
        if lower.startswith(prefix):
            key = name[len(prefix):]
            if not key:
                raise FilterError(f"{prefix} needs an attribute key, e.g. {prefix}gen_ai.request.model", pos, pos + len(name))
            return spec, key
    if lower.startswith("score."):
        return SCORE, score_name(name[len("score."):], pos + len("score."))
    spec = _BY_NAME.get(lower)
    if spec is None:
        known = ", ".join(f.name for f in FIELDS)
        raise FilterError(f"unknown field {name!r}; known fields: {known}", pos, pos + len(name))
    return spec, ""


def score_name(name: str, pos: int) -> str:
    if not _SCORE_NAME.match(name):
        raise FilterError("a score name is letters, digits, '_', '.' or '-', e.g. score.correctness<3", pos,
                          pos + max(1, len(name)))
    return name


def _score_cmp(spec: FieldSpec, key: str, op: str, raw: str, name_pos: int, val_pos: int, val_end: int,
               quoted: bool) -> Cmp:
    """``score.<name> op value``: numbers compare the score's number (true/up count 1, false/down 0);
    words its category or true/false; ``*`` means the trace has the score. ``has:score.<name>``."""
    typed_op: Op = op  # type: ignore[assignment]
    if spec.kind == "has":
        if op not in (":", "=", "!=") or not raw.lower().startswith("score."):
            raise FilterError("has: takes a score name, e.g. has:score.tone", val_pos, val_end)
        return Cmp(spec, score_name(raw[len("score."):], val_pos + len("score.")), typed_op, "*", raw, name_pos)
    if op in (">", ">=", "<", "<="):
        return Cmp(spec, key, typed_op, _number(raw, val_pos, val_end), raw, name_pos)
    if raw == "" and not quoted:
        raise FilterError(f"missing value after score.{key}{op}", val_pos, val_end)
    if raw == "*" and not quoted:
        return Cmp(spec, key, typed_op, "*", raw, name_pos)
    if not quoted and _NUM.match(raw.strip()):
        return Cmp(spec, key, typed_op, _number(raw, val_pos, val_end), raw, name_pos)
    return Cmp(spec, key, typed_op, raw.lower(), raw, name_pos, "*" in raw and not quoted)


def make_cmp(name: str, name_pos: int, op: str, op_pos: int, raw: str, val_pos: int, val_end: int,
             quoted: bool) -> Cmp:
    """Type-check one ``field op value`` predicate."""
    spec, key = resolve_field(name, name_pos)
    if spec.kind in ("score", "has"):
        return _score_cmp(spec, key, op, raw, name_pos, val_pos, val_end, quoted)
    if not _FIELD_WORD.match(name) and spec not in (ATTR, RESOURCE):
        raise FilterError(f"bad field name {name!r}", name_pos, name_pos + len(name))
    typed_op: Op = op  # type: ignore[assignment]
    ordered = op in (">", ">=", "<", "<=")
    if spec.kind in ("number", "duration"):
        value: Union[str, float, int] = _duration(raw, val_pos, val_end) if spec.kind == "duration" else _number(raw, val_pos, val_end)
        return Cmp(spec, key, typed_op, value, raw, name_pos)
    if ordered and spec not in (ATTR, RESOURCE):
        raise FilterError(f"operator {op!r} does not apply to {spec.name} (use : = or !=)", op_pos, op_pos + len(op))
    if spec.kind == "status":
        norm = STATUS_VALUES.get(raw.lower())
        if norm is None:
            raise FilterError(f"status is error or ok, not {raw!r}", val_pos, val_end)
        return Cmp(spec, key, typed_op, norm, raw, name_pos)
    if spec.kind == "bool":
        flag = BOOL_VALUES.get(raw.lower())
        if flag is None:
            raise FilterError(f"{spec.name} is true or false, not {raw!r}", val_pos, val_end)
        return Cmp(spec, key, typed_op, "true" if flag else "false", raw, name_pos)
    if spec.kind == "id":
        if not _HEX.match(raw):
            raise FilterError(f"a trace id is hexadecimal, not {raw!r}", val_pos, val_end)
        return Cmp(spec, key, typed_op, raw.lower(), raw, name_pos)
    if ordered:  # attr.x > 3: numeric comparison of the attribute value
        return Cmp(spec, key, typed_op, _number(raw, val_pos, val_end), raw, name_pos)
    if raw == "" and not quoted:
        raise FilterError(f"missing value after {name}{op}", op_pos, op_pos + len(op))
    wildcard = "*" in raw and not quoted
    return Cmp(spec, key, typed_op, raw, raw, name_pos, wildcard)


def parse(text: str) -> Node | None:
    """Parse a filter; ``None`` for an empty one. Raises only :class:`FilterError`."""
    if len(text) > MAX_QUERY_CHARS:
        raise FilterError(f"filter too long ({len(text)} characters, at most {MAX_QUERY_CHARS})", MAX_QUERY_CHARS)
    return _Parser(text).parse()


# --- Helpers for building filter text (click-to-filter links) ---------------------------------
_BARE_OK = re.compile(r'^[^\s"()\\]+$')


def quote(value: str) -> str:
    """``value`` as a filter value: bare when it can be, else a quoted string."""
    if value and _BARE_OK.match(value) and not value.startswith("-") and "*" not in value:
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def add_term(query: str, field_name: str, value: str, negate: bool = False) -> str:
    """``query`` with ``field:value`` appended (the click-to-filter links), unless already there."""
    term = f"{'-' if negate else ''}{field_name}:{quote(value)}"
    q = query.strip()
    if term in q.split():
        return q
    return f"{q} {term}".strip()


def attr_term(key: str, value: str, max_len: int = 200) -> str:
    """``attr.<key>:<value>`` for a span attribute, or '' when the key cannot be written as a field
    (whitespace, quotes, operators) or the value is too long to be a useful filter."""
    if len(value) > max_len or not key or any(c in _WORD_STOP for c in key):
        return ""
    return f"attr.{key}:{quote(value)}"


@dataclass
class Explained:
    """A parse result for the page: the tree, or the error with a caret under the filter text."""

    text: str
    node: Node | None = None
    error: FilterError | None = None
    fields: list[FieldSpec] = field(default_factory=lambda: list(FIELDS))


def explain(text: str) -> Explained:
    try:
        return Explained(text, parse(text))
    except FilterError as exc:
        return Explained(text, None, exc)
