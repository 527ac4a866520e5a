"""Issue 19, finding 1: the scalar function ``file(path)`` read any file through ``/api/sql`` (the
admin key from /proc/self/environ, /etc/passwd, part files), ``readonly=1`` notwithstanding.

Now every function of untrusted SQL must be on the reviewed allow-list (tracelake/auth/sql_functions.txt),
for every caller; the embedded store checks the same list on its own untrusted connections (the
engine offers no wall: chdb runs as clickhouse-local, where ``file()`` ignores user_files_path)."""
from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from auth_stack import ADMIN_KEY
from server_process import start_clickhouse_endpoint

from tracelake.auth.functions import SAFE_TABLE_FUNCTIONS, allowed
from tracelake.auth.scope import Forbidden, ScopedStore, check_sql, table_filters
from tracelake.store import StoreError, open_store

ROOT = Path(__file__).resolve().parents[2]

# Ways to reach file() (and its kin) that a check reading only the top of a query would miss.
PROBES = [
    "SELECT file('/etc/passwd')",
    r"SELECT extract(file('/proc/self/environ'), 'TRACELAKE_ADMIN_KEY=[^\x00]*')",
    "SELECT FILE('/etc/passwd')",
    "SELECT File('/etc/passwd')",
    "SELECT length(x) FROM (SELECT file('/etc/passwd') AS x)",
    "SELECT 1 WHERE 1 IN (SELECT length(file('/etc/passwd')))",
    "WITH file('/etc/passwd') AS f SELECT f",
    "WITH t AS (SELECT file('/etc/passwd') AS f) SELECT * FROM t",
    "SELECT arrayMap(x -> file(x), ['/etc/passwd'])",
    "SELECT arrayFilter(x -> length(file(x)) > 0, ['/etc/passwd'])",
    "SELECT * FROM view(SELECT file('/etc/passwd') AS f)",
    "SELECT * APPLY(file) FROM (SELECT '/etc/passwd' AS p)",  # APPLY hides the name from EXPLAIN AST
    "SELECT COLUMNS('p') APPLY file FROM (SELECT '/etc/passwd' AS p)",
    "SELECT * REPLACE (file(p) AS p) FROM (SELECT '/etc/passwd' AS p)",
    "SELECT JSONExtractString(file('/etc/passwd'), 'a')",
    "SELECT count() OVER (PARTITION BY file('/etc/passwd'))",
    "SELECT file('/etc/passwd') UNION ALL SELECT 'x'",
    "DESCRIBE (SELECT file('/etc/passwd'))",
    "SELECT hostName(), version()",
    "SELECT dictGet('tracelake.model_prices_dict', 'Input', tuple('x'))",
    "SELECT getSetting('user_files_path')",
    "SELECT sleep(1)",
    "SELECT * FROM Python(x)",  # chdb's table function reading the server's Python objects
]


@pytest.mark.parametrize("role", ["A:viewer", "admin"])
@pytest.mark.parametrize("sql", PROBES)
def test_api_refuses_every_file_probe(stack, role, sql):
    client = stack.admin if role == "admin" else stack.client(role)
    for response in (client.sql(sql), client.post("/api/sql", json={"q": sql})):  # form and JSON bodies
        assert response.status_code == 400, response.text
        assert "root:" not in response.text and ADMIN_KEY not in response.text
        assert "not allowed" in response.json()["error"] or "not supported" in response.json()["error"]


def test_the_refusal_names_the_function_and_where_the_list_is(stack):
    error = stack.client("A:viewer").sql("SELECT upper(file('/etc/passwd'))").json()["error"]
    assert error == "function file() is not allowed in /api/sql; allowed functions: see docs/security.md#sql-surface"


def test_everyday_queries_still_run(stack):
    viewer = stack.client("A:viewer")
    rows = viewer.sql("SELECT Project, countIf(StatusCode != 'Error') AS ok, uniqExact(TraceId), quantiles(0.5, 0.9)(Duration), "
                      "groupArray(SpanName), arrayMap(x -> upper(x), [SpanName]), toStartOfHour(Timestamp), "
                      "row_number() OVER (ORDER BY Timestamp) FROM otel_traces GROUP BY Project, SpanName, Timestamp")
    assert rows.status_code == 200, rows.text
    assert {r[0] for r in rows.json()["rows"]} == {"A"}  # other tests add spans to A; never one of B


@pytest.fixture(scope="module", params=["chdb", "clickhouse"])
def store(request, tmp_path_factory):  # noqa: ANN001
    endpoint = None
    if request.param == "chdb":
        s = open_store(tmp_path_factory.mktemp("fn") / "data")
    else:
        endpoint = start_clickhouse_endpoint(tmp_path_factory.mktemp("fn-ch"))
        s = open_store(clickhouse_url=f"{endpoint.url}/f_{uuid.uuid4().hex[:8]}")
    yield s
    s.close()
    if endpoint is not None:
        endpoint.stop()


@pytest.mark.parametrize("projects", [frozenset({"A"}), None], ids=["project", "admin"])
@pytest.mark.parametrize("sql", PROBES)
def test_both_stores_refuse_every_probe(store, projects, sql):
    with pytest.raises(Forbidden):
        ScopedStore(store, projects).query_readonly(sql)


@pytest.mark.parametrize("sql", ["SELECT file('/etc/passwd')", "SELECT FILE('/etc/passwd')",
                                 "SELECT arrayMap(x -> file(x), ['/etc/passwd'])",
                                 "SELECT * APPLY(file) FROM (SELECT '/etc/passwd' AS p)",
                                 "SELECT * FROM view(SELECT file('/etc/passwd'))",
                                 "EXPLAIN AST SELECT file('/etc/passwd')", "SELECT 1; SELECT file('/etc/passwd')"])
def test_each_store_refuses_file_below_the_api_check(store, sql):
    """Straight on the store's untrusted entry points, with no ScopedStore and no check_sql in
    front: the store's own wall refuses. The engine would not: chdb (clickhouse-local, also behind
    the test's ClickHouse-HTTP endpoint) reads any path with file(), whatever user_files_path says."""
    with pytest.raises(StoreError) as refused:
        store.query_scoped(sql, None, table_filters(store.database, {"A"}), readonly=True)
    assert "root:" not in str(refused.value)
    with pytest.raises(StoreError) as refused:
        store.query_readonly(sql)
    assert "root:" not in str(refused.value)
    assert store.query_readonly("SELECT upper('ok') AS v").column(0).to_pylist() == ["OK"]


_EMBEDDED: list = []


def _embedded(tmp_path_factory):
    if not _EMBEDDED:
        _EMBEDDED.append(open_store(tmp_path_factory.mktemp("fn-wall") / "data"))
    return _EMBEDDED[0]


@pytest.fixture(scope="module", autouse=True)
def _close_embedded():
    yield
    while _EMBEDDED:
        _EMBEDDED.pop().close()


# --- the list itself -------------------------------------------------------------------------------
# Functions that reach outside the query's data: none may ever be on the list.
OUTSIDE = ["file", "url", "s3", "hostName", "FQDN", "fullHostName", "version", "currentUser", "user", "getSetting",
           "getSettingOrDefault", "getServerSetting", "getMergeTreeSetting", "getMacro", "getClientHTTPHeader",
           "hasColumnInTable", "joinGet", "joinGetOrNull", "sleep", "sleepEachRow", "serverUUID", "queryID",
           "query_id", "initialQueryID", "globalVariable", "filesystemAvailable", "filesystemCapacity",
           "filesystemUnreserved", "dictGet", "dictGetString", "dictGetOrDefault", "dictHas", "catboostEvaluate",
           "naiveBayesClassifier", "lemmatize", "stem", "synonyms", "aiGenerate", "addressToSymbol", "demangle",
           "showCertificate", "generateSerialID", "logTrace", "tcpPort", "uptime", "__getScalar", "chdb"]


def test_nothing_that_reaches_outside_is_allowed():
    listed = allowed()
    assert [n for n in OUTSIDE if listed.allows(n) or listed.allows(n.upper()) or listed.allows(n + "If")] == []


def test_the_list_matches_the_engine(tmp_path_factory):
    """Every excluded function of system.functions is refused, aliases follow their targets, and
    no allowed name is also a table function that reaches outside."""
    s = _embedded(tmp_path_factory)
    listed = allowed()
    rows = s.query_arrow("SELECT name, case_insensitive, alias_to FROM system.functions").to_pylist()
    by_name = {r["name"]: r for r in rows}
    named = {n for names in listed.sections.values() for n in names} - set(listed.combinators)
    syntax = set(listed.sections["Syntax (names the parser gives operators and clauses)"])
    assert sorted(named - set(by_name) - syntax) == []  # every listed name exists in this engine
    for name, r in by_name.items():
        if r["alias_to"] and listed.allows(name):
            assert listed.allows(r["alias_to"]), f"{name} is allowed, its target {r['alias_to']} is not"
    # A function the list leaves out stays out under every spelling the resolver accepts
    # (another case, or read as an aggregate with combinators).
    assert sorted(n for n in set(by_name) - named if listed.allows(n) or listed.allows(n.upper())) == []
    for name, r in by_name.items():  # case-insensitive in the list exactly when in the engine
        if name in named and name not in syntax:
            assert (name.lower() in listed.any_case) == bool(r["case_insensitive"]), name
    outside = {n for n in OUTSIDE if n in by_name}
    assert outside and not any(listed.allows(n) for n in outside)
    table_functions = set(s.query_arrow("SELECT name FROM system.table_functions").column(0).to_pylist())
    assert sorted(n for n in table_functions if listed.allows(n) and n not in SAFE_TABLE_FUNCTIONS) == []


# --- what the docs show must still run -------------------------------------------------------------
def doc_examples() -> list[str]:
    """Every SQL statement shown in README.md and docs/*.md: ```sql blocks, `tracelake sql "..."`,
    and `/api/sql?q=...` URLs."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        for block in re.findall(r"```sql\n(.*?)```", text, re.S):
            # A statement starts at an unindented SELECT/WITH line and may go on over indented or
            # clause lines; '--' comments are dropped.
            stmts: list[list[str]] = []
            for line in (raw.split("--")[0].rstrip() for raw in block.splitlines()):
                if line.upper().startswith(("SELECT", "WITH")):
                    stmts.append([line])
                elif line.strip() and stmts:
                    stmts[-1].append(line.strip())
            found += [" ".join(parts).rstrip(";") for parts in stmts]
        found += [q for q in re.findall(r'tracelake sql "([^"]+)"', text) if "…" not in q]
        found += [q.replace("+", " ") for q in re.findall(r"/api/sql\?q=([^'\s`]+)", text)]
    return found


# A Grafana ClickHouse plugin style trace query over the exporter's layout (as a dashboard would send it).
GRAFANA = ["SELECT TraceId AS traceID, SpanId AS spanID, ParentSpanId AS parentSpanID, ServiceName AS serviceName, "
           "SpanName AS operationName, multiply(toUnixTimestamp64Nano(Timestamp), 0.000001) AS startTime, "
           "multiply(Duration, 0.000001) AS duration, "
           "arrayMap(key -> map('key', key, 'value', SpanAttributes[key]), mapKeys(SpanAttributes)) AS tags, "
           "arrayMap(key -> map('key', key, 'value', ResourceAttributes[key]), mapKeys(ResourceAttributes)) AS serviceTags "
           "FROM otel_traces WHERE TraceId = '5b8efff798038103d269b633813fc60c' "
           "AND Timestamp >= (SELECT min(Start) FROM otel_traces_trace_id_ts WHERE TraceId = '5b8efff798038103d269b633813fc60c') "
           "ORDER BY startTime ASC LIMIT 1000",
           "SELECT $__timeInterval(Timestamp) AS time, ServiceName, count() AS spans, avg(Duration) / 1e6 AS avg_ms "
           "FROM otel_traces WHERE Timestamp >= toDateTime64(1700000000, 9) AND Timestamp <= toDateTime64(1700003600, 9) "
           "GROUP BY time, ServiceName ORDER BY time".replace("$__timeInterval(Timestamp)", "toStartOfInterval(Timestamp, INTERVAL 60 second)")]


def test_every_sql_example_of_the_docs_passes_the_check(tmp_path_factory):
    s = _embedded(tmp_path_factory)
    examples = doc_examples()
    assert len(examples) >= 4 and any("LlmModel" in e for e in examples)
    tables = frozenset(s.query_arrow("SELECT name FROM system.tables WHERE database = currentDatabase()").column(0).to_pylist())
    tables |= {"otel_traces_archive", "archived_traces"}  # made with the archive tier
    for sql in examples + GRAFANA:
        ast = s.query_arrow("EXPLAIN AST " + sql).column(0).to_pylist()
        check_sql("\n".join(ast), s.database, strict=True, tables=tables)  # raises Forbidden if refused


class _Recording:
    """The store, noting every read the UI makes."""

    def __init__(self, inner) -> None:
        self.inner, self.reads = inner, []
        self.database, self.description = inner.database, inner.description

    def query_arrow(self, sql, params=None):
        self.reads.append((sql, params))
        return self.inner.query_arrow(sql, params)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_the_trace_lists_own_queries_call_only_listed_functions(tmp_path_factory):
    """What the trace list, a filtered list, the dashboard, the sessions and trace pages run would pass
    /api/sql's function check too (the list is wide enough for real trace queries)."""
    import time

    from otlp_spans import new_trace_id, span
    from otlp_spans import request as otlp_request

    from tracelake.auth.functions import ast_text, check_functions
    from tracelake.query.filters import parse
    from tracelake.store.otlp import length_delimited
    from tracelake.ui.queries.dashboard import dashboard
    from tracelake.ui.queries.sessions import list_sessions
    from tracelake.ui.queries import trace, trace_tree
    from tracelake.ui.queries.trace_list import list_traces

    s = _embedded(tmp_path_factory)
    tid = new_trace_id()
    s.insert_otlp("otel_traces", length_delimited([otlp_request([span("root", tid, attrs={
        "session.id": "s1", "gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 3})]).SerializeToString()]))
    rec = _Recording(s)
    now = time.time_ns()
    lo, hi = now - 3600 * 10**9, now + 60 * 10**9
    for node in (None, parse("model:m status:ok duration>1ms"), parse("session:s1 cost>0 root:root")):
        list_traces(rec, node, lo, hi)
    dashboard(rec, lo, hi)
    dashboard(rec, lo, hi, parse("model:m"), archive=True)  # its archive half too (index and span view)
    list_sessions(rec, lo, hi)
    loc = trace.locate(rec, tid.hex())  # the trace page: where, totals, skeleton, shape, find
    assert loc is not None
    totals = trace_tree.trace_totals(rec, loc)
    tree = trace_tree.trace_tree(rec, loc, totals.spans)
    trace_tree.shape(rec, loc)
    trace_tree.find(rec, loc, tree, "root status:error gen_ai.request.model=m")
    assert len(rec.reads) >= 11
    refused: set[str] = set()
    for sql, params in rec.reads:
        try:
            check_functions(ast_text(s.query_arrow("EXPLAIN AST " + sql, params)))
        except Forbidden as exc:
            refused.add(str(exc).split("()")[0].split()[-1])
    # Pricing reads the price dictionaries (cost priced at read, docs/cost.md): the UI's own queries
    # do, /api/sql never lets a caller name them (another project's negotiated rates). Callers get
    # the same figures through the CostUsd / Unpriced columns, whose ALIAS text the check never sees.
    assert refused <= {"dictGetOrDefault", "dictGet", "dictHas"}, refused


def test_a_statement_with_bytes_that_are_not_utf8_gets_a_clear_error(stack):
    """ClickHouse's canonical text of `'\\xDC'` holds the raw byte: it is refused plainly (it was a
    500 before), and the way around it works."""
    viewer = stack.client("A:viewer")
    refused = viewer.sql(r"SELECT length('\xDC\xFF')")
    assert refused.status_code == 400 and "unhex" in refused.json()["error"]
    assert viewer.sql("SELECT length(unhex('DCFF'))").json()["rows"] == [[2]]


def test_each_store_refuses_into_outfile_below_the_api_check(store, tmp_path):
    """chdb writes INTO OUTFILE files even with readonly=1: the store's own wall refuses it too."""
    target = tmp_path / "outfile.txt"
    with pytest.raises(Forbidden):
        store.query_scoped(f"SELECT 1 INTO OUTFILE '{target}'", None, table_filters(store.database, {"A"}), readonly=True)
    assert not target.exists()
