"""The filter language: every field and operator, errors with positions, and a fuzz test."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracelake.query.filters import (FIELDS, And, Cmp, FilterError, Not, Or, Text, add_term, attr_term, parse,
                                  quote, tokenize)


def cmp(q: str) -> Cmp:
    node = parse(q)
    assert isinstance(node, Cmp), node
    return node


def test_empty_is_none():
    assert parse("") is None
    assert parse("   ") is None


@pytest.mark.parametrize("op", [":", "=", "!=", ">", ">=", "<", "<="])
def test_every_operator_on_numbers(op):
    c = cmp(f"tokens{op}1000")
    assert (c.field.name, c.op, c.value) == ("tokens", op, 1000.0)


@pytest.mark.parametrize("text,ns", [("250ms", 250_000_000), ("2s", 2_000_000_000), ("1.5m", 90_000_000_000),
                                     ("1h", 3_600_000_000_000), ("10us", 10_000), ("7ns", 7), ("300", 300_000_000),
                                     ("2min", 120_000_000_000)])
def test_duration_units(text, ns):
    assert cmp(f"duration>{text}").value == ns


def test_number_suffixes_and_dollars():
    assert cmp("tokens>1k").value == 1000
    assert cmp("tokens>=2.5M").value == 2_500_000
    assert cmp("cost>$0.01").value == 0.01
    assert cmp("spans<3").value == 3


def test_the_issue_example():
    q = ('service:checkout model:gpt-4o status:error duration>2s tokens>1000 cost>0.01 session:abc '
         'user:u1 name:"agent run" "refund" attr.gen_ai.request.model:gpt-4o -status:error')
    node = parse(q)
    assert isinstance(node, And)
    names = [getattr(n, "field", None) and n.field.name for n in node.items]
    assert names[:9] == ["service", "model", "status", "duration", "tokens", "cost", "session", "user", "name"]
    assert node.items[8].value == "agent run"
    assert node.items[9] == Text("refund", q.index('"refund"'), "phrase")
    attr = node.items[10]
    assert (attr.field.name, attr.key, attr.value) == ("attr.<key>", "gen_ai.request.model", "gpt-4o")
    assert isinstance(node.items[11], Not) and node.items[11].item.value == "error"


@pytest.mark.parametrize("q,field", [(f"{f.name}:x", f.name) for f in FIELDS if f.kind in ("text", "list") and "<" not in f.name])
def test_text_fields(q, field):
    assert cmp(q).field.name == field


def test_aliases():
    assert cmp("latency>1s").field.name == "duration"
    assert cmp("op:chat").field.name == "operation"
    assert cmp("trace_id:abc123").field.name == "trace"
    assert cmp("in_tokens>3").field.name == "input_tokens"


def test_status_values():
    assert cmp("status:ERROR").value == "error"
    assert cmp("status:ok").value == "ok"
    assert cmp("status!=failed").op == "!="


def test_attributes():
    c = cmp("attr.url.full:https://example.com/a?b=c:d")
    assert (c.key, c.value) == ("url.full", "https://example.com/a?b=c:d")
    c = cmp("resource.service.version:1.2")
    assert (c.field.name, c.key) == ("resource.<key>", "service.version")
    c = cmp("attr.gen_ai.request.temperature>=0.5")
    assert c.value == 0.5 and c.op == ">="
    c = cmp("attr.x:*")
    assert c.value == "*" and c.wildcard


def test_wildcards_only_unquoted():
    assert cmp("name:agent*").wildcard
    assert not cmp('name:"agent*"').wildcard


def test_quotes_and_escapes():
    assert cmp(r'name:"say \"hi\" \\ ok"').value == 'say "hi" \\ ok'
    assert parse('"two words"') == Text("two words", 0, "phrase")


def test_negation_or_and_parentheses():
    node = parse("(service:a OR service:b) AND NOT status:error -model:x")
    assert isinstance(node, And)
    assert isinstance(node.items[0], Or)
    assert isinstance(node.items[1], Not) and isinstance(node.items[2], Not)


def test_hyphenated_words_are_not_negations():
    c = cmp("model:gpt-4o-mini")
    assert c.value == "gpt-4o-mini"
    assert parse("foo-bar") == Text("foo-bar", 0)


def test_spaces_around_operators():
    assert cmp("duration > 2s").value == 2_000_000_000


@pytest.mark.parametrize("q,pos,needle", [
    ("duration>2x", 9, "duration"),
    ("foo:bar", 0, "unknown field 'foo'"),
    ('name:"open', 5, "unterminated"),
    ("(service:a", 0, "missing ')'"),
    ("service:a)", 9, "unmatched ')'"),
    ("tokens>lots", 7, "expected a number"),
    ("service>3", 7, "does not apply"),
    ("status:maybe", 7, "status is error or ok"),
    (">3", 0, "needs a field name"),
    ("service:", 7, "missing value"),
    ("a OR", 2, "OR needs a term"),
    ("a AND", 2, "AND needs a term"),
    ("()", 0, "empty parentheses"),
    ("trace:xyz", 6, "hexadecimal"),
    ("attr.:x", 0, "needs an attribute key"),
    ('""', 0, "empty search text"),
    ("!x", 0, "unexpected character"),
    ("service:a !", 10, "unexpected character"),
])
def test_errors_have_positions(q, pos, needle):
    with pytest.raises(FilterError) as exc:
        parse(q)
    assert exc.value.pos == pos, exc.value
    assert needle in exc.value.message
    assert exc.value.end > exc.value.pos


def test_error_span_covers_the_bad_value():
    with pytest.raises(FilterError) as exc:
        parse("service:a duration>12parsecs")
    assert (exc.value.pos, exc.value.end) == (19, 28)


def test_limits():
    with pytest.raises(FilterError, match="too long"):
        parse("a" * 5000)
    with pytest.raises(FilterError, match="too many terms"):
        parse(" ".join(["x"] * 100))
    with pytest.raises(FilterError, match="nested too deeply"):
        parse("(" * 40 + "x" + ")" * 40)


def test_tokens_have_positions():
    toks = tokenize('service:a "b c"')
    assert [(t.kind, t.pos) for t in toks] == [("word", 0), ("op", 7), ("word", 8), ("string", 10), ("eof", 15)]


def test_quote_and_add_term_round_trip():
    for v in ["plain", "two words", 'qu"ote', "-neg", "a*b", "back\\slash", "", "(paren)"]:
        q = add_term("", "session", v)
        assert cmp(q).value == v
    assert add_term("service:a", "service", "a") == "service:a"
    assert quote("gpt-4o") == "gpt-4o"


def test_attr_term():
    assert cmp(attr_term("gen_ai.request.model", "gpt 4")).value == "gpt 4"
    assert attr_term("<b>key</b>", "x") == ""
    assert attr_term("k", "x" * 500) == ""


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(list('abc:=!<>()"\\-* \t.1234567890smhk$') + [" OR ", " AND ", "NOT ", "status", "duration",
                                                                             "attr.x", "tokens", "service"]),
                max_size=30).map("".join))
def test_fuzz_only_filter_errors_from_the_grammar_alphabet(text):
    try:
        parse(text)
    except FilterError as exc:
        assert 0 <= exc.pos <= len(text)


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_only_filter_errors_from_any_text(text):
    try:
        parse(text)
    except FilterError as exc:
        assert 0 <= exc.pos <= max(len(text), 2000)


def test_pinned_is_true_or_false():
    from tracelake.query.filters import FilterError, parse

    assert parse("pinned:true").value == "true" and parse("pinned:no").value == "false"
    assert parse("pinned!=yes").op == "!="
    with pytest.raises(FilterError, match="pinned is true or false"):
        parse("pinned:maybe")
    with pytest.raises(FilterError, match="does not apply"):
        parse("pinned>1")
