"""Where traces are: which tiers a read must look at, the clause that keeps a trace in exactly one
of them, and where one trace is (:func:`locate`: hot within a time window, or the archive's
partitions and runs, which name the files that can hold it).

Core, because both the archiver (explain, pins, holds) and the UI (every page) ask it.

The archive's ClickHouse objects (docs/archive.md) are made by the store migrations and the
archiver: ``archived_traces`` (the trace index of committed runs), ``archive_moving`` (traces whose
archive copy is visible while the hot copy is not deleted yet) and ``otel_traces_archive`` (the
spans). A store without them (an older database, or no archiver ever ran) is hot only.

* Hot readers add :data:`HOT_VISIBLE`: a trace being moved is read from the archive alone. The
  clause costs a scan of the archive index, and runs are in state ``committed`` only for the few
  seconds before their hot copy is deleted, so :func:`read_hot` adds it only when a run is in that
  state, and reads again with it when a run changed state while it read.
* Archive readers read only ``archived_traces`` and the span view restricted to its traces.
* The archive is consulted only when a range reaches back before the newest archived start: a
  ``max(Start)`` over the index, remembered until ``archive_runs`` changes.
"""
from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from datetime import date
from typing import Callable, TypeVar

from tracelake.query.params import Params, query
from tracelake.store.base import Store

HOT_VISIBLE = "TraceId NOT IN (SELECT TraceId FROM archive_moving)"
T = TypeVar("T")
ARCHIVE_OBJECTS = ("archived_traces", "archive_moving", "archive_runs", "otel_traces_archive", "retention_request_state")


@dataclass
class _Known:
    present: bool = False  # every archive object exists (they are never dropped: remembered)
    fingerprint: tuple = ()
    newest_ns: int | None = None


# Per store object (not per id(): a closed store's id can be reused by the next one).
_KNOWN: "weakref.WeakKeyDictionary[Store, _Known]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _known(store: Store) -> _Known:
    with _LOCK:
        k = _KNOWN.get(store)
        if k is None:
            k = _KNOWN[store] = _Known()
        return k


def archive_present(store: Store) -> bool:
    """Whether the store has the archive's objects (checked until they appear, then remembered)."""
    k = _known(store)
    if not k.present:
        names = ", ".join(f"'{n}'" for n in ARCHIVE_OBJECTS)
        rows = query(store, f"SELECT count() AS n FROM system.tables WHERE database = currentDatabase() "
                            f"AND name IN ({names})")
        k.present = bool(rows) and int(rows[0]["n"]) == len(ARCHIVE_OBJECTS)
    return k.present


def _run_states(store: Store) -> tuple[int, tuple[int, int]]:
    """(runs now 'committed', a stamp that changes with every run state change). Every change is
    a row with the run's next Version, so the sum of the runs' last versions grows with each one;
    merges of archive_runs (which drop superseded rows) leave it as it is."""
    rows = query(store, "SELECT countIf(S = 'committed') AS c, sum(V) AS v, count() AS n FROM "
                        "(SELECT argMax(State, Version) AS S, max(Version) AS V FROM archive_runs GROUP BY RunId)")
    r = rows[0]
    # A restore (tracelake.archiver.restore) hides hot copies while it copies them, like a
    # committed run; its state changes are part of the stamp too (migration 22).
    rr = query(store, "SELECT countIf(Kind = 'restore' AND State IN ('planned', 'copied')) AS c, "
                      "sum(LastVersion) AS v, count() AS n FROM retention_request_state")[0]
    return int(r["c"]) + int(rr["c"]), (int(r["v"]), int(r["n"]), int(rr["v"] or 0), int(rr["n"]))


def read_hot(store: Store, read: Callable[[str], T]) -> T:
    """``read(visible)``: a hot read given the clause that keeps moving traces out of it.

    Exact without scanning the archive index on every read: with no run in state 'committed' no
    trace is moving, so the read goes without the clause; if any run changed state meanwhile (it
    may have been 'committed' while we read), the read is done again with the clause."""
    if not archive_present(store):
        return read("1")
    committed, stamp = _run_states(store)
    if committed:
        return read(HOT_VISIBLE)
    out = read("1")
    if _run_states(store)[1] != stamp:
        out = read(HOT_VISIBLE)
    return out


def newest_archived_ns(store: Store) -> int | None:
    """Start (ns) of the newest archived trace, or None when nothing is archived."""
    if not archive_present(store):
        return None
    k = _known(store)
    # Visibility (and expiry) changes only with a run's state: archive_runs is a tiny table.
    fingerprint = _run_states(store)[1]
    if fingerprint != k.fingerprint:
        rows = query(store, "SELECT toUnixTimestamp64Nano(max(Start)) AS m, count() AS n FROM archived_traces")
        k.newest_ns = int(rows[0]["m"]) if rows and rows[0]["n"] else None
        k.fingerprint = fingerprint
    return k.newest_ns


def archive_reaches(store: Store, lo_ns: int) -> bool:
    """Whether a range starting at ``lo_ns`` includes archived traces."""
    newest = newest_archived_ns(store)
    return newest is not None and newest >= lo_ns


@dataclass(frozen=True)
class Location:
    """Where a trace's spans are: the hot tier within ``window``, or the archive's partitions."""

    trace_id: str
    tier: str  # 'hot' | 'archive'
    window: tuple[int, int] = (0, 0)  # [start, end] ns (archive: which of its files to open)
    days: tuple[date, ...] = field(default=())  # archive: Day partitions
    projects: tuple[str, ...] = field(default=())  # archive: Project partitions
    runs: tuple[str, ...] = field(default=())  # archive: the visible runs that archived it


def trace_window(store: Store, trace_id: str) -> tuple[int, int] | None:
    """The hot trace's [start, end] in ns from the lookup table, widened by a second each side
    (the table keeps whole seconds); None when it is not hot or is being moved to the archive."""
    p = Params()
    tid = p.s(trace_id)
    # One trace: the moving check is a lookup by id in the archive index (bloom-indexed), not a scan.
    moving = (f"AND TraceId NOT IN (SELECT TraceId FROM archive_moving WHERE TraceId = {tid})"
              if archive_present(store) else "")
    rows = query(store, "SELECT toUnixTimestamp(min(Start)) AS s, toUnixTimestamp(max(End)) AS e, count() AS n "
                        f"FROM otel_traces_trace_id_ts WHERE TraceId = {tid} {moving}", p)
    if not rows or not rows[0]["n"]:
        return None
    return (int(rows[0]["s"]) - 1) * 10**9, (int(rows[0]["e"]) + 2) * 10**9


def archive_location(store: Store, trace_id: str) -> Location | None:
    """The archived trace's partitions from the archive's index, or None."""
    if not archive_present(store):
        return None
    p = Params()
    rows = query(store, "SELECT DISTINCT Day, Project, RunId, toUnixTimestamp64Nano(Start) AS S, "
                        f"toUnixTimestamp64Nano(End) AS E FROM archived_traces WHERE TraceId = {p.s(trace_id)}", p)
    if not rows:
        return None
    # Widened by a second each side, as trace_window: only a guide to which files to open.
    window = (min(r["S"] for r in rows) - 10**9, max(r["E"] for r in rows) + 10**9)
    return Location(trace_id, "archive", window=window, days=tuple(sorted({r["Day"] for r in rows})),
                    projects=tuple(sorted({r["Project"] for r in rows})), runs=tuple(sorted({r["RunId"] for r in rows})))


def locate(store: Store, trace_id: str) -> Location | None:
    """Where the trace is read from: hot first (the common case), then the archive."""
    win = trace_window(store, trace_id)
    if win is not None:
        return Location(trace_id, "hot", window=win)
    return archive_location(store, trace_id)
