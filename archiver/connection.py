"""The archiver's own connection to the embedded store.

chdb 4.4 keeps query parameters per connection, and a connection runs one statement at a time: the
archiver's long reads and deletes go to a connection of their own (``ChdbStore.dedicated``), so the
UI and the collector keep the shared session. A ClickHouse server store (clickhouse-connect, each
request on its own HTTP connection) is used as is.
"""
from __future__ import annotations

from tracelake.store.base import Store


def own_connection(store: Store) -> Store:
    dedicated = getattr(store, "dedicated", None)
    return dedicated() if dedicated is not None else store


def release(store: Store) -> None:
    """Close a connection made by :func:`own_connection` (a store used as is has nothing to close)."""
    close = getattr(store, "release", None)
    if close is not None:
        close()
