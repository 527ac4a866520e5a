"""Query parameters: every user value reaches ClickHouse as a ``{pN:Type}`` parameter.

chdb passes string parameters to ClickHouse raw, and ClickHouse reads them in its escaped text
form; clickhouse-connect escapes them itself. Which one a store is gets probed once per store, so
the same SQL and values give the same answer on both.

chdb 4.4 keeps query parameters per connection, not per query: two threads querying one chdb
session at once can run each other's values (measured: a thread got another's value, others
failed with "Substitution is not set"). Queries on one chdb connection run one at a time anyway,
so :func:`query` holds a lock per embedded store around each parameterized query.
"""
from __future__ import annotations

import threading
import weakref
from typing import Any

from tracelake.store.base import Store

# Per store object (not per id(): a closed store's id can be reused by the next one).
_ESCAPE_NEEDED: "weakref.WeakKeyDictionary[Store, bool]" = weakref.WeakKeyDictionary()


def escape_needed(store: Store) -> bool:
    """Whether this store passes string parameters raw to ClickHouse, which reads them in escaped
    text form (chdb does; clickhouse-connect escapes itself). Probed once per store."""
    known = _ESCAPE_NEEDED.get(store)
    if known is None:
        try:
            got = store.query_arrow("SELECT {p:String} AS v", {"p": "a\\\\b"}).column("v")[0].as_py()
            known = got == "a\\b"
        except Exception:  # noqa: BLE001 - a store that chokes on backslashes needs escaping
            known = True
        _ESCAPE_NEEDED[store] = known
    return known


def escape(value: str) -> str:
    """``value`` in ClickHouse's escaped text form (what a raw string parameter is read as)."""
    return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r").replace("\0", "\\0"))


class Params:
    """Collects query parameters and hands out their ``{pN:Type}`` placeholders."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any, ch_type: str) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"{{{name}:{ch_type}}}"

    def s(self, value: str) -> str:
        return self.add(value, "String")

    def i(self, value: int) -> str:
        return self.add(int(value), "Int64")

    def f(self, value: float) -> str:
        return self.add(float(value), "Float64")

    def bound(self, store: Store) -> dict[str, Any]:
        """The values as ``store`` must receive them (escaped where the store passes them raw)."""
        if not escape_needed(store):
            return dict(self.values)
        return {k: escape(v) if isinstance(v, str) else v for k, v in self.values.items()}


_SERIAL: "weakref.WeakKeyDictionary[Store, threading.Lock | None]" = weakref.WeakKeyDictionary()
_SERIAL_LOCK = threading.Lock()


def _serial(store: Store) -> threading.Lock | None:
    """The lock that keeps one parameterized query at a time on an embedded (chdb) store; None for
    a ClickHouse server, where parameters travel with each request."""
    with _SERIAL_LOCK:
        if store not in _SERIAL:
            from tracelake.store.chdb_store import ChdbStore

            _SERIAL[store] = threading.Lock() if isinstance(store, ChdbStore) else None
        return _SERIAL[store]


def query(store: Store, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
    """Rows of ``sql`` as dicts, with ``params`` bound for this store."""
    values = params.bound(store) if params else {}
    lock = _serial(store) if values else None
    if lock is None:
        return store.query_arrow(sql, values).to_pylist()
    with lock:
        return store.query_arrow(sql, values).to_pylist()
