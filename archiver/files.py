"""The archive's Parquet files per (Day, Project) partition, from the Delta log, for reads by trace id.

Reading an archived trace through the ``DeltaLake`` engine table costs a fixed ~45 ms per query:
ClickHouse re-reads the Delta log and every file's footer of the partition each time. A lookup by
trace id instead reads the one or two files that can hold the trace straight through ``file()`` /
``s3()``: those of the trace's partition whose statistics (in each add action) can hold it — the
trace's time window (from the archive's index) overlaps the file's StartTimeUnixNano range, its id
is within the file's TraceId range, and one of the runs that archived it within its RunId range.
Runs write each file for a range of trace start times (archiver.spans), so that is one file, or
two where the trace starts at a file's boundary.

The file list is kept per table and refreshed whenever the table has a newer version
(``update_incremental`` reads only commits after the cached one), so a delete or vacuum done by
anyone (expiry, erasure) is seen by the next lookup. A file removed between the check and the read
fails that read; the caller then retries through the engine table (:func:`lookup` callers do).

The archiver (and the server's archive view) registers where the table is for its store:
:func:`register`. Lookups on a store that has no registration return None (read the view).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tracelake.archiver.delta import ArchiveLocation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _File:
    path: str
    trace_lo: str | None
    trace_hi: str | None
    run_lo: str | None
    run_hi: str | None
    time_lo: int | None = None  # StartTimeUnixNano range of the file's spans
    time_hi: int | None = None

    def overlaps(self, window: tuple[int, int]) -> bool:
        """Whether some span of the file may start within ``window`` (no statistics: it may)."""
        if self.time_lo is None or self.time_hi is None:
            return True
        return not (window[1] < self.time_lo or window[0] > self.time_hi)

    def may_hold(self, trace_id: str, runs: set[str], window: tuple[int, int] | None = None) -> bool:
        if self.trace_lo is not None and self.trace_hi is not None and not self.trace_lo <= trace_id <= self.trace_hi:
            return False
        if window is not None and not self.overlaps(window):
            return False
        if self.run_lo is None or self.run_hi is None:
            return True
        return any(self.run_lo <= r <= self.run_hi for r in runs)


class ArchiveFiles:
    """The table's live files by partition, cached per Delta table version. Thread-safe."""

    def __init__(self, location: ArchiveLocation) -> None:
        self.location = location
        self._lock = threading.Lock()
        self._table: Any = None
        self._version = -1
        self._by_partition: dict[tuple[str, str], list[_File]] = {}

    def _refresh(self) -> None:
        from deltalake import DeltaTable

        if self._table is None:
            self._table = DeltaTable(self.location.uri, storage_options=self.location.storage_options)
        else:
            self._table.update_incremental()
        version = self._table.version()
        if version == self._version:
            return
        adds = self._table.get_add_actions(flatten=True)
        import pyarrow as pa

        table = adds if isinstance(adds, pa.Table) else pa.table(adds)
        names = set(table.column_names)

        def col(name: str) -> list[Any]:
            return table.column(name).to_pylist() if name in names else [None] * table.num_rows

        by: dict[tuple[str, str], list[_File]] = {}
        for path, day, project, tlo, thi, rlo, rhi, slo, shi in zip(
                col("path"), col("partition.Day"), col("partition.Project"), col("min.TraceId"), col("max.TraceId"),
                col("min.RunId"), col("max.RunId"), col("min.StartTimeUnixNano"), col("max.StartTimeUnixNano")):
            by.setdefault((str(day), str(project)), []).append(_File(path, tlo, thi, rlo, rhi, _int(slo), _int(shi)))
        self._by_partition, self._version = by, version

    def _select(self, partitions: list[tuple[str, str]], keep: Callable[[_File], bool]) -> list[str] | None:
        with self._lock:
            try:
                self._refresh()
            except Exception as exc:  # noqa: BLE001 - the caller reads through the engine table instead
                log.warning("archive file list unavailable (%s); reading through the Delta engine", exc)
                self._table, self._version = None, -1
                return None
            out = [f.path for part in partitions for f in self._by_partition.get(part, ()) if keep(f)]
        if not all(_plain(p) for p in out):
            return None  # a writer's escaped (or odd) path: let the engine resolve it
        return out

    def live(self) -> list[tuple[str, str, str]]:
        """(path, day, project) of every file of the table's current version (raises when the log
        cannot be read)."""
        with self._lock:
            self._refresh()
            return [(f.path, day, project) for (day, project), fs in self._by_partition.items() for f in fs]

    def files(self, trace_id: str, partitions: list[tuple[str, str]], runs: set[str],
              window: tuple[int, int] | None = None) -> list[str] | None:
        """Relative paths of the files that may hold the trace's spans (starting within
        ``window``, ns, when given); None when the list cannot be used (a path that is
        percent-encoded, or the log could not be read)."""
        return self._select(partitions, lambda f: f.may_hold(trace_id, runs, window))

    def in_window(self, partitions: list[tuple[str, str]], window: tuple[int, int]) -> list[str] | None:
        """Relative paths of the files of ``partitions`` holding spans that start within
        ``window`` (ns): every file a set of traces of that window can be in; None as for
        :meth:`files`."""
        return self._select(partitions, lambda f: f.overlaps(window))


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _plain(path: str) -> bool:
    """A relative path inside the table, as our writers and delta-rs name files: nothing to
    unescape, no way out of the table's directory."""
    return (bool(path) and not path.startswith("/") and ".." not in path.split("/") and "://" not in path
            and not any(c in path for c in "%'\\{}*?"))


_REGISTRY: dict[str, ArchiveFiles] = {}
_REGISTRY_LOCK = threading.Lock()


def _key(store: Any) -> str:
    # Scoped and dedicated wrappers copy their store's description (the data it reaches).
    return f"{getattr(store, 'description', '')}|{getattr(store, 'database', '')}"


def register(store: Any, location: ArchiveLocation) -> None:
    """The archive table for ``store``'s database is at ``location`` (replaces an earlier one)."""
    with _REGISTRY_LOCK:
        found = _REGISTRY.get(_key(store))
        if found is None or found.location != location:
            _REGISTRY[_key(store)] = ArchiveFiles(location)


def lookup(store: Any) -> ArchiveFiles | None:
    with _REGISTRY_LOCK:
        return _REGISTRY.get(_key(store))
