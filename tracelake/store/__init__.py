"""tracelake.store: ClickHouse stores (embedded chdb and server), schema and migrations."""
from __future__ import annotations

from pathlib import Path

from tracelake.store.base import Store, StoreError, StoreUnavailable, rows
from tracelake.store.limits import QueryLimits

__all__ = ["Store", "StoreError", "StoreUnavailable", "rows", "open_store"]


def open_store(data_dir: str | Path | None = None, clickhouse_url: str | None = None,
               prices_file: str | Path | None = None, migrate: bool = True, limits: QueryLimits | None = None) -> Store:
    """The ClickHouse server at ``clickhouse_url`` if given, else the embedded store in ``data_dir``.

    Migrations and the price table are brought up to date unless ``migrate`` is False. ``limits``:
    the caps of untrusted and scoped queries and of the embedded engine (defaults: Settings').
    """
    store: Store
    if clickhouse_url:
        from tracelake.store.clickhouse_store import ClickHouseStore

        store = ClickHouseStore(clickhouse_url, limits=limits)
    else:
        from tracelake.store.chdb_store import ChdbStore

        store = ChdbStore(data_dir or ".tracelake", limits=limits)
    if migrate:
        from tracelake.store.migrate import migrate as apply_migrations
        from tracelake.store.prices import install_prices

        apply_migrations(store)
        install_prices(store, prices_file)
    return store
