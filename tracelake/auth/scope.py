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
   and ``mergeTreeIndex()`` reads primary-key values), untrusted SQL is first parsed by
   ClickHouse (``EXPLAIN AST``) and only these statements pass: SELECT (with UNION, CTEs,
   subqueries), DESCRIBE, SHOW TABLES; table functions only from :data:`SAFE_TABLE_FUNCTIONS`;
   tables only from our database or the allowed :data:`SAFE_SYSTEM_TABLES`.

On a ClickHouse server (``ClickHouseStore``) the same settings are sent with each query, so the
same filters apply; ``readonly=1`` arrives with them, so the query's own SETTINGS cannot undo them.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from tracelake.auth.roles import valid_project
from tracelake.auth.schema import PRIVATE_TABLES
from tracelake.store.base import Params, Store, StoreError

# Tables holding a Project column, and the views that read them. The archive's span table is the
# DeltaLake engine table under the ``otel_traces_archive`` view: the filter applies through the view.
PROJECT_TABLES = ("otel_traces", "trace_summary", "trace_summary_mv", "trace_summary_archive",
                  "otel_traces_archive_delta")
# Tables keyed by TraceId (or a blob's sha256): each row names the project of the spans it belongs
# to (migration 26), and is filtered by it like the span tables.
TRACE_TABLES = ("otel_traces_trace_id_ts", "otel_traces_trace_id_ts_mv", "attachments", "archive_attachments",
                "retention_pins")

SAFE_TABLE_FUNCTIONS = frozenset({"numbers", "numbers_mt", "zeros", "zeros_mt", "generateRandom", "values",
                                  "view", "format", "null", "generate_series", "generateSeries", "primes"})
SAFE_SYSTEM_TABLES = frozenset({"one", "numbers", "numbers_mt", "zeros", "zeros_mt", "functions",
                                "table_functions", "data_type_families", "formats", "time_zones",
                                "build_options", "contributors", "settings", "aggregate_function_combinators",
                                "table_engines", "collations"})
SAFE_STATEMENTS = ("SelectWithUnionQuery", "DescribeQuery", "ShowTables")
_OUTFILE = re.compile(r"\bINTO\s+OUTFILE\b", re.I)


class Forbidden(StoreError):
    """Untrusted SQL uses something a scoped caller may not (said plainly, nothing run)."""


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def table_filters(database: str, projects: Iterable[str]) -> dict[str, str]:
    """``additional_table_filters`` for a caller who may read ``projects`` only."""
    names = sorted(set(projects))
    for name in names:
        if not valid_project(name):  # names were validated when keys were made; never inline anything else
            raise ValueError(f"invalid project name {name[:80]!r}")
    in_list = "(" + ", ".join(_quote(n) for n in names) + ")" if names else "('')"
    project_filter = f"Project IN {in_list}" if names else "0"
    filters = {}
    for table in PROJECT_TABLES:
        filters[f"{database}.{table}"] = project_filter
    for table in TRACE_TABLES:  # never "the trace id has a row in my project": ids cross projects
        filters[f"{database}.{table}"] = project_filter
    for table in PRIVATE_TABLES:
        filters[f"{database}.{table}"] = "0"
    return filters


def admin_filters(database: str) -> dict[str, str]:
    """Untrusted SQL from an admin still never reads the session-signing secret."""
    return {f"{database}.auth_secrets": "0"}


def filters_setting(filters: dict[str, str]) -> str:
    """The setting's value as a ClickHouse Map literal."""
    return "{" + ", ".join(f"{_quote(k)}: {_quote(v)}" for k, v in sorted(filters.items())) + "}"


_LINE = re.compile(r"^( *)(\S+)(?: (\S+))?")


def check_sql(ast_text: str, database: str, strict: bool = True) -> None:
    """Raise :class:`Forbidden` unless the parsed statement only reads what the caller may.

    Everyone: one SELECT / DESCRIBE / SHOW TABLES statement. ``strict`` (a caller limited to some
    projects): also only safe table functions, our database and harmless system tables."""
    lines = [line for line in ast_text.splitlines() if line.strip()]
    if not lines:
        raise Forbidden("empty statement")
    top = _LINE.match(lines[0]).group(2)  # type: ignore[union-attr]
    if top not in SAFE_STATEMENTS:
        raise Forbidden(f"this SQL API is readonly: only SELECT, DESCRIBE and SHOW TABLES run here, not {top}")
    if not strict:
        return
    table_expr_depth: int | None = None
    for line in lines:
        m = _LINE.match(line)
        if not m:
            continue
        depth, node, arg = len(m.group(1)), m.group(2), m.group(3) or ""
        if table_expr_depth is not None and depth <= table_expr_depth:
            table_expr_depth = None
        if node == "TableExpression":
            table_expr_depth = depth
        elif node == "Function" and table_expr_depth is not None and depth == table_expr_depth + 1:
            if arg not in SAFE_TABLE_FUNCTIONS:
                raise Forbidden(f"table function {arg}() is not allowed here")
        elif node == "TableIdentifier":
            db, _, table = arg.rpartition(".")
            if db == "system":
                if table not in SAFE_SYSTEM_TABLES:
                    raise Forbidden(f"system.{table} is not readable here")
            elif db and db != database:
                raise Forbidden(f"only tables of database {database} are readable here")
            elif table in PRIVATE_TABLES:
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
        """Untrusted SQL: ClickHouse formats it as one statement (refusing several: chdb would
        run them all), the canonical text is checked, and that text is what runs."""
        from tracelake.auth.binding import bind

        run = self.inner.query_scoped  # type: ignore[attr-defined]
        try:
            formatted = run("SELECT formatQuerySingleLine({q:String}) AS q", bind(self.inner, {"q": sql}),
                            self._untrusted, readonly=True)
        except StoreError as exc:
            raise StoreError(f"cannot parse the SQL as one statement: {exc}") from exc
        canonical = str(formatted.column(0)[0].as_py()).strip()
        if _OUTFILE.search(canonical):
            raise Forbidden("INTO OUTFILE is not allowed here")  # chdb writes such files even with readonly=1
        ast = run("EXPLAIN AST " + canonical, params, self._untrusted, readonly=True)
        check_sql("\n".join(str(v) for v in ast.column(0).to_pylist()), self.database, strict=self.projects is not None)
        return run(canonical, params, self._untrusted, readonly=True)

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
