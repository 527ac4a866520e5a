"""The filter compiler alone: user text only ever reaches SQL as parameters, the aggregates a filter
needs, the WHERE/HAVING split of the list query, and what trace-level terms mean when ClickHouse
evaluates them (over literal aggregate rows, no tables needed)."""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracelake.query.compile import AGGREGATES, Compiler, aggs, has_span_terms, is_span_term
from tracelake.query.filters import And, Cmp, FilterError, Not, Or, Text, parse
from tracelake.query.params import Params, escape, query


def compiled(q: str, scope_ids: str = "") -> tuple[str, Compiler]:
    p = Params()
    comp = Compiler(p, p.i(0), p.i(1), scope_ids=scope_ids)
    return comp.compile(parse(q)), comp


def test_user_values_are_parameters_never_sql():
    hostile = "x' OR 1=1 --"
    sql, comp = compiled(f'service:"{hostile}" name:"{hostile}" attr.k:"{hostile}" "{hostile}" user:a*b')
    assert hostile not in sql and "OR 1=1" not in sql
    assert list(comp.p.values.values()).count(hostile) >= 3
    assert "a%b" in comp.p.values.values()  # the wildcard became a LIKE pattern, bound too


def test_like_keeps_percent_and_underscore_literal():
    _, comp = compiled("name:100%_done*")
    assert "100\\%\\_done%" in comp.p.values.values()


@pytest.mark.parametrize("q,needs", [
    ("tokens>1k", {"InTok", "OutTok"}), ("duration>2s", {"TS", "TE"}), ("cost>0.1", {"CostUsd"}),
    ("service:api", {"Svcs"}), ("model:gpt-4o", {"Mods"}), ("status:error", {"Errors"}),
    ("spans>3", {"NSpans"}), ("session:s1 user:u1", {"Sess", "Usr"}), ("name:x project:p", {"Root", "Proj"}),
    ("trace:abc", set()), ("span:retrieve", set()), ('"hello"', set()),
])
def test_needs_are_the_aggregates_used(q, needs):
    _, comp = compiled(q)
    assert comp.needs == needs and needs <= set(AGGREGATES)


def test_span_terms_read_span_rows_in_the_window():
    sql, _ = compiled("span:retrieve")
    assert sql.startswith("TraceId IN (SELECT TraceId FROM otel_traces WHERE Timestamp >= ")
    neg, _ = compiled("-span:retrieve")
    assert neg == f"(NOT {sql})"
    ne, _ = compiled("span!=retrieve")
    assert ne == f"NOT {sql}"
    scoped, _ = compiled("span:retrieve", scope_ids="{p9:String}")
    assert "TraceId IN ({p9:String}) AND Timestamp" in scoped


def test_span_term_classification():
    assert is_span_term(parse("kind:server")) and is_span_term(parse('"text"'))
    assert not is_span_term(parse("kind!=server")) and not is_span_term(parse("service:a"))
    assert has_span_terms(parse("service:a OR -event:exception"))
    assert not has_span_terms(parse("service:a tokens>3")) and not has_span_terms(None)


def test_split_moves_whole_trace_conditions_to_where():
    p = Params()
    comp = Compiler(p, p.i(0), p.i(1))
    where, having = comp.split(parse("span:retrieve service:api tokens>100 name:x"), p.i(0), p.i(1))
    assert "FROM otel_traces" in where  # the span term selects whole traces before GROUP BY
    assert "has(Services, " in where and "sum(arraySum(mapValues(InputTokens))" in where
    assert "otel_traces" not in having and "has(Svcs, " in having and "Root = " in having
    # The exact pass (no row window): span terms were answered already, trace terms stay.
    p2 = Params()
    where2, having2 = Compiler(p2, p2.i(0), p2.i(1)).split(parse("span:retrieve service:api"), None, None)
    assert where2 == "1" and "otel_traces" not in having2 and "has(Svcs, " in having2
    assert Compiler(p2, "0", "1").split(None, None, None) == ("1", "1")


def test_only_exact_session_or_user_needles_are_selective():
    assert compiled("session:s1")[1].selective is False  # compile() alone never prefilters
    for q, selective in (("session:s1", True), ("user:u1", True), ("session:s*", False), ("service:a", False)):
        p = Params()
        comp = Compiler(p, "0", "1")
        comp.split(parse(q), "0", "1")
        assert comp.selective is selective, q


def test_empty_filter_is_true():
    assert compiled("")[0] == "1"


def _blank(node):
    """The same filter with every user-written string replaced: the SQL must not change."""
    if isinstance(node, Text):
        return replace(node, value="zz")
    if isinstance(node, Cmp):
        value = "zz" if isinstance(node.value, str) and node.value != "*" else node.value
        return replace(node, value=value, key="k" if node.key else "")
    if isinstance(node, Not):
        return replace(node, item=_blank(node.item))
    return replace(node, items=tuple(_blank(n) for n in node.items)) if isinstance(node, (And, Or)) else node


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80))
def test_compiled_sql_does_not_depend_on_user_text(text):
    try:
        node = parse(text)
    except FilterError:
        return

    def sql(n):
        p = Params()
        return Compiler(p, p.i(0), p.i(1)).compile(n)

    assert sql(node) == sql(_blank(node))


def test_escape_of_raw_parameters():
    assert escape("a\\b\tc\nd\re\0") == "a\\\\b\\tc\\nd\\re\\0"


# --- what trace-level terms mean, evaluated by ClickHouse over literal aggregate rows ------------------
ROWS = ("SELECT * FROM values('TraceId String, TS Int64, TE Int64, Root String, RootService String, "
        "NSpans UInt64, Errors UInt64, Svcs Array(String), Mods Array(String), InTok UInt64, OutTok UInt64, "
        "CostUsd Float64, Sess String, Usr String, Proj String', "
        "('a1', 0, 2000000000, 'agent run', 'api', 3, 0, ['api','db'], ['gpt-4o'], 1200, 300, 0.02, 's1', 'u1', 'default'), "
        "('b2', 0, 50000000, 'chat', 'bot', 1, 1, ['bot'], ['claude-3'], 10, 5, 0.001, '', 'u2', 'shop'), "
        "('c3', 0, 9000000000, 'it''s \"quoted\"', 'api', 12, 2, ['api'], [], 0, 0, 0, 's2', '', 'default'))")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from tracelake.store import open_store

    s = open_store(data_dir=tmp_path_factory.mktemp("query-store"))
    yield s
    s.close()


@pytest.mark.parametrize("q,expect", [
    ("", {"a1", "b2", "c3"}),
    ("service:api", {"a1", "c3"}), ("service!=api", {"b2"}), ("service:d*", {"a1"}),
    ("model:gpt-4o", {"a1"}), ("model:*", {"a1", "b2"}), ("-model:*", {"c3"}),
    ("status:error", {"b2", "c3"}), ("status:ok", {"a1"}), ("status!=error", {"a1"}),
    ("duration>1s", {"a1", "c3"}), ("duration<=50ms", {"b2"}), ("latency>=9s", {"c3"}),
    ("tokens>1k", {"a1"}), ("input_tokens=10", {"b2"}), ("output_tokens<1", {"c3"}),
    ("cost>0.01", {"a1"}), ("cost<=$0.001", {"b2", "c3"}), ("spans>=3", {"a1", "c3"}),
    ("session:s1", {"a1"}), ("session:s*", {"a1", "c3"}), ("user!=u1", {"b2", "c3"}),
    ("name:chat", {"b2"}), ('name:"it\'s \\"quoted\\""', {"c3"}), ("name:*run", {"a1"}),
    ("project:shop", {"b2"}), ("trace:a", {"a1"}), ("trace!=a", {"b2", "c3"}),
    ("service:api status:error", {"c3"}), ("service:bot OR tokens>1k", {"a1", "b2"}),
    ("NOT (service:api OR model:claude*)", set()), ("-(status:error)", {"a1"}),
])
def test_trace_terms_evaluated_by_clickhouse(store, q, expect):
    sql, comp = compiled(q)
    got = {r["TraceId"] for r in query(store, f"SELECT TraceId FROM ({ROWS}) WHERE {sql}", comp.p)}
    assert got == expect


def test_aggs_names_each_expression():
    assert aggs(["TS", "NSpans"]) == f"{AGGREGATES['TS']} AS TS, {AGGREGATES['NSpans']} AS NSpans"
