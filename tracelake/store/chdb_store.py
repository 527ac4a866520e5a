"""The embedded store: ClickHouse in-process through chdb, on a data directory."""
from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import pyarrow as pa

from tracelake.store.otlp import insert_from_file_sql, proto_schema, scores_from_file_sql, stream_file_carries_scores
from tracelake.store.base import Params, StoreError
from tracelake.store.limits import QueryLimits, connect_options


class ChdbStore:
    """A chdb session owning ``data_dir``; one per process (chdb allows one data path)."""

    def __init__(self, data_dir: str | os.PathLike[str], database: str = "tracelake",
                 limits: QueryLimits | None = None) -> None:
        import chdb
        from chdb import session

        self.limits = limits or QueryLimits.from_settings()
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.database = database
        self.description = f"embedded ClickHouse (chdb) at {self.data_dir / 'clickhouse'}"
        self._db_path = str(self.data_dir / "clickhouse")
        # The first connection starts the engine: its server-wide memory cap is given here.
        self._session = session.Session(f"{self._db_path}?{connect_options(self.limits.engine())}")
        # Limits for untrusted read-only SQL, enforced by the engine as connection settings.
        untrusted = connect_options({"readonly": 1, **self.limits.untrusted()})
        self._readonly = chdb.connect(f"{self._db_path}?{untrusted}")
        # Temp files of ack-after-commit INSERTs and the schema copy (the collector's spool is elsewhere).
        self._tmp = self.data_dir / "tmp"
        self._tmp.mkdir(exist_ok=True)
        self._schema_path = self._tmp / "otlp_flat.proto"
        self._schema_path.write_text(proto_schema())
        self._readonly_lock = threading.Lock()
        self._session_lock = threading.Lock()
        # INSERTs run on connections of their own, one per writer thread: queries on one
        # connection run one at a time, while two connections insert side by side (measured
        # 1.7x with two writers on two cores).
        self._insert_local = threading.local()
        self._insert_connections: list = []
        self._insert_lock = threading.Lock()
        self._scoped: dict = {}  # (filters, readonly) -> (connection, lock): per-project reads
        self._session.query(f"CREATE DATABASE IF NOT EXISTS {database}")
        self._session.query(f"USE {database}")

    def _run(self, sql: str, fmt: str, params: Params, connection=None):
        """Run on the session (one statement at a time), or on a connection the caller serializes."""
        if connection is None:
            # chdb keeps query parameters per connection, not per query: two threads on the shared
            # session can run each other's values (seen: a wrong value returned, and "Substitution
            # is not set"). Queries on one connection run one at a time anyway, so this costs nothing.
            with self._session_lock:
                return self._query(self._session, sql, fmt, params)
        return self._query(connection, sql, fmt, params)

    @staticmethod
    def _query(connection, sql: str, fmt: str, params: Params):
        try:
            if fmt == "ArrowTable":
                return _arrow_table(connection.query(sql, "Arrow", params=params or {}))
            return connection.query(sql, fmt, params=params or {})
        except Exception as exc:  # chdb raises its own error types; callers see one
            raise StoreError(str(exc)) from exc

    def execute(self, sql: str, params: Params = None) -> None:
        self._run(sql, "CSV", params)

    def query_arrow(self, sql: str, params: Params = None) -> pa.Table:
        return self._run(sql, "ArrowTable", params)

    def query_readonly(self, sql: str, params: Params = None) -> pa.Table:
        # A second connection to the same data, opened with readonly=1: the engine refuses
        # writes and setting changes, whatever the SQL text says.
        with self._readonly_lock:
            self._run(f"USE {self.database}", "CSV", None, self._readonly)
            return self._run_untrusted(sql, params, self._readonly)

    def _run_untrusted(self, sql: str, params: Params, connection, check=None) -> pa.Table:
        """Untrusted SQL behind the store's own function check (tracelake.auth.functions). It is
        here because the engine has no wall of its own: chdb runs as clickhouse-local, where the
        function ``file(path)`` reads any path the process can (ClickHouse checks user_files_path
        only in a server), and ``readonly=1`` does not stop it."""
        from tracelake.auth.functions import run_untrusted

        return run_untrusted(lambda q, p: self._run(q, "ArrowTable", p, connection), sql, params, escape_strings=True,
                             check=check)

    def insert_arrow(self, table: str, batch: pa.Table) -> None:
        self._run(_insert_arrow_sql(table, batch), "CSV", None)

    def dedicated(self) -> "DedicatedChdb":
        """The store on a connection of its own (same data): long work there (the archiver) neither
        waits for nor holds up the shared session."""
        return DedicatedChdb(self)

    def _insert_connection(self):
        connection = getattr(self._insert_local, "connection", None)
        if connection is None:
            import chdb

            with self._insert_lock:
                connection = chdb.connect(self._db_path)
                self._insert_connections.append(connection)
            self._insert_local.connection = connection
        return connection

    def insert_otlp(self, table: str, stream: bytes, dedup_token: str | None = None) -> None:
        # ClickHouse reads the messages from a temp file; the file name is ours, not the user's.
        fd, path = tempfile.mkstemp(prefix="batch-", suffix=".pb", dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(stream)
            self.insert_otlp_file(table, path, dedup_token)
        finally:
            os.unlink(path)

    def insert_otlp_file(self, table: str, path: str, dedup_token: str | None = None) -> None:
        # The file is read in place (a spool segment needs no copy).
        sql = insert_from_file_sql(f"{self.database}.{table}", str(path), str(self._schema_path), dedup_token)
        self._run(sql, "CSV", None, self._insert_connection())
        if stream_file_carries_scores(str(path)):  # score spans go to the scores table (docs/scores.md)
            sql = scores_from_file_sql(self.database, str(path), str(self._schema_path), dedup_token)
            self._run(sql, "CSV", None, self._insert_connection())

    def query_scoped(self, sql: str, params: Params, filters: dict[str, str], readonly: bool,
                     check=None) -> pa.Table:
        """Run on a connection where ``filters`` (additional_table_filters) are set, then locked by
        readonly=1 when ``readonly`` (tracelake.auth.scope explains the mechanism). Readonly SQL
        is untrusted: it passes the store's function check, then ``check(canonical, ast)``."""
        connection, lock = self._scoped_connection(filters, readonly)
        with lock:
            self._run(f"USE {self.database}", "CSV", None, connection)  # a previous caller's USE never carries over
            if readonly:
                return self._run_untrusted(sql, params, connection, check)
            return self._run(sql, "ArrowTable", params, connection)

    def _scoped_connection(self, filters: dict[str, str], readonly: bool):
        from tracelake.auth.scope import filters_setting

        key = (tuple(sorted(filters.items())), readonly)
        with self._insert_lock:
            cached = self._scoped.get(key)
            if cached is not None:
                return cached
        import chdb

        # Limits first, readonly=1 last: then no SETTINGS clause of the SQL can raise them.
        limits = self.limits.untrusted() if readonly else self.limits.ui()
        connection = chdb.connect(f"{self._db_path}?{connect_options(limits)}")
        try:
            if filters:
                self._run(f"SET additional_table_filters = {filters_setting(filters)}", "CSV", None, connection)
            if readonly:
                self._run("SET readonly = 1", "CSV", None, connection)
        except Exception:
            connection.close()
            raise
        with self._insert_lock:
            if len(self._scoped) >= 64:  # bounded: one connection per distinct project set in use
                for old, _ in self._scoped.values():
                    self._insert_connections.append(old)  # closed with the store
                self._scoped.clear()
            self._scoped[key] = (connection, threading.Lock())
            return self._scoped[key]

    def ping(self) -> bool:
        try:
            self._run("SELECT 1", "CSV", None)
            return True
        except StoreError:
            return False

    def close(self) -> None:
        try:
            with self._insert_lock:
                for connection in self._insert_connections:
                    connection.close()
                self._insert_connections.clear()
                for connection, _ in self._scoped.values():
                    connection.close()
                self._scoped.clear()
            self._readonly.close()
        finally:
            self._session.close()


def _arrow_table(result) -> pa.Table:
    """An Arrow-format result as a table, read by pyarrow in place. chdb's own "ArrowTable" format
    does the same but imports pandas first, which costs every process ~1 s (measured 0.6-1.9 s on
    2 busy cores) on its first query: each CLI command, server start and archiver run."""
    if len(result) == 0:
        return pa.Table.from_batches([], schema=pa.schema([]))
    return pa.ipc.open_file(result.get_memview().view()).read_all()


def _insert_arrow_sql(table: str, batch: pa.Table) -> str:
    # chdb's Python() table function finds the Arrow table by this name in the calling frames.
    cols = ", ".join(f"`{c}`" for c in batch.column_names)
    return f"INSERT INTO {table} ({cols}) SELECT {cols} FROM Python(batch)"


class DedicatedChdb:
    """A :class:`ChdbStore` on its own chdb connection, one statement at a time (chdb keeps query
    parameters per connection). Reads for untrusted SQL and OTLP inserts go to the parent store."""

    def __init__(self, parent: ChdbStore) -> None:
        import chdb

        self.parent = parent
        self.database = parent.database
        self.description = parent.description
        self._lock = threading.Lock()
        self._connection = chdb.connect(parent._db_path)
        self._run(f"USE {self.database}", "CSV", None)

    def _run(self, sql: str, fmt: str, params: Params):
        with self._lock:
            return ChdbStore._query(self._connection, sql, fmt, params)

    def execute(self, sql: str, params: Params = None) -> None:
        self._run(sql, "CSV", params)

    def query_arrow(self, sql: str, params: Params = None) -> pa.Table:
        return self._run(sql, "ArrowTable", params)

    def query_readonly(self, sql: str, params: Params = None) -> pa.Table:
        return self.parent.query_readonly(sql, params)

    def insert_arrow(self, table: str, batch: pa.Table) -> None:
        self._run(_insert_arrow_sql(table, batch), "CSV", None)

    def insert_otlp(self, table: str, stream: bytes, dedup_token: str | None = None) -> None:
        self.parent.insert_otlp(table, stream, dedup_token)

    def ping(self) -> bool:
        try:
            self._run("SELECT 1", "CSV", None)
            return True
        except StoreError:
            return False

    def release(self) -> None:
        """Close this connection only (the parent store stays open)."""
        with self._lock:
            self._connection.close()

    def close(self) -> None:
        """Close this connection and the parent store (for a process that owns both, as the CLI)."""
        self.release()
        self.parent.close()
