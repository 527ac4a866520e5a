"""An archive run as a state machine recorded in ``archive_runs``; a rerun completes an unfinished one.

    (index rows inserted, invisible)
      -> planned      the run's traces are fixed: trace_summary_archive rows with its RunId
      -> written      the spans are in ONE Delta commit tagged (APP_ID, Seq)
      -> committed    ONE insert: readers see the archive copy and hide the hot copy (the flip)
      -> hot_deleted  the hot copy is gone (day partitions dropped, or lightweight DELETE)
      -> done         expired archive traces deleted, files vacuumed, unreferenced blobs removed

Every step is idempotent, and each state is written only after its step finished, so a process
killed anywhere leaves a state from which :func:`execute` continues: a write that committed is
recognised by the Delta app transaction version; deletes are repeated harmlessly. Whatever the
state, a span is visible in exactly one tier (views in :mod:`tracelake.store.archive_schema`).

Failure injection for tests: ``TRACELAKE_ARCHIVER_FAIL_AT=<point>[:kill|:error]`` stops the run at
a named point (see :data:`FAIL_POINTS`) by SIGKILL or by raising :class:`InjectedFailure`;
``:pause`` waits there (marker files in ``TRACELAKE_ARCHIVER_PAUSE_DIR``) while a test takes a
dependency down.
"""
from __future__ import annotations

import json
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import pyarrow as pa

from tracelake.store.base import Store

STATES = ("planned", "written", "committed", "hot_deleted", "done", "failed")
UNFINISHED = ("planned", "written", "committed", "hot_deleted")
FAIL_POINTS = ("after_index", "after_planned", "mid_write", "after_delta_commit", "after_written",
               "after_committed", "mid_hot_delete", "after_hot_delete", "after_hot_deleted",
               "after_expire_delta", "after_expire_index", "before_done")
FAIL_ENV = "TRACELAKE_ARCHIVER_FAIL_AT"


class InjectedFailure(RuntimeError):
    """Raised at a failure point named by TRACELAKE_ARCHIVER_FAIL_AT (tests only)."""


def fail_point(name: str) -> None:
    """Stop here if the environment asks for it (kill -9 or an exception)."""
    spec = os.environ.get(FAIL_ENV, "")
    if not spec:
        return
    point, _, how = spec.partition(":")
    if point != name:
        return
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "pause":
        # The test takes something down while we wait here, then lets us go on into it.
        directory = os.environ["TRACELAKE_ARCHIVER_PAUSE_DIR"]
        open(os.path.join(directory, f"{name}.paused"), "w").close()
        go = os.path.join(directory, f"{name}.go")
        while not os.path.exists(go):
            time.sleep(0.05)
        return
    raise InjectedFailure(f"injected failure at {name}")


@dataclass
class RunRecord:
    """One run, as its latest state row says."""

    run_id: str
    seq: int
    state: str
    version: int = 0
    started_at: datetime | None = None
    updated_at: datetime | None = None
    now: datetime | None = None  # the run's clock: every decision of the run uses this time
    rules: dict[str, Any] = field(default_factory=dict)
    traces: int = 0
    spans: int = 0
    bytes: int = 0
    archive_bytes: int = 0
    deleted_traces: int = 0
    deleted_spans: int = 0
    dropped_partitions: int = 0
    error: str = ""

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.updated_at is None:
            return None
        return (self.updated_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["duration_s"] = self.duration_s
        return d


def new_run(seq: int, now: datetime) -> RunRecord:
    run_id = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"
    return RunRecord(run_id=run_id, seq=seq, state="planned", started_at=now, now=now)


def _ts(value: datetime | None) -> datetime:
    return (value or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None)


def record(store: Store, run: RunRecord, state: str, **changes: Any) -> RunRecord:
    """Write the run's new state (a new row with a higher Version): the only way a state changes."""
    for key, value in changes.items():
        setattr(run, key, value)
    run.state = state
    run.version += 1
    run.updated_at = datetime.now(timezone.utc)
    row = {"RunId": run.run_id, "Seq": run.seq, "State": state, "Version": run.version,
           "StartedAt": _ts(run.started_at), "UpdatedAt": _ts(run.updated_at), "Now": _ts(run.now),
           "Rules": json.dumps(run.rules), "Traces": run.traces, "Spans": run.spans, "Bytes": run.bytes,
           "ArchiveBytes": run.archive_bytes, "DeletedTraces": run.deleted_traces,
           "DeletedSpans": run.deleted_spans, "DroppedPartitions": run.dropped_partitions,
           "Error": run.error[:4000]}
    schema = pa.schema([("RunId", pa.string()), ("Seq", pa.uint64()), ("State", pa.string()),
                        ("Version", pa.uint64()), ("StartedAt", pa.timestamp("ms")), ("UpdatedAt", pa.timestamp("ms")),
                        ("Now", pa.timestamp("ms")), ("Rules", pa.string()), ("Traces", pa.uint64()),
                        ("Spans", pa.uint64()), ("Bytes", pa.uint64()), ("ArchiveBytes", pa.uint64()),
                        ("DeletedTraces", pa.uint64()), ("DeletedSpans", pa.uint64()),
                        ("DroppedPartitions", pa.uint64()), ("Error", pa.string())])
    store.insert_arrow("archive_runs", pa.Table.from_pylist([row], schema=schema))
    return run


_SELECT_RUNS = """
SELECT RunId, argMax(Seq, Version) AS Seq, argMax(State, Version) AS State, max(Version) AS V,
       min(StartedAt) AS StartedAt, max(UpdatedAt) AS UpdatedAt, argMax(Now, Version) AS Now,
       argMax(Rules, Version) AS Rules, argMax(Traces, Version) AS Traces, argMax(Spans, Version) AS Spans,
       argMax(Bytes, Version) AS Bytes, argMax(ArchiveBytes, Version) AS ArchiveBytes,
       argMax(DeletedTraces, Version) AS DeletedTraces, argMax(DeletedSpans, Version) AS DeletedSpans,
       argMax(DroppedPartitions, Version) AS DroppedPartitions, argMax(Error, Version) AS Error
FROM archive_runs GROUP BY RunId
"""


def as_utc(value: Any) -> datetime | None:
    """A ClickHouse DateTime64 as read (naive UTC, or aware) -> an aware UTC datetime."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _record(r: dict[str, Any]) -> RunRecord:
    try:
        rules = json.loads(r["Rules"] or "{}")
    except ValueError:
        rules = {}
    return RunRecord(run_id=r["RunId"], seq=int(r["Seq"]), state=r["State"], version=int(r["V"]),
                     started_at=as_utc(r["StartedAt"]), updated_at=as_utc(r["UpdatedAt"]), now=as_utc(r["Now"]),
                     rules=rules, traces=r["Traces"], spans=r["Spans"], bytes=r["Bytes"],
                     archive_bytes=r["ArchiveBytes"], deleted_traces=r["DeletedTraces"],
                     deleted_spans=r["DeletedSpans"], dropped_partitions=r["DroppedPartitions"], error=r["Error"])


def list_runs(store: Store, limit: int = 50) -> list[RunRecord]:
    """The newest runs first: when, state, what moved, bytes, duration, error."""
    # No query parameter: this runs on the server's shared connection (see archiver.connection).
    rows = store.query_arrow(f"SELECT * FROM ({_SELECT_RUNS}) ORDER BY Seq DESC, StartedAt DESC "
                             f"LIMIT {max(1, int(limit))}").to_pylist()
    return [_record(r) for r in rows]


def unfinished_runs(store: Store) -> list[RunRecord]:
    """Runs a previous process left midway, oldest first."""
    rows = store.query_arrow(f"SELECT * FROM ({_SELECT_RUNS}) WHERE State IN {UNFINISHED} ORDER BY Seq").to_pylist()
    return [_record(r) for r in rows]


def next_seq(store: Store, delta_seq: int) -> int:
    """A Seq above every run recorded in ClickHouse and every write committed to Delta."""
    t = store.query_arrow("SELECT max(Seq) AS M, count() AS N FROM archive_runs").to_pylist()[0]
    last = int(t["M"]) if t["N"] else -1
    return max(last, delta_seq) + 1


Progress = Callable[[str, int, int], None]  # (phase, done, total)


def timed() -> Callable[[], float]:
    start = time.perf_counter()
    return lambda: time.perf_counter() - start
