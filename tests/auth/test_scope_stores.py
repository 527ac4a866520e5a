"""Per-project reads on both stores (embedded chdb, and a ClickHouse server through
clickhouse-connect): what ClickHouse itself enforces, without the web layer. Also keys: hashed,
timing-safe comparison, revocation."""
from __future__ import annotations

import hmac
import itertools
import uuid

import pytest

from otlp_spans import new_trace_id, span
from otlp_spans import request as otlp_request
from server_process import start_clickhouse_endpoint

from tracelake.auth.ingest import stamp_body
from tracelake.auth.keys import KeyRegistry, digest
from tracelake.auth.roles import Role
from tracelake.auth.scope import Forbidden, ScopedStore
from tracelake.store import StoreError, open_store
from tracelake.store.otlp import length_delimited

_n = itertools.count()


@pytest.fixture(scope="module", params=["chdb", "clickhouse"])
def store(request, tmp_path_factory):  # noqa: ANN001
    if request.param == "chdb":
        s = open_store(tmp_path_factory.mktemp("scope") / "data")
        endpoint = None
    else:
        endpoint = start_clickhouse_endpoint(tmp_path_factory.mktemp("scope-ch"))
        s = open_store(clickhouse_url=f"{endpoint.url}/s_{uuid.uuid4().hex[:8]}_{next(_n)}")
    bodies = []
    for project in ("A", "B"):
        body = otlp_request([span(f"span-{project}", new_trace_id(), attrs={"tracelake.project": "B", "p": project})]).SerializeToString()
        bodies.append(stamp_body(body, project))
    s.insert_otlp("otel_traces", length_delimited(bodies))
    yield s
    s.close()
    if endpoint is not None:
        endpoint.stop()


def test_each_scope_reads_its_own_rows(store):
    for project in ("A", "B"):
        scoped = ScopedStore(store, frozenset({project}))
        rows = scoped.query_readonly("SELECT DISTINCT Project, SpanAttributes['p'] AS p FROM otel_traces").to_pylist()
        assert rows == [{"Project": project, "p": project}]
        assert scoped.query_arrow("SELECT DISTINCT Project FROM trace_summary").column(0).to_pylist() == [project]
    both = ScopedStore(store, frozenset({"A", "B"})).query_readonly("SELECT count() AS n FROM otel_traces")
    assert both.column(0).to_pylist() == [2]
    nobody = ScopedStore(store, frozenset({"C"})).query_readonly("SELECT count() AS n FROM otel_traces")
    assert nobody.column(0).to_pylist() == [0]


@pytest.mark.parametrize("sql", [
    "SELECT * FROM merge(currentDatabase(), '^otel_traces$')",
    "SELECT * FROM otel_traces SETTINGS additional_table_filters = {'x': '1'}",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM system.parts",
    "SELECT * FROM api_keys",
    "SET readonly = 0",
])
def test_escapes_refused_by_the_engine_or_the_parser(store, sql):
    with pytest.raises((Forbidden, StoreError)):
        ScopedStore(store, frozenset({"A"})).query_readonly(sql)


def test_the_engine_itself_refuses_settings_changes_on_a_scoped_connection(store):
    """Without the AST check (called directly): readonly=1 locks the filters."""
    from tracelake.auth.scope import table_filters

    filters = table_filters(store.database, {"A"})
    with pytest.raises(StoreError):
        store.query_scoped("SELECT count() FROM otel_traces SETTINGS additional_table_filters = {'a': '1'}",
                           None, filters, readonly=True)
    with pytest.raises(StoreError):
        store.query_scoped("SELECT * FROM url('http://127.0.0.1:1/', 'CSV', 'a String')", None, filters, readonly=True)
    rows = store.query_scoped("SELECT count() AS n FROM view(SELECT * FROM otel_traces)", None, filters, readonly=True)
    assert rows.column(0).to_pylist() == [1]


def test_keys_are_hashed_compared_in_constant_time_and_revocable(store, monkeypatch):
    registry = KeyRegistry(store, ttl_s=60)
    record, key = registry.create("A", Role.VIEWER, "t", "test")
    stored = store.query_arrow("SELECT SecretSha256 FROM api_keys WHERE KeyId = {k:String}", {"k": record.key_id})
    assert stored.column(0).to_pylist()[0] == digest(key) and key not in str(stored.to_pylist())
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr("tracelake.auth.keys.hmac.compare_digest", lambda a, b: calls.append(1) or real(a, b))
    assert registry.resolve(key) == record or registry.resolve(key).key_id == record.key_id
    wrong = key[:-3] + ("aaa" if not key.endswith("aaa") else "bbb")
    assert registry.resolve(wrong) is None
    assert registry.resolve("tl_ffffffffffff_" + "z" * 43) is None  # unknown id: same hashing work
    assert len(calls) >= 3
    registry.revoke(record.key_id, "test")
    assert registry.resolve(key) is None  # at once, although the cache ttl is 60 s
