"""The filter language's score terms (issue 25): what parses, what is refused with its position,
and the SQL they compile to (values bound, the same subquery in both tiers, per project)."""
from __future__ import annotations

import pytest

from tracelake.query.compile import ARCHIVE, HOT, Compiler, has_span_terms, is_span_term
from tracelake.query.filters import FilterError, parse
from tracelake.query.params import Params


def compiled(q: str, tier=HOT) -> tuple[str, Compiler]:
    p = Params()
    comp = Compiler(p, p.i(0), p.i(1), tier=tier)
    return comp.compile(parse(q)), comp


@pytest.mark.parametrize("q,key,op,value", [
    ("score.correctness<3", "correctness", "<", 3.0),
    ("score.thumbs:down", "thumbs", ":", "down"),
    ("score.Tone:Rude", "Tone", ":", "rude"),
    ("score.helpful=1", "helpful", "=", 1.0),
    ("score.tone:*", "tone", ":", "*"),
    ("has:score.tone", "tone", ":", "*"),
    ('score.label:"a b"', "label", ":", "a b"),
    ("score.eval.v2>=0.5", "eval.v2", ">=", 0.5),
])
def test_score_terms_parse(q, key, op, value):
    node = parse(q)
    assert (node.key, node.op, node.value) == (key, op, value)
    assert not is_span_term(node) and not has_span_terms(node)


@pytest.mark.parametrize("q,message,pos", [
    ("score.:x", "a score name", 6),
    ("score.correctness<high", "expected a number", 18),
    ("has:tone", "has: takes a score name", 4),
    ("has:score.", "a score name", 10),
    ("has>score.tone", "has: takes a score name", 4),
    ("score.a b:1", "unknown field", None),
])
def test_bad_score_terms_say_what_and_where(q, message, pos):
    with pytest.raises(FilterError) as err:
        parse(q)
    assert message in err.value.message
    if pos is not None:
        assert err.value.pos == pos


def test_score_values_are_parameters_and_projects_match():
    hostile = "x' or 1=1 --"  # categories are compared lower-cased
    sql, comp = compiled(f'score.tone:"{hostile}" score.ok<3')
    assert hostile not in sql and "or 1=1" not in sql
    assert hostile in comp.p.values.values() and "tone" in comp.p.values.values()
    assert sql.count("(Proj, TraceId) IN (SELECT Project, TraceId FROM scores WHERE Name = ") == 2
    assert "Proj" in comp.needs


def test_both_tiers_read_the_same_scores_subquery():
    hot, _ = compiled("score.correctness<3")
    archive, _ = compiled("score.correctness<3", ARCHIVE)
    assert hot == archive and "argMax(Value, CreatedAt) < {p" in hot


def test_negation_and_not_equal():
    neq, _ = compiled("score.thumbs!=down")
    pos, _ = compiled("score.thumbs:down")
    assert neq == f"NOT {pos}"
    neg, _ = compiled("-has:score.thumbs")
    assert neg.startswith("(NOT (Proj, TraceId) IN (SELECT Project, TraceId FROM scores WHERE Name = ")


def test_the_list_prefilter_and_having_share_one_subquery_text():
    p = Params()
    comp = Compiler(p, p.i(0), p.i(1))
    where, having = comp.split(parse("score.correctness<3 service:api"), p.i(0), p.i(1))
    sub = having.split("(Proj, TraceId) IN (", 1)[1].split(") AND", 1)[0]
    assert f"(Project, TraceId) IN ({sub})" in where  # identical text: ClickHouse builds the set once
    assert comp.score_names == {"correctness"}
