"""Per-project reads, enforced by ClickHouse itself.

What the embedded engine (chdb 4.4 / ClickHouse 26.9) offers was checked first: it runs every
query as its built-in ``default`` user with no writable access storage, so ``CREATE USER`` /
``ROW POLICY`` are refused and a connection cannot switch user. What it does enforce:

1. ``additional_table_filters`` — a setting holding a row filter per table, applied by ClickHouse
   wherever that table is read: directly, through views and ``view()``, in JOINs, subqueries,
   ``IN``, CTEs and ``UNION``. A caller's reads run on a connection where it is set to
   ``Project IN (<the caller's projects>)`` for every project-holding table, the tables keyed by
   TraceId included: their rows carry the project of the spans they belong to (migration 26), since
   a trace id alone is no proof of a project (``traceparent`` carries one id across projects);
   ``0`` for the key, audit and secret tables.
2. ``readonly = 1`` set on that connection *after* the filter, for untrusted SQL (``/api/sql``):
   ClickHouse then refuses any change of settings (``SETTINGS`` clause or ``SET``), writes, DDL,
   and the table functions that reach outside (``file``, ``url``, ``s3``, ``remote``,
   ``mysql``, ``executable``, ``deltaLake*``, ``loop``...).
3. Because a few table functions read tables without their filters (``merge()`` was found to,
   and ``mergeTreeIndex()`` reads primary-key values), and ``readonly=1`` does not stop the
   *function* ``file(path)`` (it reads any file the process can), untrusted SQL is first parsed by
   ClickHouse (``EXPLAIN AST``) and only these statements pass: SELECT (with UNION, CTEs,
   subqueries), DESCRIBE, SHOW TABLES; functions only from the reviewed allow-list
   (:mod:`tracelake.auth.functions`, for every caller); table functions only from
   :data:`SAFE_TABLE_FUNCTIONS`; for project keys, tables only from our database's readable
   classes below or the allowed :data:`SAFE_SYSTEM_TABLES`. Every table of our database that no
   class names gets the filter ``0`` and is refused (fail closed: a new table stays unreadable
   until someone classifies it).

On a ClickHouse server (``ClickHouseStore``) the same settings are sent with each query, so the
same filters apply; ``readonly=1`` arrives with them, so the query's own SETTINGS cannot undo them.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from tracelake.auth.functions import (SAFE_TABLE_FUNCTIONS, Forbidden, Node, allowed, ast_nodes,
                                      function_name, refusal)
from tracelake.auth.roles import valid_project
from tracelake.auth.schema import PRIVATE_TABLES
from tracelake.store.base import Params, Store

__all__ = ["Forbidden", "SAFE_TABLE_FUNCTIONS", "ScopedStore", "check_sql", "scoped", "table_filters"]

# Tables holding a Project column, and the views that read them. The archive's span table is the
# DeltaLake engine table under the ``otel_traces_archive`` view: the filter applies through the view.
PROJECT_TABLES = ("otel_traces", "trace_summary", "trace_summary_mv", "trace_summary_archive",
                  "otel_traces_archive_delta", "model_names_seen", "model_names_seen_mv",
                  "score_configs")
# Tables keyed by TraceId (or a blob's sha256): each row names the project of the spans it belongs
# to (migration 26), and is filtered by it like the span tables.
TRACE_TABLES = ("otel_traces_trace_id_ts", "otel_traces_trace_id_ts_mv", "attachments", "archive_attachments",
                "retention_pins", "scores")
# Holds of a project carry its Project; global holds ('') are shown to projects by /api/holds
# without their filter and reason, so SQL shows a project its own holds only.
PROJECT_TABLES_OWN_ONLY = ("retention_holds",)
# Hold nothing per project: every key reads them as they are.
GLOBAL_TABLES = ("model_aliases", "schema_migrations")
# Default prices (Project '') are every project's; a project's own (negotiated) prices are its alone.
PRICE_TABLES = ("model_price_history",)
# No filter (the archive views read them to know which runs are visible), but refused to project
# keys when named: archive passes carry totals and rules over every project.
# The archive's term index (docs/search.md) names every project's words and files: searches read it
# for the caller's own partitions only (found through the project-filtered archive index).
INTERNAL_TABLES = ("archive_runs", "model_price_ranges_dict", "model_aliases_dict", "model_names_dict",
                   "archive_terms", "archive_term_files")
# Views a project key may read: every table they read is one of the classes above (filters apply
# through views; tests/auth/test_sec_sql_tables.py checks each view's sources).
SAFE_VIEWS = ("otel_traces_archive", "archived_traces", "archive_moving", "archive_run_state", "restore_flipped",
              "retention_pins_current", "retention_request_state")
READABLE_TABLES = frozenset(PROJECT_TABLES + TRACE_TABLES + PROJECT_TABLES_OWN_ONLY + GLOBAL_TABLES + PRICE_TABLES
                            + SAFE_VIEWS)
CLASSIFIED_TABLES = READABLE_TABLES | frozenset(PRIVATE_TABLES + INTERNAL_TABLES)
SAFE_SYSTEM_TABLES = frozenset({"one", "numbers", "numbers_mt", "zeros", "zeros_mt", "functions",
                                "table_functions", "data_type_families", "formats", "time_zones",
                                "build_options", "contributors", "settings", "aggregate_function_combinators",
                                "table_engines", "collations"})
SAFE_STATEMENTS = ("SelectWithUnionQuery", "DescribeQuery", "ShowTables")


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def table_filters(database: str, projects: Iterable[str], tables: Iterable[str] = ()) -> dict[str, str]:
    """``additional_table_filters`` for a caller who may read ``projects`` only. ``tables``: the
    database's tables as they are now; any of them no class names gets ``0`` (fail closed)."""
    names = sorted(set(projects))
    for name in names:
        if not valid_project(name):  # names were validated when keys were made; never inline anything else
            raise ValueError(f"invalid project name {name[:80]!r}")
    in_list = "(" + ", ".join(_quote(n) for n in names) + ")" if names else "('')"
    project_filter = f"Project IN {in_list}" if names else "0"
    filters = {}
    for table in PROJECT_TABLES + PROJECT_TABLES_OWN_ONLY:
        filters[f"{database}.{table}"] = project_filter
    for table in PRICE_TABLES:
        filters[f"{database}.{table}"] = f"({project_filter}) OR Project = ''"
    for table in TRACE_TABLES:  # never "the trace id has a row in my project": ids cross projects
        filters[f"{database}.{table}"] = project_filter
    for table in PRIVATE_TABLES:
        filters[f"{database}.{table}"] = "0"
    for table in set(tables) - CLASSIFIED_TABLES:
        filters[f"{database}.{table}"] = "0"
    return filters


def admin_filters(database: str) -> dict[str, str]:
    """Untrusted SQL from an admin still never reads the session-signing secret, nor the alert
    destinations' write-only secrets (webhook URLs; the outbox holds only the destination's name)."""
    return {f"{database}.{table}": "0" for table in ("auth_secrets", "alert_destinations")}


def filters_setting(filters: dict[str, str]) -> str:
    """The setting's value as a ClickHouse Map literal."""
    return "{" + ", ".join(f"{_quote(k)}: {_quote(v)}" for k, v in sorted(filters.items())) + "}"


def check_sql(ast_text: str, database: str, strict: bool = True, tables: Iterable[str] = (),
              databases: Iterable[str] = ()) -> None:
    """Raise :class:`Forbidden` unless the parsed statement only reads what the caller may.

    Everyone: one SELECT / DESCRIBE / SHOW TABLES statement, functions from the allow-list, table
    functions from SAFE_TABLE_FUNCTIONS. ``strict`` (a caller limited to some projects): also only
    readable tables of our database (``tables``: its tables now, so a table no class names is
    refused by name, in FROM and in ``x IN t`` alike) and harmless system tables; no other
    database of ``databases``."""
    nodes = list(ast_nodes(ast_text))
    if not nodes:
        raise Forbidden("empty statement")
    if nodes[0].kind not in SAFE_STATEMENTS:
        raise Forbidden(f"this SQL API is readonly: only SELECT, DESCRIBE and SHOW TABLES run here, not {nodes[0].kind}")
    listed = allowed()
    ours = set(tables)
    others = set(databases) - {database}
    table_expr_depth: int | None = None
    for node in nodes:
        if table_expr_depth is not None and node.depth <= table_expr_depth:
            table_expr_depth = None
        if node.kind == "TableExpression":
            table_expr_depth = node.depth
        elif node.kind == "Function":
            name = function_name(node)
            if table_expr_depth is not None and node.depth == table_expr_depth + 1:
                if name not in SAFE_TABLE_FUNCTIONS:
                    raise Forbidden(f"table function {name}() is not allowed here")
            elif not listed.allows(name):
                raise Forbidden(refusal(name))
        elif strict and node.kind in ("TableIdentifier", "Identifier"):
            _check_table(node, database, ours, others)


def _check_table(node: Node, database: str, ours: set[str], others: set[str]) -> None:
    name = node.text.split(" (alias ", 1)[0]
    db, _, table = name.rpartition(".")
    if node.kind == "Identifier" and db not in {"system", database} | others:
        db, table = "", name  # a column (t.col) or a bare name: a table only if it is one of ours
    if db == "system":
        if table not in SAFE_SYSTEM_TABLES:
            raise Forbidden(f"system.{table} is not readable here")
    elif db and db != database:
        raise Forbidden(f"only tables of database {database} are readable here")
    elif table in PRIVATE_TABLES or table in INTERNAL_TABLES or (table in ours and table not in READABLE_TABLES):
        raise Forbidden(f"{table} is not readable here")


class ScopedStore:
    """The store as one caller sees it: every read filtered to the caller's projects by ClickHouse.

    ``projects`` None means every project (admin). Writes pass through to the store: the guard in
    front of each route has already checked the caller's role.
    """

    def __init__(self, inner: Store, projects: frozenset[str] | None) -> None:
        self.inner = inner
        self.projects = projects
        self.database = inner.database
        self.description = inner.description
        db = inner.database
        self._filters = table_filters(db, projects) if projects is not None else {}
        self._untrusted = self._filters if projects is not None else admin_filters(db)

    # -- reads ---------------------------------------------------------------------------------------
    def query_arrow(self, sql: str, params: Params = None) -> pa.Table:
        if not self._filters:
            return self.inner.query_arrow(sql, params)
        return self.inner.query_scoped(sql, params, self._filters, readonly=False)  # type: ignore[attr-defined]

    def query_readonly(self, sql: str, params: Params = None) -> pa.Table:
        """Untrusted SQL: the store formats it as one statement (refusing several: chdb would run
        them all) and parses it (EXPLAIN AST) on the caller's readonly connection; the store's
        function check and then :func:`check_sql` judge that parse, and the canonical text is
        what runs."""
        tables, databases = self._catalog()
        untrusted = table_filters(self.database, self.projects, tables) if self.projects is not None else self._untrusted

        def check(canonical: str, ast: str) -> None:
            check_sql(ast, self.database, strict=self.projects is not None, tables=tables, databases=databases)

        return self.inner.query_scoped(sql, params, untrusted, readonly=True, check=check)  # type: ignore[attr-defined]

    def _catalog(self) -> tuple[frozenset[str], frozenset[str]]:
        """Our database's tables and the server's databases, as they are now (read each time: a
        table made since the last call is refused until classified, never readable by omission)."""
        from tracelake.auth.binding import bind

        if self.projects is None:
            return frozenset(), frozenset()
        row = self.inner.query_arrow(
            "SELECT (SELECT groupArray(name) FROM system.tables WHERE database = {db:String}) AS t, "
            "(SELECT groupArray(name) FROM system.databases) AS d", bind(self.inner, {"db": self.database})).to_pylist()[0]
        return frozenset(row["t"]), frozenset(row["d"])

    # -- everything else is the store's -------------------------------------------------------------
    def execute(self, sql: str, params: Params = None) -> None:
        self.inner.execute(sql, params)

    def insert_arrow(self, table: str, batch: pa.Table) -> None:
        self.inner.insert_arrow(table, batch)

    def insert_otlp(self, table: str, stream: bytes) -> None:
        self.inner.insert_otlp(table, stream)

    def ping(self) -> bool:
        return self.inner.ping()

    def close(self) -> None:  # the store belongs to the process, not to a caller
        pass

    # No __getattr__ on purpose: a store method not listed here (a new reader) fails for scoped
    # callers instead of reading around the filters; add it here with its scoping.


_SCOPED: dict[tuple[int, frozenset[str] | None], ScopedStore] = {}
_LOCK = threading.Lock()


def scoped(store: Store, projects: frozenset[str] | None) -> ScopedStore:
    """One ScopedStore per (store, project set): stable objects keep per-store probes cached."""
    key = (id(store), projects)
    with _LOCK:
        found = _SCOPED.get(key)
        if found is None or found.inner is not store:
            if len(_SCOPED) > 256:
                _SCOPED.clear()
            found = _SCOPED[key] = ScopedStore(store, projects)
        return found


def untrusted_reader(store: Store) -> Store:
    """What ``/api/sql`` runs on: the caller's ScopedStore under auth; without auth the whole
    store, still through the one-statement / no-OUTFILE checks (a web page can POST to localhost)."""
    return store if isinstance(store, ScopedStore) else scoped(store, None)
