"""Issue 19, finding 2: ``retention_holds`` had no project filter, so alpha's viewer read beta's
holds with ``SELECT * FROM retention_holds``. Now every table and view of the database, after all
migrations and with the archive tier on, is classified (tracelake.auth.scope); one that is not is
refused by name and filtered to nothing by ClickHouse (fail closed)."""
from __future__ import annotations

import pytest

from tracelake.archiver.delta import ArchiveLocation
from tracelake.archiver.service import ensure_archive_view
from tracelake.auth import scope
from tracelake.auth.scope import Forbidden, ScopedStore, table_filters
from tracelake.store import open_store


def test_a_project_reads_its_own_holds_only_in_sql(stack):
    admin = stack.admin
    name = "sec-sql-hold-of-b"
    made = admin.post("/api/holds", json={"name": name, "filter": "user:user-B", "reason": "secret reason of B",
                                          "project": "B"})
    assert made.status_code == 201, made.text
    try:
        for sql in ("SELECT * FROM retention_holds", "SELECT Name, Reason FROM retention_holds WHERE Project = 'B'",
                    "SELECT * FROM view(SELECT * FROM retention_holds)",
                    "SELECT count() FROM otel_traces WHERE 'x' IN (SELECT Reason FROM retention_holds)"):
            response = stack.client("A:viewer").sql(sql)
            assert response.status_code == 200, response.text
            assert name not in response.text and "secret reason of B" not in response.text
        own = stack.client("B:viewer").sql("SELECT Name FROM retention_holds").json()["rows"]
        assert [name] in own
        assert [name] in admin.sql("SELECT Name FROM retention_holds").json()["rows"]
    finally:
        admin.post(f"/api/holds/{name}/release")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Every migration, and the archive tier's tables and views (a local Delta archive)."""
    data = tmp_path_factory.mktemp("tables") / "data"
    s = open_store(data)
    assert ensure_archive_view(s, ArchiveLocation.for_url(f"file://{data}/archive"))
    yield s
    s.close()


def _tables(store) -> dict[str, str]:
    rows = store.query_arrow("SELECT name, engine FROM system.tables WHERE database = currentDatabase()").to_pylist()
    return {r["name"]: r["engine"] for r in rows}


def test_every_table_and_view_is_classified(store):
    tables = _tables(store)
    assert {"retention_holds", "otel_traces_archive", "archive_runs", "otel_traces_archive_delta"} <= set(tables)
    unclassified = sorted(set(tables) - scope.CLASSIFIED_TABLES)
    assert unclassified == [], f"classify these in tracelake/auth/scope.py (filter, private or global): {unclassified}"


def test_every_readable_table_has_a_project_filter_or_holds_nothing_per_project(store):
    filters = table_filters(store.database, {"A"})
    readable = set(_tables(store)) & scope.READABLE_TABLES
    bare = sorted(t for t in readable if f"{store.database}.{t}" not in filters
                  and t not in scope.GLOBAL_TABLES and t not in scope.SAFE_VIEWS)
    assert bare == []
    assert filters[f"{store.database}.retention_holds"] == "Project IN ('A')"


def test_a_readable_view_reads_only_filtered_or_global_tables(store):
    """Filters apply through views, so a view is safe when every table it reads is filtered,
    private (filter 0), global, or another safe view."""
    safe_sources = (set(scope.PROJECT_TABLES + scope.TRACE_TABLES + scope.PROJECT_TABLES_OWN_ONLY + scope.GLOBAL_TABLES
                        + scope.INTERNAL_TABLES + scope.SAFE_VIEWS) | set(scope.PRIVATE_TABLES))
    views = {r["name"]: r["as_select"] for r in store.query_arrow(
        "SELECT name, as_select FROM system.tables WHERE database = currentDatabase() AND engine = 'View'").to_pylist()}
    assert set(views) <= set(scope.SAFE_VIEWS)
    for name, select in views.items():
        ast = store.query_arrow("EXPLAIN AST " + select).column(0).to_pylist()
        sources = {line.split()[1].split(".")[-1] for line in ast if line.strip().startswith("TableIdentifier")}
        assert sources and sources <= safe_sources, (name, sources - safe_sources)


def test_private_and_internal_tables_are_refused_by_name(store):
    scoped = ScopedStore(store, frozenset({"A"}))
    for table in (*scope.PRIVATE_TABLES, *scope.INTERNAL_TABLES):
        for sql in (f"SELECT * FROM {table}", f"SELECT * FROM {store.database}.{table}", f"DESCRIBE {table}",
                    f"SELECT count() FROM numbers(1) WHERE ('x', 1) IN {table}"):
            with pytest.raises(Forbidden):
                scoped.query_readonly(sql)


def test_a_table_no_one_classified_fails_closed(store):
    """A later migration's table: refused by name (FROM, IN, a view over it), and filtered to no
    rows by ClickHouse itself below that check."""
    store.execute("CREATE TABLE IF NOT EXISTS sec_probe_new_table (Secret String) ENGINE = MergeTree ORDER BY Secret")
    store.execute("INSERT INTO sec_probe_new_table VALUES ('beta secret')")
    try:
        scoped = ScopedStore(store, frozenset({"A"}))
        for sql in ("SELECT * FROM sec_probe_new_table", "SELECT 'beta secret' IN sec_probe_new_table",
                    f"SELECT * FROM view(SELECT * FROM {store.database}.sec_probe_new_table)",
                    "SELECT 1 WHERE 'beta secret' IN (SELECT Secret FROM sec_probe_new_table)"):
            with pytest.raises(Forbidden, match="sec_probe_new_table is not readable"):
                scoped.query_readonly(sql)
        filters = table_filters(store.database, {"A"}, _tables(store))
        assert filters[f"{store.database}.sec_probe_new_table"] == "0"
        rows = store.query_scoped("SELECT count() AS n FROM sec_probe_new_table", None, filters, readonly=True)
        assert rows.column(0).to_pylist() == [0]
        admin = ScopedStore(store, None).query_readonly("SELECT count() AS n FROM sec_probe_new_table")
        assert admin.column(0).to_pylist() == [1]  # admins read everything but the session secret
    finally:
        store.execute("DROP TABLE IF EXISTS sec_probe_new_table")
