"""Query parameters: every user value reaches ClickHouse as a ``{pN:Type}`` parameter.

chdb passes string parameters to ClickHouse raw, and ClickHouse reads them in its escaped text
form; clickhouse-connect escapes them itself. Which one a store is gets probed once per store, so
the same SQL and values give the same answer on both.

chdb 4.4 keeps query parameters per connection, not per query; the embedded store serializes its
shared connection itself (``ChdbStore._run``), so queries from many threads each get their own values.
"""
from __future__ import annotations

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


def query(store: Store, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
    """Rows of ``sql`` as dicts, with ``params`` bound for this store."""
    return store.query_arrow(sql, params.bound(store) if params else {}).to_pylist()
