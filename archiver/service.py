"""The Archiver: plan, run one pass (the state machine of :mod:`tracelake.archiver.runs`), schedule.

One pass: finish any run a previous process left midway, then start a new one: fix the traces
that leave hot (index rows), write their spans to Delta in one commit, flip to 'committed',
delete the hot copy, delete archived traces past their time, vacuum, collect unreferenced blobs.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from tracelake.archiver import files as archive_files
from tracelake.archiver import lock, runs, text_index
from tracelake.archiver.config import ArchiverConfig
from tracelake.archiver.connection import own_connection
from tracelake.archiver.delta import ArchiveLocation, ArchiveStoreError, DeltaArchive
from tracelake.archiver.plan import NS, Plan, candidates_sql, expired_condition, make_plan
from tracelake.archiver.policy import RetentionPolicy
from tracelake.archiver.runs import RunRecord, fail_point, record
from tracelake.archiver.spans import write_run
from tracelake.query.params import Params
from tracelake.store.archive_schema import archive_table_sql, archive_view_sql, empty_archive_view_sql
from tracelake.store.base import Store, StoreError

log = logging.getLogger(__name__)

INDEX_COLUMNS = ("Project, TraceId, Start, End, RootName, RootService, SpanCount, ErrorCount, Services, Models, "
                 "InputTokens, OutputTokens, CostUsd, SessionId, UserId, Day, Bytes, RunId, Rule, ArchivedAt, "
                 "DeleteAfter, SpanUsage")

# A run's traces: (Project, TraceId) pairs, never a bare id (another project's spans may share it).
MOVED = "(SELECT Project, TraceId FROM trace_summary_archive WHERE RunId = {r:String})"

# Hot tables that hold a trace (each with a Project column), with the column their day partition is computed from.
HOT_TABLES = (("otel_traces", "toDate(Timestamp)"), ("trace_summary", "toDate(Start)"),
              ("otel_traces_trace_id_ts", "toDate(Start)"))

Progress = Callable[[str, int, int], None]

_LOCAL_ARCHIVES: set[Path] = set()


def allow_local_reads(location: ArchiveLocation) -> None:
    """Embedded ClickHouse (chdb 4.4) reads a ``DeltaLakeLocal`` table only inside the process's
    working directory, at every read (its user files path is empty, so the check is against
    ``.``; passing ``user_files_path`` to chdb changes nothing). So the process works in the
    local archive's own directory (the directory holding every local archive set up in this
    process, for tests that open several): never wider, and every path tracelake keeps is
    absolute by then (the store and settings resolve theirs at start)."""
    if not location.is_local:
        return
    _LOCAL_ARCHIVES.add(Path(location.uri).resolve())
    root = Path(os.path.commonpath(sorted(_LOCAL_ARCHIVES)))
    if Path.cwd() != root:
        log.info("working directory %s -> %s so that ClickHouse may read the archive", Path.cwd(), root)
        os.chdir(root)


def ensure_archive_view(store: Store, location: ArchiveLocation) -> bool:
    """Create the Delta table if missing and (re)create ``otel_traces_archive`` over it.

    False (and an empty view with the same columns) when the object store cannot be reached."""
    try:
        DeltaArchive(location).ensure()
        allow_local_reads(location)
        store.execute(archive_table_sql(location.clickhouse_source))
        store.execute(archive_view_sql(store.database))
        archive_files.register(store, location)
        return True
    except Exception as exc:  # noqa: BLE001 - the server must start even when the archive is down
        log.warning("archive at %s not reachable (%s); otel_traces_archive is empty for now", location.uri, exc)
        store.execute(empty_archive_view_sql())
        return False


@dataclass
class RunResult:
    runs: list[RunRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"runs": [r.to_dict() for r in self.runs]}


class Archiver:
    """Moves traces between tiers according to a :class:`RetentionPolicy`. One pass at a time."""

    def __init__(self, store: Store, policy: RetentionPolicy, archive_location: ArchiveLocation, *,
                 chunk_spans: int = 500_000, object_store: Any = None,
                 attachment_grace: timedelta = timedelta(hours=24), writers: int = 2) -> None:
        self.store = own_connection(store)
        self._origin = store
        self.writers = writers
        self.policy = policy
        self.location = archive_location
        self.delta = DeltaArchive(archive_location)
        self.chunk_spans = chunk_spans
        self.object_store = object_store
        self.attachment_grace = attachment_grace
        self._next_policy: RetentionPolicy | None = None  # applied from the page, taken at a pass's start
        self._policy_lock = threading.Lock()
        # Rules kept in the store (no --retention file): read again at each pass, so a version
        # applied from another process's page is used too (tracelake.archiver.rules).
        self.refresh_policy: Callable[[Store], RetentionPolicy | None] | None = None
        self._last_gc: datetime | None = None
        self.last_gc: Any = None
        self._ready = False
        self.last_result: RunResult | None = None
        self.last_error: str = ""

    def release(self) -> None:
        """Close the archiver's own connection (not the store it was made from)."""
        from tracelake.archiver.connection import release

        release(self.store)

    # --- setup ---------------------------------------------------------------------------------
    def setup(self) -> None:
        if not self._ready:
            self.delta.ensure()
            allow_local_reads(self.location)
            self.store.execute(archive_table_sql(self.location.clickhouse_source))
            self.store.execute(archive_view_sql(self.store.database))
            archive_files.register(self.store, self.location)  # lookups by trace id read its files
            self._ready = True

    # --- policy swap (rules applied from the Retention page) -----------------------------------
    @property
    def pending_policy(self) -> RetentionPolicy | None:
        """A policy handed over while a pass was running, in force from the next pass."""
        return self._next_policy

    def swap_policy(self, policy: RetentionPolicy) -> bool:
        """Use ``policy`` from now on, never in the middle of a pass: it is taken under the run lock,
        at once when no pass runs, else when the next pass starts. True when already in force."""
        with self._policy_lock:
            self._next_policy = policy
        with lock.if_free() as free:
            if free:
                self._adopt_policy()
        return free

    def _adopt_policy(self, refresh: bool = False) -> None:
        """Called with the run lock held."""
        if refresh and self.refresh_policy is not None:
            try:
                newer = self.refresh_policy(self.store)
            except Exception as exc:  # noqa: BLE001 - keep the rules in hand; say why
                log.warning("could not read the stored retention rules (%s); keeping %s", exc, self.policy.source)
                newer = None
            if newer is not None and newer.source != (self._next_policy or self.policy).source:
                log.info("retention rules: %s (applied elsewhere) in force from this pass", newer.source)
                with self._policy_lock:
                    self._next_policy = newer
        with self._policy_lock:
            if self._next_policy is not None:
                self.policy, self._next_policy = self._next_policy, None

    # --- plan ----------------------------------------------------------------------------------
    def plan(self, now: datetime | None = None) -> Plan:
        self.setup()
        return make_plan(self.store, self._next_policy or self.policy, now)

    # --- run -----------------------------------------------------------------------------------
    def run_once(self, progress: Progress | None = None, now: datetime | None = None) -> RunResult:
        """Finish unfinished runs, then do one new run. Raises on failure (the run stays resumable)."""
        with lock.exclusive(0, "an archive run is already in progress"):
            return self._run_once_locked(progress, now)

    def _run_once_locked(self, progress: Progress | None, now: datetime | None) -> RunResult:
        try:
            self._adopt_policy(refresh=True)
            self.setup()
            result = RunResult()
            for run in runs.unfinished_runs(self.store):
                log.info("resuming archive run %s from state %s", run.run_id, run.state)
                result.runs.append(self._execute(run, progress))
            self._cleanup_orphans()
            now = now or datetime.now(timezone.utc)
            run = runs.new_run(runs.next_seq(self.store, self.delta.committed_seq()), now)
            run.rules = {r.name: r.describe() for r in self.policy.rules}
            self._select(run)
            result.runs.append(self._execute(run, progress))
            self.index_text(progress)
            self.last_result, self.last_error = result, ""
            return result
        except Exception as exc:
            self.last_error = str(exc)
            raise
        finally:
            self._adopt_policy()  # rules applied during the pass are in force from now on

    def index_text(self, progress: Progress | None = None) -> int:
        """Term-index the archive's files that have no entry yet (archiver.text_index). Best
        effort: a file left unindexed is read by searches, so a failure here only logs."""
        try:
            live = text_index.live_files(self.location)
            return text_index.index_pending(self.store, self.location, live,
                                            (lambda i, n: progress("index text", i, n)) if progress else None)
        except Exception as exc:  # noqa: BLE001 - searches stay exact without the index
            log.warning("archive term index not updated (%s); unindexed files are read by searches", exc)
            return 0

    def _cleanup_orphans(self) -> None:
        """Index rows of runs that never reached 'planned' (killed between insert and state)."""
        for table in ("trace_summary_archive", "archive_attachments"):
            orphan = "RunId NOT IN (SELECT RunId FROM archive_runs)"
            # Count first: a DELETE is a mutation even when nothing matches.
            if self.store.query_arrow(f"SELECT count() AS n FROM {table} WHERE {orphan}").to_pylist()[0]["n"]:
                self.store.execute(f"DELETE FROM {table} WHERE {orphan}")

    def _select(self, run: RunRecord) -> None:
        """Fix the run's traces: index rows tagged with its RunId, then state 'planned'."""
        p = Params()
        now_ns = int(run.now.timestamp() * NS)
        sql = candidates_sql(self.store, self.policy, now_ns, p, run.run_id)  # pinned traces stay hot
        self.store.execute(f"INSERT INTO trace_summary_archive ({INDEX_COLUMNS}) SELECT {INDEX_COLUMNS} FROM ({sql})",
                           p.bound(self.store))
        fail_point("after_index")
        t = self.store.query_arrow("SELECT count() AS T, sum(SpanCount) AS S, sum(Bytes) AS B "
                                   "FROM trace_summary_archive WHERE RunId = {r:String}", {"r": run.run_id})
        row = t.to_pylist()[0]
        record(self.store, run, "planned", traces=row["T"], spans=row["S"] or 0, bytes=row["B"] or 0)
        fail_point("after_planned")

    def _execute(self, run: RunRecord, progress: Progress | None) -> RunRecord:
        try:
            if run.state == "planned":
                self._write(run, progress)
            if run.state == "written":
                record(self.store, run, "committed")
                fail_point("after_committed")
            if run.state == "committed":
                self._delete_hot(run, progress)
            if run.state == "hot_deleted":
                self._expire(run, progress)
                fail_point("before_done")
                record(self.store, run, "done", error="")
            return run
        except runs.InjectedFailure:
            raise
        except Exception as exc:
            # The state stays where it was; the error is noted for ops and the next pass resumes.
            try:
                record(self.store, run, run.state, error=f"{type(exc).__name__}: {exc}")
            except Exception:  # noqa: BLE001 - ClickHouse itself may be what is down
                pass
            raise

    # --- planned -> written ----------------------------------------------------------------------
    def _write(self, run: RunRecord, progress: Progress | None) -> None:
        if run.traces == 0:
            record(self.store, run, "written")
            return
        spans = 0
        if self.delta.committed_seq() >= run.seq:
            log.info("run %s: Delta commit already done", run.run_id)
            archive_bytes = run.archive_bytes
        else:
            done = [0]

            def step(n: int) -> None:
                done[0] += n
                if progress is not None:
                    progress("archive", done[0], run.spans)

            def chunk(i: int) -> None:
                if i == 1:
                    fail_point("mid_write")

            # Writers beyond the first get connections of their own for this run (chdb runs one
            # statement at a time per connection; a ClickHouse server store is shared as is).
            extra = [own_connection(self._origin) for _ in range(max(0, self.writers - 1))]
            try:
                files = write_run([self.store, *extra], self.location, run.run_id, self.chunk_spans, step, chunk)
            except StoreError as exc:
                # ClickHouse writes the files: an unreachable object store surfaces as its error.
                raise ArchiveStoreError(f"archive object store (files written by ClickHouse): {exc}") from exc
            finally:
                for store in extra:
                    if store is not self._origin and hasattr(store, "release"):
                        store.release()
            self.delta.commit(files, run.seq, run.run_id)
            spans = sum(f.rows for f in files)
            archive_bytes = sum(f.size for f in files)
            fail_point("after_delta_commit")
        # Blobs the archived spans reference, read from the hot copy (still there until
        # 'hot_deleted'; on a rerun after the commit too).
        self._attachments_from_hot(run)
        record(self.store, run, "written", spans=spans or run.spans, archive_bytes=archive_bytes)
        fail_point("after_written")

    def _attachments_from_hot(self, run: RunRecord) -> None:
        self.store.execute(
            "INSERT INTO archive_attachments (Sha256, TraceId, RunId, Project) "
            "SELECT DISTINCT sha, TraceId, {r:String}, Project FROM otel_traces "
            "ARRAY JOIN extractAll(SpanAttributes['tracelake.attachments'], '[0-9a-f]{64}') AS sha "
            "WHERE mapContains(SpanAttributes, 'tracelake.attachments') "
            f"AND (Project, TraceId) IN {MOVED}",
            {"r": run.run_id})

    # --- committed -> hot_deleted ------------------------------------------------------------------
    def _delete_hot(self, run: RunRecord, progress: Progress | None) -> None:
        """Remove the run's traces from every hot table: a day partition whose traces have all
        left is dropped whole (cheap); otherwise a lightweight DELETE of the moved traces."""
        moved = MOVED
        t = self.store.query_arrow(
            "SELECT toDate(min(Start)) AS Lo, toDate(max(End)) AS Hi FROM trace_summary_archive WHERE RunId = {r:String}",
            {"r": run.run_id}).to_pylist()[0]
        dropped = 0
        if run.traces and t["Lo"] is not None:
            work = []
            for table, day_expr in HOT_TABLES:
                # One pass per table: rows per day that belong to traces staying hot.
                for r in self.store.query_arrow(
                        f"SELECT {day_expr} AS D, countIf((Project, TraceId) NOT IN {moved}) AS Left, "
                        f"countIf((Project, TraceId) IN {moved}) AS Moving FROM {table} "
                        f"WHERE {day_expr} >= {{lo:Date}} AND {day_expr} <= {{hi:Date}} GROUP BY D ORDER BY D",
                        {"r": run.run_id, "lo": t["Lo"], "hi": t["Hi"]}).to_pylist():
                    if r["Moving"]:
                        work.append((table, day_expr, r["D"], r["Left"]))
            for step, (table, day_expr, day, left) in enumerate(work, 1):
                if left == 0:
                    self.store.execute(f"ALTER TABLE {table} DROP PARTITION {_date_literal(day)}")
                    dropped += 1
                else:
                    self.store.execute(f"DELETE FROM {table} WHERE {day_expr} = {{d:Date}} AND (Project, TraceId) IN {moved}",
                                       {"r": run.run_id, "d": day})
                if step == 1:
                    fail_point("mid_hot_delete")
                if progress is not None:
                    progress("delete hot", step, len(work))
        fail_point("after_hot_delete")
        record(self.store, run, "hot_deleted", dropped_partitions=dropped)
        fail_point("after_hot_deleted")

    # --- hot_deleted -> done: expiry ---------------------------------------------------------------
    def _expire(self, run: RunRecord, progress: Progress | None) -> None:
        """Delete archived traces past their time: Delta rows first, then their index rows (the
        index is the to-do list, so a rerun after a crash finds what is left), then vacuum."""
        from tracelake.archiver.keep import active_holds

        now_ns = int(run.now.timestamp() * NS)
        p = Params()
        # Pinned and held traces are never expired (the condition leaves them out).
        cond = expired_condition(self.policy, now_ns, p, active_holds(self.store))
        bound = p.bound(self.store)
        expired = self.store.query_arrow(
            f"SELECT toString(Day) AS D, toString(Project) AS P, groupArray(TraceId) AS Ids, sum(SpanCount) AS S "
            f"FROM archived_traces WHERE {cond} GROUP BY D, P ORDER BY D, P", bound).to_pylist()
        if not expired:
            if self._last_gc is None or run.now - self._last_gc >= self.attachment_grace:
                self._collect_attachments(run)
            return
        counts = {(r["D"], r["P"]): r["N"] for r in self.store.query_arrow(
            "SELECT toString(Day) AS D, toString(Project) AS P, count() AS N FROM trace_summary_archive FINAL "
            "GROUP BY D, P").to_pylist()}
        deleted_traces = deleted_spans = 0
        for i, r in enumerate(expired):
            day, ids = r["D"], sorted(set(r["Ids"]))
            where = f"Day = '{day}' AND Project = {_string_literal(r['P'])}"  # (Day, Project): the partition
            if counts.get((day, r["P"]), 0) <= len(ids):
                self.delta.delete(where)  # the whole partition leaves: whole files go
            else:
                for j in range(0, len(ids), 5000):
                    part = ids[j:j + 5000]
                    id_list = ", ".join(f"'{_hex(x)}'" for x in part)
                    self.delta.delete(f"{where} AND TraceId IN ({id_list})")
            deleted_traces += len(ids)
            deleted_spans += r["S"]
            if progress is not None:
                progress("expire", i + 1, len(expired))
        fail_point("after_expire_delta")
        # Exactly the traces deleted above: a pin or hold made meanwhile must not drop the index
        # row of a trace whose spans are still in the archive.
        gone: dict[str, set[str]] = {}
        for r in expired:
            gone.setdefault(r["P"], set()).update(_hex(t) for t in r["Ids"])
        for project, id_set in sorted(gone.items()):
            ids_sorted = sorted(id_set)
            for j in range(0, len(ids_sorted), 50_000):
                ids = {"p": project, "ids": ",".join(ids_sorted[j:j + 50_000])}  # hex ids: never a comma
                for table in ("archive_attachments", "trace_summary_archive"):
                    self.store.execute(f"DELETE FROM {table} WHERE Project = {{p:String}} AND TraceId IN "
                                       "(SELECT arrayJoin(splitByChar(',', {ids:String})))", ids)
        fail_point("after_expire_index")
        self.delta.vacuum()
        record(self.store, run, "hot_deleted", deleted_traces=run.deleted_traces + deleted_traces,
               deleted_spans=run.deleted_spans + deleted_spans)
        self._collect_attachments(run)

    def _collect_attachments(self, run: RunRecord) -> None:
        """Blobs no trace references any more (deleted traces leave them behind)."""
        if self.object_store is None:
            return
        from tracelake.archiver.gc import collect_attachments

        self.last_gc = collect_attachments(self.store, self.object_store, self.attachment_grace, now=run.now)
        self._last_gc = run.now


def _date_literal(day: date) -> str:
    return f"'{day.isoformat()}'"  # our own date object, never user text


def _string_literal(value: str) -> str:
    """A project name (from our own index; without auth, what spans claimed) as a Delta (SQL)
    predicate literal: quotes doubled, as standard SQL escapes them."""
    return "'" + value.replace("'", "''") + "'"


def _hex(value: str) -> str:
    if not all(c in "0123456789abcdefABCDEF" for c in value):
        raise ValueError(f"unexpected trace id {value[:40]!r}")
    return value


class Scheduler:
    """Runs :meth:`Archiver.run_once` every ``every`` on a daemon thread (first run after one
    interval, so a restart loop does not archive on every start); errors are logged and retried
    at the next tick: an unfinished run resumes there."""

    def __init__(self, archiver: Archiver, every: timedelta) -> None:
        self.archiver = archiver
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tracelake-archiver", daemon=True)
        self.next_run: datetime | None = None

    def start(self) -> "Scheduler":
        self._thread.start()
        return self

    def _loop(self) -> None:
        while True:
            self.next_run = datetime.now(timezone.utc) + self.every
            if self._stop.wait(self.every.total_seconds()):
                return
            try:
                result = self.archiver.run_once()
                for run in result.runs:
                    log.info("archive run %s: %s, %d traces / %d spans archived, %d traces deleted",
                             run.run_id, run.state, run.traces, run.spans, run.deleted_traces)
            except Exception as exc:  # noqa: BLE001 - keep the schedule alive; the run resumes next time
                log.error("archive run failed (it resumes at the next run): %s", exc)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the schedule; a run in progress finishes its current statement's step first (a
        run cut short resumes at the next start anyway)."""
        self._stop.set()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.archiver.release()


def archiver_for(store: Store, config: ArchiverConfig, policy: RetentionPolicy) -> Archiver:
    try:
        object_store = config.open_object_store()
    except Exception as exc:  # noqa: BLE001 - GC is skipped, archiving still works
        log.warning("attachment GC disabled: %s", exc)
        object_store = None
    return Archiver(store, policy, config.location, chunk_spans=config.chunk_spans, object_store=object_store,
                    attachment_grace=config.attachment_grace)


def start_for_server(store: Store, config: ArchiverConfig,
                     policy: RetentionPolicy | None) -> tuple[Archiver | None, Scheduler | None]:
    """In ``tracelake server``: the archive view always (readers query it), erasures and restores
    a killed process left midway finished in the background, and with a policy the Archiver and
    its schedule."""
    from tracelake.archiver.resume import start_resuming

    ensure_archive_view(store, config.location)
    start_resuming(store, config)
    if policy is None:
        return None, None
    archiver = archiver_for(store, config, policy)
    scheduler = Scheduler(archiver, config.every).start()
    return archiver, scheduler
