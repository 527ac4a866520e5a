"""Which tiers a read must look at, and the clause that keeps a trace in exactly one of them.

The archive's ClickHouse objects (docs/archive.md) are made by the store migrations and the
archiver: ``archived_traces`` (the trace index of committed runs), ``archive_moving`` (traces whose
archive copy is visible while the hot copy is not deleted yet) and ``otel_traces_archive`` (the
spans). A store without them (an older database, or no archiver ever ran) is hot only.

* Hot readers add :data:`HOT_VISIBLE`: a trace being moved is read from the archive alone.
* Archive readers read only ``archived_traces`` and the span view restricted to its traces.
* The archive is consulted only when a range reaches back before the newest archived start: a
  ``max(Start)`` over the index, remembered until ``archive_runs`` changes.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from tracelake.query.params import query
from tracelake.store.base import Store

HOT_VISIBLE = "TraceId NOT IN (SELECT TraceId FROM archive_moving)"
ARCHIVE_OBJECTS = ("archived_traces", "archive_moving", "archive_runs", "otel_traces_archive")


@dataclass
class _Known:
    present: bool = False  # every archive object exists (they are never dropped: remembered)
    fingerprint: tuple = ()
    newest_ns: int | None = None


_KNOWN: dict[int, _Known] = {}
_LOCK = threading.Lock()


def _known(store: Store) -> _Known:
    with _LOCK:
        return _KNOWN.setdefault(id(store), _Known())


def archive_present(store: Store) -> bool:
    """Whether the store has the archive's objects (checked until they appear, then remembered)."""
    k = _known(store)
    if not k.present:
        names = ", ".join(f"'{n}'" for n in ARCHIVE_OBJECTS)
        rows = query(store, f"SELECT count() AS n FROM system.tables WHERE database = currentDatabase() "
                            f"AND name IN ({names})")
        k.present = bool(rows) and int(rows[0]["n"]) == len(ARCHIVE_OBJECTS)
    return k.present


def hot_visible(store: Store) -> str:
    """The hot readers' clause: excludes traces whose archive copy is already the visible one."""
    return HOT_VISIBLE if archive_present(store) else "1"


def newest_archived_ns(store: Store) -> int | None:
    """Start (ns) of the newest archived trace, or None when nothing is archived."""
    if not archive_present(store):
        return None
    k = _known(store)
    # archive_runs changes with every run state (visibility flips, expiry): a tiny table.
    fp = query(store, "SELECT count() AS n, max(Version) AS v, max(UpdatedAt) AS u FROM archive_runs")
    fingerprint = tuple(fp[0].values()) if fp else ()
    if fingerprint != k.fingerprint:
        rows = query(store, "SELECT toUnixTimestamp64Nano(max(Start)) AS m, count() AS n FROM archived_traces")
        k.newest_ns = int(rows[0]["m"]) if rows and rows[0]["n"] else None
        k.fingerprint = fingerprint
    return k.newest_ns


def archive_reaches(store: Store, lo_ns: int) -> bool:
    """Whether a range starting at ``lo_ns`` includes archived traces."""
    newest = newest_archived_ns(store)
    return newest is not None and newest >= lo_ns
