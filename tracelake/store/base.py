"""The store protocol: what the collector, UI and archiver need from ClickHouse."""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

Params = dict[str, Any] | None


class StoreError(RuntimeError):
    """ClickHouse refused or could not run a statement."""


class StoreUnavailable(StoreError):
    """ClickHouse cannot be reached; the caller may retry later."""


@runtime_checkable
class Store(Protocol):
    """One ClickHouse database, embedded (chdb) or a server (clickhouse-connect).

    Both run the same SQL. User values are always bound as ``{name:Type}`` parameters.
    """

    database: str
    description: str

    def execute(self, sql: str, params: Params = None) -> None:
        """Run a statement that returns nothing of interest (DDL, INSERT ... SELECT)."""

    def query_arrow(self, sql: str, params: Params = None) -> pa.Table:
        """Run a SELECT and return its result as an Arrow table."""

    def query_readonly(self, sql: str, params: Params = None) -> pa.Table:
        """Run untrusted SQL with the engine's read-only settings enforced."""

    def insert_arrow(self, table: str, batch: pa.Table) -> None:
        """Insert an Arrow table (columns by name)."""

    def insert_otlp(self, table: str, stream: bytes, dedup_token: str | None = None) -> None:
        """Insert length-delimited ExportTraceServiceRequest messages, decoded by ClickHouse.

        With ``dedup_token``, inserting the same stream again under the same token is a no-op."""

    def insert_otlp_file(self, table: str, path: str, dedup_token: str | None = None) -> None:
        """:meth:`insert_otlp` from a file of such messages (a spool segment)."""

    def ping(self) -> bool:
        """True when the store answers a trivial query."""

    def close(self) -> None:
        """Release the connection or session."""


def rows(table: pa.Table) -> list[dict[str, Any]]:
    """Arrow result -> list of dicts (for JSON APIs)."""
    return table.to_pylist()
