"""Apply the schema's migrations that a database has not seen yet."""
from __future__ import annotations

from tracelake.store.base import Store
from tracelake.store.otlp import install_functions
from tracelake.store.schema import MIGRATIONS, MIGRATIONS_TABLE


def applied_versions(store: Store) -> set[int]:
    table = store.query_arrow("SELECT Version FROM schema_migrations")
    return set(table.column("Version").to_pylist())


def migrate(store: Store) -> list[int]:
    """Bring the schema up to date; returns the versions applied now (idempotent)."""
    store.execute(MIGRATIONS_TABLE)
    done = applied_versions(store)
    applied = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        for statement in migration.sql(store.database):
            store.execute(statement)
        store.execute("INSERT INTO schema_migrations (Version, Name) VALUES ({v:UInt32}, {n:String})",
                      {"v": migration.version, "n": migration.name})
        applied.append(migration.version)
    install_functions(store)  # CREATE OR REPLACE: brings the OTLP decoding function up to date
    return applied
