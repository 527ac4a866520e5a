"""The store contract, on both stores, without the collector: schema, OTLP decode in ClickHouse, derived LLM columns,
idempotent trace summary, parameter binding, read-only SQL."""
from __future__ import annotations

import json

import pytest
from otlp_spans import GENAI_CHAT, OPENINFERENCE_LLM, OPENLLMETRY_CHAT, new_trace_id, request, span

from tracelake.store import StoreError
from tracelake.store.migrate import applied_versions, migrate
from tracelake.store.otlp import length_delimited
from tracelake.store.prices import PriceFileError, install_prices, load_prices_file
from tracelake.store.schema import MIGRATIONS


def insert(store, *requests) -> None:
    store.insert_otlp("otel_traces", length_delimited([r.SerializeToString() for r in requests]))


def rows(store, sql, **params):
    return store.query_arrow(sql, params).to_pylist()


def test_migrations_are_recorded_and_idempotent(store):
    assert applied_versions(store) == {m.version for m in MIGRATIONS}
    assert migrate(store) == []


def test_every_value_type_survives(store):
    trace = new_trace_id()
    attrs = {"s": "text", "empty": "", "i": -42, "zero": 0, "f": 1.5, "b": True, "no": False, "raw": b"\x00\x01",
             "arr": ["a", "b"], "ints": [1, 2], "kv": {"k": "v", "n": 3}}
    linked = new_trace_id()
    req = request([span("op", trace, attrs=attrs, status=2, status_message="boom", kind=3,
                        events=[("exception", {"exception.type": "ValueError", "exception.message": "bad"})],
                        links=[(linked, b"\x01" * 8, {"why": "retry"})])],
                  resource={"deployment.environment": "test"})
    insert(store, req)
    [row] = rows(store, "SELECT SpanAttributes, StatusCode, StatusMessage, SpanKind, ServiceName, ResourceAttributes, "
                        "ScopeName, ScopeVersion, Events.Name, Events.Attributes, Links.TraceId, Links.SpanId, "
                        "Links.Attributes, TraceId, Duration FROM otel_traces")
    got = dict(row["SpanAttributes"])
    assert got == {"s": "text", "empty": "", "i": "-42", "zero": "0", "f": "1.5", "b": "true", "no": "false",
                   "raw": "AAE=", "arr": '["a","b"]', "ints": "[1,2]", "kv": '{"k":"v","n":3}'}
    assert json.loads(got["kv"]) == {"k": "v", "n": 3}
    assert (row["StatusCode"], row["StatusMessage"], row["SpanKind"]) == ("Error", "boom", "Client")
    assert row["ServiceName"] == "test-service"
    assert dict(row["ResourceAttributes"])["deployment.environment"] == "test"
    assert (row["ScopeName"], row["ScopeVersion"]) == ("tests.scope", "1.0")
    assert row["Events.Name"] == ["exception"]
    assert dict(row["Events.Attributes"][0]) == {"exception.type": "ValueError", "exception.message": "bad"}
    assert row["Links.TraceId"] == [linked.hex()] and row["Links.SpanId"] == ["01" * 8]
    assert dict(row["Links.Attributes"][0]) == {"why": "retry"}
    assert row["TraceId"] == trace.hex() and row["Duration"] == 1_000_000


def test_llm_columns_from_all_three_conventions(store):
    trace = new_trace_id()
    insert(store, request([span("chat", trace, attrs=GENAI_CHAT), span("llm", trace, attrs=OPENINFERENCE_LLM),
                           span("anthropic.chat", trace, attrs=OPENLLMETRY_CHAT)]))
    got = {r["SpanName"]: r for r in rows(store, "SELECT SpanName, LlmOperation, LlmProvider, LlmModel, InputTokens, "
                                                 "OutputTokens, CostUsd, SessionId, UserId FROM otel_traces")}
    assert got["chat"]["LlmModel"] == "gpt-4o-2024-08-06" and got["chat"]["LlmProvider"] == "openai"
    assert (got["chat"]["InputTokens"], got["chat"]["OutputTokens"]) == (1000, 500)
    # gpt-4o at 2.5 / 10 USD per million tokens, found through the dated model name.
    assert got["chat"]["CostUsd"] == pytest.approx(1000 * 2.5e-6 + 500 * 10e-6)
    assert (got["chat"]["SessionId"], got["chat"]["UserId"], got["chat"]["LlmOperation"]) == ("sess-1", "user-1", "chat")
    assert got["llm"]["LlmModel"] == "gpt-4o-mini" and got["llm"]["LlmOperation"] == "llm"
    assert (got["llm"]["InputTokens"], got["llm"]["OutputTokens"]) == (2000, 100)
    assert got["llm"]["CostUsd"] == pytest.approx(2000 * 0.15e-6 + 100 * 0.6e-6)
    assert got["anthropic.chat"]["LlmProvider"] == "Anthropic"
    assert (got["anthropic.chat"]["InputTokens"], got["anthropic.chat"]["OutputTokens"]) == (300, 40)
    assert got["anthropic.chat"]["UserId"] == "user-3"


def test_trace_summary_counts_a_retried_request_once(store):
    trace = new_trace_id()
    root = span("agent run", trace, attrs={"session.id": "s-9"})
    req = request([root, span("chat", trace, parent=root["span_id"], attrs={**GENAI_CHAT, "session.id": "s-9"}, status=2)])
    insert(store, req)
    insert(store, req)  # a client retry after a lost ack
    [summary] = rows(store, """
        SELECT TraceId, min(Start) AS start, argMinMerge(FirstSpanName) AS first, max(RootName) AS root,
               uniqMerge(SpanCount) AS spans, length(groupUniqArrayArray(ErrorSpans)) AS errors,
               groupUniqArrayArray(Models) AS models, arraySum(mapValues(maxMap(InputTokens))) AS input,
               arraySum(mapValues(maxMap(OutputTokens))) AS output, arraySum(mapValues(maxMap(Cost))) AS cost,
               max(SessionId) AS session
        FROM trace_summary WHERE TraceId = {t:String} GROUP BY TraceId""", t=trace.hex())
    assert summary["root"] == "agent run" and summary["spans"] == 2 and summary["errors"] == 1
    assert (summary["input"], summary["output"]) == (1000, 500)
    assert summary["cost"] == pytest.approx(0.0075)
    assert summary["models"] == ["gpt-4o-2024-08-06"] and summary["session"] == "s-9"
    deduped = rows(store, "SELECT SpanId FROM otel_traces WHERE TraceId = {t:String} LIMIT 1 BY SpanId", t=trace.hex())
    assert len(deduped) == 2
    [lookup] = rows(store, "SELECT count() AS n FROM otel_traces_trace_id_ts WHERE TraceId = {t:String}", t=trace.hex())
    assert lookup["n"] >= 1


def test_parameters_are_bound_not_formatted(store):
    trace = new_trace_id()
    hostile = "x'); DROP TABLE otel_traces; --"
    insert(store, request([span(hostile, trace)]))
    assert rows(store, "SELECT count() AS n FROM otel_traces WHERE SpanName = {n:String}", n=hostile) == [{"n": 1}]
    assert rows(store, "SELECT count() AS n FROM otel_traces") == [{"n": 1}]


@pytest.mark.parametrize("sql", ["INSERT INTO model_price_history (Model) VALUES ('x')", "DROP TABLE otel_traces",
                                 "CREATE TABLE x (a Int8) ENGINE = Memory", "SELECT 1 SETTINGS readonly = 0",
                                 "INSERT INTO model_price_history (Model) VALUES ('x') --"])
def test_readonly_sql_is_refused_by_the_engine(store, sql):
    with pytest.raises(StoreError):
        store.query_readonly(sql)
    assert store.query_readonly("SELECT count() AS n FROM model_price_history WHERE Model = 'x'").to_pylist() == [{"n": 0}]


def test_user_prices_override_builtin_ones(store, tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"my-finetune": [1.0, 2.0], "gpt-4o": [5.0, 20.0]}))
    install_prices(store, prices)
    trace = new_trace_id()
    insert(store, request([span("a", trace, attrs={"gen_ai.request.model": "my-finetune", "gen_ai.usage.input_tokens": 1_000_000,
                                                   "gen_ai.usage.output_tokens": 1_000_000}),
                           span("b", trace, attrs={**GENAI_CHAT, "gen_ai.response.model": "gpt-4o"})]))
    got = {r["SpanName"]: r["CostUsd"] for r in rows(store, "SELECT SpanName, CostUsd FROM otel_traces")}
    assert got["a"] == pytest.approx(3.0)
    assert got["b"] == pytest.approx(1000 * 5e-6 + 500 * 20e-6)


def test_bad_prices_file_is_refused_with_the_reason(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"m": [1.0]}))
    with pytest.raises(PriceFileError, match="'m'.*\\[input, output\\]"):
        load_prices_file(bad)


def test_the_store_stands_without_the_collector():
    """The store (and its OTLP INSERT) imports nothing of the collector: the archiver uses it alone."""
    import subprocess
    import sys

    code = ("import sys, tracelake.store, tracelake.store.chdb_store, tracelake.store.clickhouse_store, "
            "tracelake.store.otlp, tracelake.store.migrate; "
            "bad = sorted(m for m in sys.modules if m.startswith('tracelake.collector')); assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_a_segment_inserted_again_under_its_token_shows_up_once_across_days(store, tmp_path):
    """A spool segment spanning three day partitions, inserted three times (a retry, a replay after
    a crash): every partition's block is deduplicated by the token, in the table and the views."""
    import time

    day = 86_400 * 10**9
    now = time.time_ns()
    trace = new_trace_id()
    stream = length_delimited([request([span(f"d{k}-{i}", trace, start_ns=now - k * day) for i in range(40)],
                                       service="dedup").SerializeToString() for k in range(3)])
    segment = tmp_path / "segment.pb"
    segment.write_bytes(stream)
    for _ in range(2):
        store.insert_otlp_file("otel_traces", str(segment), dedup_token="collector-a/seg-1")
    store.insert_otlp("otel_traces", stream, dedup_token="collector-a/seg-1")
    [row] = rows(store, "SELECT count() AS n, uniqExact(TraceId, SpanId) AS spans, uniqExact(toDate(Timestamp)) AS days "
                        "FROM otel_traces WHERE ServiceName = 'dedup'")  # no FINAL, no OPTIMIZE
    assert row == {"n": 120, "spans": 120, "days": 3}
    [lookup] = rows(store, "SELECT count() AS n FROM otel_traces_trace_id_ts WHERE TraceId = {t:String}", t=trace.hex())
    assert lookup["n"] == 1  # the view's block was deduplicated too
    # Another token is another segment: inserted again (the ReplacingMergeTree merges such
    # duplicates later; the spool never reuses a token).
    store.insert_otlp("otel_traces", stream, dedup_token="collector-a/seg-2")
    assert rows(store, "SELECT count() AS n FROM otel_traces WHERE ServiceName = 'dedup'") == [{"n": 240}]
