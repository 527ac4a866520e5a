"""Archived spans read straight from the Delta table's Parquet files, not through the engine table.

The ``otel_traces_archive`` view reads through ClickHouse's DeltaLake engine, which re-reads the
log and the footers of every file of the partitions on each query, and cannot prune files by time
(the view's ``Timestamp`` is an expression over the files' ``StartTimeUnixNano``). When the caller
knows which traces it wants and when they ran — a trace by id, the newest candidates of a
span-level filter — the file list (:mod:`tracelake.archiver.files`, cached per Delta version)
names the one or few files that can hold them, and those are read with ``file()`` / ``s3()``.

Rows are filtered on the files' own columns first (``inner``: the Parquet reader prunes row
groups by their TraceId statistics), then mapped to otel_traces' names and types as the view does.
Callers fall back to the view when there is no file list (None) or a read fails (a vacuum between
the list and the read).
"""
from __future__ import annotations

from typing import Any

from tracelake.store.base import Store


def file_index(store: Store) -> Any:
    """The store's archive file list, or None (no archive registered, or its libraries missing)."""
    try:
        from tracelake.archiver import files as archive_files
    except ImportError:
        return None
    return archive_files.lookup(store)


# Files read straight by searches and lookups, and searches read through the engine view (every
# file of their days), since the process started: what tests count to prove a search opened none.
OPENED = {"files": 0, "view_scans": 0}


def spans_source(index: Any, paths: list[str], inner: str, database: str, project: str = "''",
                 per_path: dict[str, str] | None = None) -> str:
    """A subquery of the files' spans with the view's columns (no ``Day``/``Project``: the files
    hold no partition columns), keeping rows that pass ``inner`` (over the files' columns) and, for
    a path in ``per_path``, its own condition too (the row groups a search needs).
    ``project``: SQL of the spans' project, for their prices (project-specific prices apply)."""
    from tracelake.store.archive_schema import archive_columns_sql

    OPENED["files"] += len(paths)
    per_path = per_path or {}
    reads = " UNION ALL ".join(
        f"SELECT * FROM {index.location.clickhouse_function(path, 'Parquet')} WHERE {inner}"
        + (f" AND {per_path[path]}" if path in per_path else "") for path in paths)
    return f"(SELECT {archive_columns_sql(skip=('Project', 'Day'), database=database, project=project)} FROM ({reads}))"


def visible_files_tier(store: Store, index: Any, p: Any, paths: list[str], inner: str = "1",
                       per_path: dict[str, str] | None = None) -> Any:
    """The archive tier reading ``paths`` straight (rows passing ``inner`` and their ``per_path``
    condition), seen as the view sees them: rows of visible runs only, minus traces a restore has
    flipped back to hot. No ``Day`` bound is needed: the caller chose the files."""
    from tracelake.query.compile import ARCHIVE_COLUMNS, Tier
    from tracelake.store.archive_schema import VISIBLE_STATES

    visible = ", ".join(p.s(s) for s in VISIBLE_STATES)
    source = spans_source(index, paths, f"{inner} AND RunId IN (SELECT RunId FROM archive_run_state WHERE State IN ({visible}))",
                          store.database, per_path=per_path)
    source = f"(SELECT * FROM {source} WHERE TraceId NOT IN (SELECT TraceId FROM restore_flipped))"
    return Tier("archive", ARCHIVE_COLUMNS, source, False)
