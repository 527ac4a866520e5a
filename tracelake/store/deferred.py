"""A store whose connection (and migrations) happen on first successful use.

A spooling collector must start, and ack into its spool, while ClickHouse is unreachable (a fleet
restarted during a ClickHouse outage): until the server answers, every call raises
:class:`StoreUnavailable` and the spool's loaders retry; the first call that gets through opens
the real store, migrations included.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from tracelake.store.base import Params, Store, StoreError, StoreUnavailable


class DeferredStore:
    def __init__(self, opener: Callable[[], Store], database: str, description: str) -> None:
        self._opener = opener
        self._store: Store | None = None
        self._lock = threading.Lock()
        self.database = database
        self.description = description

    def _get(self) -> Store:
        with self._lock:
            if self._store is None:
                try:
                    self._store = self._opener()
                except StoreError:
                    raise
                except Exception as exc:  # connection errors of the client library
                    raise StoreUnavailable(f"cannot reach {self.description}: {exc}") from exc
                self.database = self._store.database
            return self._store

    def execute(self, sql: str, params: Params = None) -> None:
        self._get().execute(sql, params)

    def query_arrow(self, sql: str, params: Params = None) -> pa.Table:
        return self._get().query_arrow(sql, params)

    def query_readonly(self, sql: str, params: Params = None) -> pa.Table:
        return self._get().query_readonly(sql, params)

    def insert_arrow(self, table: str, batch: pa.Table) -> None:
        self._get().insert_arrow(table, batch)

    def insert_otlp(self, table: str, stream: bytes, dedup_token: str | None = None) -> None:
        self._get().insert_otlp(table, stream, dedup_token)

    def insert_otlp_file(self, table: str, path: str, dedup_token: str | None = None) -> None:
        self._get().insert_otlp_file(table, path, dedup_token)

    def ping(self) -> bool:
        try:
            return self._get().ping()
        except StoreError:
            return False

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()

    def __getattr__(self, name: str) -> Any:  # anything else a caller may need, once connected
        return getattr(self._get(), name)
