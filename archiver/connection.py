"""The archiver's own connection to the embedded store.

chdb 4.4 keeps query parameters per connection, not per query: two threads running parameterized
queries on one connection can swap values (measured here: 8 of 600 concurrent queries answered
with the other thread's value, others failed with "Substitution is not set"). The server's
ChdbStore serves the UI and the collector from one session, so the archiver, which deletes by
parameter, runs every statement on a connection of its own to the same data.
A ClickHouse server store (clickhouse-connect, parameters sent with each HTTP request) is used as is.
"""
from __future__ import annotations

import threading
from typing import Any

import pyarrow as pa

from tracelake.store.base import Params, Store, StoreError


class OwnChdbConnection:
    """Store protocol (what the archiver uses) on a dedicated chdb connection."""

    def __init__(self, store: Any) -> None:
        import chdb

        self._parent = store
        self.database = store.database
        self.description = store.description
        self._lock = threading.Lock()  # one statement at a time on this connection
        self._conn = chdb.connect(store._db_path)  # noqa: SLF001 - same data, separate connection state
        self._run(f"USE {self.database}", "CSV", None)

    def _run(self, sql: str, fmt: str, params: Params):
        with self._lock:
            try:
                return self._conn.query(sql, fmt, params=params or {})
            except Exception as exc:  # chdb's error types -> the store's
                raise StoreError(str(exc)) from exc

    def execute(self, sql: str, params: Params = None) -> None:
        self._run(sql, "CSV", params)

    def query_arrow(self, sql: str, params: Params = None) -> pa.Table:
        return self._run(sql, "ArrowTable", params)

    def query_readonly(self, sql: str, params: Params = None) -> pa.Table:
        return self._parent.query_readonly(sql, params)

    def insert_arrow(self, table: str, batch: pa.Table) -> None:
        cols = ", ".join(f"`{c}`" for c in batch.column_names)
        self._run(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM Python(batch)", "CSV", None)

    def insert_otlp(self, table: str, stream: bytes) -> None:
        self._parent.insert_otlp(table, stream)

    def ping(self) -> bool:
        try:
            self._run("SELECT 1", "CSV", None)
            return True
        except StoreError:
            return False

    def close(self) -> None:
        """Close this connection and the store it came from (the CLI owns both)."""
        self.release()
        self._parent.close()

    def release(self) -> None:
        """Close this connection only (the server closes its store itself)."""
        with self._lock:
            self._conn.close()


def own_connection(store: Store) -> Store:
    if type(store).__name__ == "ChdbStore" and hasattr(store, "_db_path"):
        return OwnChdbConnection(store)  # type: ignore[return-value]
    return store
