"""Erasure with a receipt: every span of the matched traces leaves every tier, then a receipt says so.

    (targets frozen: trace ids in retention_targets)
      -> planned          criteria, who/when, span counts before, affected Delta files, candidate blobs
      -> hot_erased       mutations (ALTER TABLE ... DELETE, which rewrite the parts) on every hot table
      -> archive_erased   index rows gone; Delta delete of the affected Day partitions (files rewritten)
      -> archive_scrubbed old files vacuumed; Delta log checkpointed and older log files removed
      -> blobs_erased     blobs referenced only by erased traces deleted from the object store
      -> done             pins removed, replaced parts gone (waited for), receipt stored

A target is one project's spans of a trace (Project, TraceId): a trace id shared by two projects
is two traces here, and erasing as one project deletes that project's spans only, in every tier
(a project's caller matches through its scoped store; an admin matches every project).

Every step is idempotent and each state is written after its step, so a process killed anywhere
(``TRACELAKE_ARCHIVER_FAIL_AT=erase_<point>:kill``, see :data:`FAIL_POINTS`) leaves a request
that the next call finishes (:meth:`Eraser.resume`): the end state is as if it ran once. Holds
are checked before anything changes (a covered trace refuses the whole request). The archiver's
run lock is held throughout, so no archive run interleaves.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc

from tracelake.archiver import lock, receipts
from tracelake.archiver.config import ArchiverConfig
from tracelake.archiver.delta import ArchiveLocation, DeltaArchive
from tracelake.archiver.errors import BadRequest, RetentionError
from tracelake.archiver.receipts import TARGETS_SQL, Request, check_trace_id, iso, record, targets_by_project
from tracelake.archiver.runs import fail_point
from tracelake.attachments import object_key
from tracelake.query.compile import ALL_AGGS, ARCHIVE, HOT, Compiler, aggs
from tracelake.store.cost_schema import priced_index
from tracelake.query.filters import FilterError, parse, quote
from tracelake.query.params import Params
from tracelake.store.base import Store

log = logging.getLogger(__name__)

FAIL_POINTS = ("erase_after_targets", "erase_after_planned", "erase_mid_hot", "erase_after_hot",
               "erase_mid_archive", "erase_after_archive", "erase_after_vacuum", "erase_mid_blobs",
               "erase_after_blobs", "erase_before_done")
# ``scores`` serves both tiers (docs/scores.md): a target's scores go with its hot mutations.
HOT_TABLES = ("otel_traces", "trace_summary", "otel_traces_trace_id_ts", "scores")
ARCHIVE_INDEX_TABLES = ("trace_summary_archive", "archive_attachments")
TABLE_PREFIX = "archive/otel_traces/"  # the Delta table's key prefix in the object store
MAX_NS = 2**62
IDS_PER_DELETE = 5000

# Stats kept in the Delta log for new files: the first 2 columns (StartTimeUnixNano, TraceId), not
# user text; log files older than the last checkpoint are removed at once (no time travel).
LOG_PROPERTIES = {"delta.dataSkippingNumIndexedCols": "2", "delta.logRetentionDuration": "interval 0 seconds"}


class EraseError(BadRequest):
    """A request refused before anything changed (bad criteria 400, nothing matched 404, a hold
    409, the object store out of reach 503)."""


@dataclass(frozen=True)
class Criteria:
    user: str | None = None
    session: str | None = None
    filter: str | None = None

    def filter_text(self) -> str:
        terms = []
        if self.user is not None:
            terms.append(f"user:{quote(self.user)}")
        if self.session is not None:
            terms.append(f"session:{quote(self.session)}")
        if self.filter:
            terms.append(f"({self.filter})")
        return " ".join(terms)

    def validate(self) -> None:
        for name, value in (("user", self.user), ("session", self.session)):
            if value is not None and not value.strip():
                raise EraseError(f"--{name} is empty")
        if not self.filter_text().strip():
            raise EraseError("say what to erase: --user ID, --session ID or --filter TEXT")
        try:
            parse(self.filter_text())
        except FilterError as exc:
            raise EraseError(f"filter does not parse: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return {"user": self.user, "session": self.session, "filter": self.filter, "filter_text": self.filter_text()}


# --- matching -----------------------------------------------------------------------------------
def match_hot(store: Store, text: str) -> list[tuple[str, str]]:
    """(Project, TraceId) of the hot traces the filter matches (as a whole: trace-level terms on the
    aggregates of one project's spans of the trace)."""
    p = Params()
    node = parse(text)
    c = Compiler(p, p.i(0), p.i(MAX_NS), tier=HOT)
    where, having = c.split(node, p.i(0), p.i(MAX_NS))
    sql = (f"SELECT toString(Proj) AS P, TraceId FROM (SELECT TraceId, {aggs(ALL_AGGS)} FROM trace_summary "
           f"WHERE {where} GROUP BY Project, TraceId) WHERE {having}")
    return sorted({(r["P"], r["TraceId"]) for r in store.query_arrow(sql, p.bound(store)).to_pylist()})


def match_archive(store: Store, text: str) -> list[tuple[str, str, date]]:
    """(Project, TraceId, Day) of archived traces (index rows of any run, visible or not yet) the
    filter matches."""
    p = Params()
    c = Compiler(p, p.i(0), p.i(MAX_NS), tier=ARCHIVE)
    cond = c.compile(parse(text))
    sql = (f"SELECT DISTINCT toString(Project) AS P, TraceId, Day FROM (SELECT Project, TraceId, Day, "
           f"{aggs(ALL_AGGS, ARCHIVE)} FROM ({priced_index('trace_summary_archive FINAL').replace('{database}', store.database)})) WHERE {cond}")
    return sorted((r["P"], r["TraceId"], r["Day"]) for r in store.query_arrow(sql, p.bound(store)).to_pylist())


def _holds_covering(store: Store, ids: list[str], project: str, projects: set[str]) -> dict[str, list[str]]:
    """Holds covering ``ids`` of ``projects`` (the matched traces' own projects: another project's
    hold on spans sharing an id is not theirs), as the caller of ``project`` may be told of them
    (another project's or a global hold is only "a hold made by an admin")."""
    from tracelake.archiver.keep import holds_covering

    return holds_covering(store, ids, viewer=project, projects=projects) if ids else {}


def _unpin(store: Store, by_project: dict[str, list[str]], actor: str, every_project: bool) -> int:
    """An erased trace's pin goes too: the pin of the erased project, not another project's (an
    admin's erasure: every pin of the id, those without a project included)."""
    from tracelake.archiver.keep import unpin

    if every_project:
        return sum(bool(unpin(store, tid, actor=actor)) for tid in sorted({t for ids in by_project.values() for t in ids}))
    return sum(bool(unpin(store, tid, actor=actor, projects=[project]))
               for project, ids in by_project.items() for tid in ids)


# --- Delta helpers ------------------------------------------------------------------------------
def _fragments(location: ArchiveLocation, days: list[str], project: str | None = None):
    """The table's current data files in these Day partitions (and of ``project``: pyarrow fragments)."""
    dt = DeltaArchive(location)._table()
    parts = ([("Day", "in", days)] if days else []) + ([("Project", "=", project)] if project is not None else [])
    ds = dt.to_pyarrow_dataset(partitions=parts or None)
    return list(ds.get_fragments())


def _rows_of(frag: Any, ids: pa.Array) -> int:
    # Filtering in Python after reading one column: pushed-down filters trip over string_view stats.
    col = frag.to_table(columns=["TraceId"]).column("TraceId").cast(pa.string())
    return int(pc.sum(pc.is_in(col, value_set=ids)).as_py() or 0)


def _by_project(ids: list[str] | dict[str, list[str]]) -> dict[str | None, list[str]]:
    """Trace ids per project (a plain list: of any project)."""
    return dict(ids) if isinstance(ids, dict) else {None: list(ids)}  # type: ignore[arg-type]


def delta_span_count(location: ArchiveLocation, ids: list[str] | dict[str, list[str]], days: list[str]) -> int:
    """Rows of these traces (per project, when ``ids`` is a dict) in the Delta table's current
    version, read by pyarrow (not ClickHouse)."""
    if not ids or not DeltaArchive(location).exists():
        return 0
    return sum(_rows_of(f, pa.array(pids, pa.string()))
               for project, pids in _by_project(ids).items() if pids for f in _fragments(location, days, project))


def delta_files_with(location: ArchiveLocation, ids: list[str] | dict[str, list[str]], days: list[str]) -> list[str]:
    """Data files (paths relative to the table) holding a row of these traces (per project)."""
    if not ids or not DeltaArchive(location).exists():
        return []
    out = set()
    for project, pids in _by_project(ids).items():
        wanted = pa.array(pids, pa.string())
        for frag in _fragments(location, days, project) if pids else []:
            if _rows_of(frag, wanted):
                path = frag.path
                out.add(path[path.index(TABLE_PREFIX) + len(TABLE_PREFIX):] if TABLE_PREFIX in path else path)
    return sorted(out)


def scrub_log(location: ArchiveLocation) -> dict[str, Any]:
    """Limit log stats for new files, checkpoint, and remove every log file before the checkpoint:
    add/remove actions of rewritten files (whose min/max stats may hold erased values) go with them."""
    dt = DeltaArchive(location)._table()
    config = dt.metadata().configuration
    if any(config.get(k) != v for k, v in LOG_PROPERTIES.items()):
        dt.alter.set_table_properties(LOG_PROPERTIES)
        dt = DeltaArchive(location)._table()
    dt.create_checkpoint()
    removed = dt.cleanup_metadata()
    return {"checkpoint_version": dt.version(), "log_files_removed": removed}


# --- the eraser ---------------------------------------------------------------------------------
SpoolProbe = Callable[[], int]  # unloaded spool segments (0: drained)


class Eraser:
    def __init__(self, store: Store, location: ArchiveLocation, object_store: Any = None, *,
                 spool: SpoolProbe | None = None, spool_wait_s: float = 30.0, parts_wait_s: float = 120.0,
                 match_store: Store | None = None) -> None:
        self.store = store
        # Matching may go through a caller's project-scoped store (tracelake.auth.scope); the
        # deletes use the process's store.
        self.match_store = match_store or store
        self.location = location
        self.delta = DeltaArchive(location)
        self.object_store = object_store
        self.spool = spool
        self.spool_wait_s = spool_wait_s
        self.parts_wait_s = parts_wait_s

    # -- entry points ------------------------------------------------------------------------------
    def erase(self, criteria: Criteria, *, actor: str = "local", role: str = "admin", project: str = "*",
              dry_run: bool = False) -> dict[str, Any]:
        """Resume unfinished erasures, then erase what ``criteria`` matches; returns the receipt
        (or, with ``dry_run``, what would be matched). :class:`EraseError` when refused."""
        criteria.validate()
        with lock.exclusive(600):
            return self._erase_locked(criteria, actor, role, project, dry_run)

    def _erase_locked(self, criteria: Criteria, actor: str, role: str, project: str, dry_run: bool) -> dict[str, Any]:
        self._setup()
        if not dry_run:
            self._resume_locked()
        spool = self._wait_for_spool() if not dry_run else self._spool_now()
        text = criteria.filter_text()
        hot = match_hot(self.match_store, text)
        archive = match_archive(self.match_store, text)
        ids = sorted({t for _, t in hot} | {t for _, t, _ in archive})
        owners = {p for p, _ in hot} | {p for p, _, _ in archive}
        if dry_run:
            return {"dry_run": True, "criteria": criteria.to_dict(), "matched_trace_ids": ids,
                    "hot_traces": len(hot), "archive_traces": len({(p, t) for p, t, _ in archive}), "spool": spool,
                    "holds": _holds_covering(self.store, ids, project, owners)}
        if not ids:
            raise EraseError(f"nothing matched {text!r}: no trace in either tier (already erased?)", 404,
                             {"matched": 0, "criteria": criteria.to_dict()})
        holds = _holds_covering(self.store, ids, project, owners)
        if any(holds.values()):
            covered = {name: sorted(t)[:20] for name, t in holds.items() if t}
            raise EraseError(f"refused: {sum(len(v) for v in holds.values())} matched trace(s) are under "
                             f"legal hold ({', '.join(sorted(covered))}); nothing was changed", 409,
                             {"holds": covered})
        req = receipts.new_request("erase", actor, role, {
            "request": {"actor": actor, "role": role, "project": project, "criteria": criteria.to_dict(),
                        "requested_at": iso()},
            "spool": spool})
        receipts.add_targets(self.store, req.request_id, [(p, t, "hot", None) for p, t in hot] +
                             [(p, t, "archive", d) for p, t, d in archive])
        fail_point("erase_after_targets")
        self._plan(req)
        return self._execute(req)

    def resume(self) -> list[dict[str, Any]]:
        """Finish erasures a previous process left midway; their receipts."""
        with lock.exclusive():
            self._setup()
            return self._resume_locked()

    def _resume_locked(self) -> list[dict[str, Any]]:
        out = []
        for req in receipts.unfinished(self.store, "erase"):
            log.info("resuming erasure %s from state %s", req.request_id, req.state)
            if req.state == "new":  # killed before 'planned': targets are there, plan again
                self._plan(req)
            out.append(self._execute(req))
        return out

    def _setup(self) -> None:
        from tracelake.archiver.service import ensure_archive_view

        ensure_archive_view(self.store, self.location)

    # -- spool -------------------------------------------------------------------------------------
    def _spool_now(self) -> dict[str, Any]:
        if self.spool is None:
            return {"checked": False, "note": "no ingest spool in this process"}
        return {"checked": True, "unloaded_segments": self.spool()}

    def _wait_for_spool(self) -> dict[str, Any]:
        """Spans acked but not loaded yet cannot be matched: wait (bounded) until the spool is
        drained, and say in the receipt whether it was."""
        if self.spool is None:
            return {"checked": False, "drained": None,
                    "note": "no ingest spool visible to this process: spans acked by a collector but not yet "
                            "loaded were not searched"}
        start = time.monotonic()
        first = left = self.spool()
        while left and time.monotonic() - start < self.spool_wait_s:
            time.sleep(0.2)
            left = self.spool()
        waited = round(time.monotonic() - start, 3)
        note = ("spool drained: every acked span was loaded before matching" if not left else
                f"{left} spool segment(s) still unloaded after {waited}s: spans of the user in them (if any) "
                "were not erased; run the erasure again once they are loaded")
        return {"checked": True, "drained": not left, "unloaded_segments_at_start": first,
                "unloaded_segments_at_match": left, "waited_s": waited, "note": note}

    # -- planned -----------------------------------------------------------------------------------
    def _plan(self, req: Request) -> None:
        rows = receipts.targets(self.store, req.request_id)
        ids = sorted({r["TraceId"] for r in rows})
        days = sorted({r["Day"].isoformat() for r in rows if r["Tier"] == "archive"})
        req.doc["matched_trace_ids"] = ids
        req.doc["matched_by_project"] = targets_by_project(self.store, req.request_id)
        req.doc["archive_days"] = days
        by_project = req.doc["matched_by_project"]
        req.doc["before"] = self._counts(req.request_id, by_project, days)
        req.doc["delta"] = {"files_affected": delta_files_with(self.location, by_project, days)}
        req.doc["blob_candidates"] = self._blob_candidates(req.request_id)
        req.doc["parts_before"] = self._active_parts(HOT_TABLES + ARCHIVE_INDEX_TABLES + ("attachments",))
        req.step("planned")
        record(self.store, req, "planned")
        fail_point("erase_after_planned")

    def _targets_sql(self) -> str:
        return TARGETS_SQL  # (Project, TraceId) pairs: every statement below matches both

    def _by_project(self, req: Request) -> dict[str, list[str]]:
        """The request's targets per project (from the targets table for requests planned before
        the plan kept them)."""
        return req.doc.get("matched_by_project") or targets_by_project(self.store, req.request_id)

    def _counts(self, rid: str, ids: list[str] | dict[str, list[str]], days: list[str]) -> dict[str, Any]:
        t = self._targets_sql()
        q = self.store.query_arrow(
            f"SELECT (SELECT count() FROM (SELECT DISTINCT TraceId, SpanId FROM otel_traces "
            f"WHERE (Project, TraceId) IN {t})) AS S, "
            f"(SELECT count() FROM trace_summary WHERE (Project, TraceId) IN {t}) AS TS, "
            f"(SELECT count() FROM otel_traces_trace_id_ts WHERE (Project, TraceId) IN {t}) AS TI, "
            f"(SELECT count() FROM trace_summary_archive WHERE (Project, TraceId) IN {t}) AS AI, "
            f"(SELECT count() FROM archive_attachments WHERE (Project, TraceId) IN {t}) AS AA, "
            f"(SELECT count() FROM scores WHERE (Project, TraceId) IN {t}) AS SC",
            {"r": rid}).to_pylist()[0]
        return {"hot_spans": int(q["S"]), "archive_spans": delta_span_count(self.location, ids, days),
                "rows": {"otel_traces": int(q["S"]), "trace_summary": int(q["TS"]), "otel_traces_trace_id_ts": int(q["TI"]),
                         "trace_summary_archive": int(q["AI"]), "archive_attachments": int(q["AA"]),
                         "scores": int(q["SC"])}}

    def _blob_candidates(self, rid: str) -> list[str]:
        """Blobs the matched traces reference (hot span attributes, the archive's blob index)."""
        t = self._targets_sql()
        hot = self.store.query_arrow(
            "SELECT DISTINCT sha FROM otel_traces ARRAY JOIN extractAll(SpanAttributes['tracelake.attachments'], "
            f"'[0-9a-f]{{64}}') AS sha WHERE (Project, TraceId) IN {t}", {"r": rid}).column("sha").to_pylist()
        arch = self.store.query_arrow(f"SELECT DISTINCT Sha256 FROM archive_attachments WHERE (Project, TraceId) IN {t}",
                                      {"r": rid}).column("Sha256").to_pylist()
        return sorted(set(hot) | set(arch))

    # -- the machine -------------------------------------------------------------------------------
    def _execute(self, req: Request) -> dict[str, Any]:
        try:
            if req.state == "planned":
                self._erase_hot(req)
            if req.state == "hot_erased":
                self._erase_archive(req)
            if req.state == "archive_erased":
                self._scrub_archive(req)
            if req.state == "archive_scrubbed":
                self._erase_blobs(req)
            if req.state == "blobs_erased":
                self._finish(req)
            return receipts.get_receipt(self.store, req.request_id) or {}
        except Exception as exc:
            from tracelake.archiver.runs import InjectedFailure

            if not isinstance(exc, InjectedFailure):
                try:
                    record(self.store, req, req.state, error=f"{type(exc).__name__}: {exc}")
                except Exception:  # noqa: BLE001 - the store may be what failed
                    pass
            raise

    def _mutate(self, table: str, rid: str) -> int:
        """ALTER TABLE ... DELETE (a mutation: parts holding the rows are rewritten without them),
        waited for. Counted first: a mutation is a rewrite even when nothing matches."""
        t = self._targets_sql()
        n = self.store.query_arrow(f"SELECT count() AS n FROM {table} WHERE (Project, TraceId) IN {t}",
                                   {"r": rid}).to_pylist()[0]["n"]
        if n:
            self.store.execute(f"ALTER TABLE {table} DELETE WHERE (Project, TraceId) IN {t} SETTINGS mutations_sync = 2",
                               {"r": rid})
        return int(n)

    def _erase_hot(self, req: Request) -> None:
        for i, table in enumerate(HOT_TABLES):
            self._mutate(table, req.request_id)
            if i == 0:
                fail_point("erase_mid_hot")
        req.doc["authored_scores_erased"] = self._erase_authored_scores(req)
        req.step("hot_erased")
        record(self.store, req, "hot_erased")
        fail_point("erase_after_hot")

    def _erase_authored_scores(self, req: Request) -> int:
        """An erased user's own judgements (their app's thumbs and comments, Author = the user id) on
        any trace of the request's project (every project for an admin); idempotent."""
        request = req.doc.get("request", {})
        user = (request.get("criteria") or {}).get("user")
        if not user:
            return req.doc.get("authored_scores_erased", 0)
        project = request.get("project", "*")
        p = Params()
        where = f"Author = {p.s(user)}" + ("" if project == "*" else f" AND Project = {p.s(project)}")
        n = int(self.store.query_arrow(f"SELECT count() AS n FROM scores WHERE {where}",
                                       p.bound(self.store)).to_pylist()[0]["n"])
        if n:
            self.store.execute(f"ALTER TABLE scores DELETE WHERE {where} SETTINGS mutations_sync = 2", p.bound(self.store))
        return n + req.doc.get("authored_scores_erased", 0)

    def _erase_archive(self, req: Request) -> None:
        from deltalake import CommitProperties

        for table in ARCHIVE_INDEX_TABLES:
            self._mutate(table, req.request_id)
        from tracelake.archiver.service import _string_literal

        by_project = {p: [check_trace_id(t) for t in ids] for p, ids in self._by_project(req).items()}
        days = [date.fromisoformat(d).isoformat() for d in req.doc.get("archive_days", [])]  # validated dates
        if days and self.delta.exists():
            props = CommitProperties(custom_metadata={"tracelake.erasure": req.request_id})
            for i, day in enumerate(days):
                for project, ids in by_project.items():  # the project is a partition column of the table
                    for j in range(0, len(ids), IDS_PER_DELETE):
                        id_list = ", ".join(f"'{x}'" for x in ids[j:j + IDS_PER_DELETE])
                        self.delta._table().delete(f"Day = '{day}' AND Project = {_string_literal(project)} "
                                                   f"AND TraceId IN ({id_list})", commit_properties=props)
                if i == 0:
                    fail_point("erase_mid_archive")
        # The Delta history tells what each delete of this request did (even one a crash cut off
        # from its state row); read before the log is scrubbed.
        deletes = []
        if self.delta.exists():
            for h in self.delta._table().history():
                if h.get("tracelake.erasure") == req.request_id:
                    m = h.get("operationMetrics") or {}
                    deletes.append({"version": h.get("version"), "predicate_days": _days_of(h),
                                    "files_removed": m.get("num_removed_files", 0), "files_added": m.get("num_added_files", 0),
                                    "rows_deleted": m.get("num_deleted_rows", 0), "rows_copied": m.get("num_copied_rows", 0)})
        req.doc["delta"]["deletes"] = sorted(deletes, key=lambda d: d["version"] or 0)
        req.doc["delta"]["files_rewritten"] = sum(d["files_removed"] for d in deletes)
        req.doc["delta"]["files_written"] = sum(d["files_added"] for d in deletes)
        req.step("archive_erased")
        record(self.store, req, "archive_erased")
        fail_point("erase_after_archive")

    def _scrub_archive(self, req: Request) -> None:
        if self.delta.exists():
            vacuumed = self.delta.vacuum()
            log_info = scrub_log(self.location)
        else:
            vacuumed, log_info = [], {}
        affected = req.doc["delta"].get("files_affected", [])
        req.doc["delta"]["vacuumed"] = sorted(set(req.doc["delta"].get("vacuumed", [])) | set(vacuumed))
        req.doc["delta"]["affected_files_left"] = [f for f in affected if self._delta_file_exists(f)]
        req.doc["delta"]["log"] = log_info
        req.step("archive_scrubbed")
        record(self.store, req, "archive_scrubbed")
        fail_point("erase_after_vacuum")

    def _delta_file_exists(self, rel: str) -> bool:
        if self.location.is_local:
            return (Path(self.location.uri) / rel).exists()
        if self.object_store is not None:
            return self.object_store.head(TABLE_PREFIX + rel) is not None
        return False

    def _erase_blobs(self, req: Request) -> None:
        candidates = req.doc.get("blob_candidates", [])
        removed, kept = list(req.doc.get("blobs_removed", [])), []
        if candidates:
            live_pairs = self._live_blob_projects()
            live = {sha for sha, _ in live_pairs}
            self._revoke_blob_access(candidates, set(self._by_project(req)), live_pairs)
            for i, sha in enumerate(candidates):
                if sha in live:
                    kept.append(sha)  # another trace still refers to it
                    continue
                if self.object_store is not None:
                    self.object_store.delete(object_key(sha))
                if sha not in removed:
                    removed.append(sha)
                if i == 0:
                    fail_point("erase_mid_blobs")
            gone = [s for s in candidates if s not in live]
            if gone:
                n = self.store.query_arrow("SELECT count() AS n FROM attachments WHERE has(splitByChar(',', {s:String}), Sha256)",
                                           {"s": ",".join(gone)}).to_pylist()[0]["n"]
                if n:
                    self.store.execute("ALTER TABLE attachments DELETE WHERE has(splitByChar(',', {s:String}), Sha256) "
                                       "SETTINGS mutations_sync = 2", {"s": ",".join(gone)})
        req.doc["blobs_removed"] = sorted(removed)
        req.doc["blobs_kept_shared"] = sorted(kept)
        req.step("blobs_erased")
        record(self.store, req, "blobs_erased")
        fail_point("erase_after_blobs")

    def _revoke_blob_access(self, candidates: list[str], erased: set[str], live: set[tuple[str, str]]) -> None:
        """A blob another project still refers to stays stored, but an erased project loses access
        to it (its attachments index row) once none of its spans refers to it any more."""
        rows = self.store.query_arrow("SELECT DISTINCT Sha256, toString(Project) AS P FROM attachments "
                                      "WHERE has(splitByChar(',', {s:String}), Sha256)",
                                      {"s": ",".join(candidates)}).to_pylist()
        for r in rows:
            if r["P"] in erased and (r["Sha256"], r["P"]) not in live:
                self.store.execute("ALTER TABLE attachments DELETE WHERE Sha256 = {s:String} AND Project = {p:String} "
                                   "SETTINGS mutations_sync = 2", {"s": r["Sha256"], "p": r["P"]})

    def _live_blob_projects(self) -> set[tuple[str, str]]:
        """(sha, project) of every blob some span still refers to, hot or archived."""
        rows = self.store.query_arrow(
            "SELECT DISTINCT sha, toString(Project) AS P FROM otel_traces "
            "ARRAY JOIN extractAll(SpanAttributes['tracelake.attachments'], '[0-9a-f]{64}') AS sha "
            "WHERE mapContains(SpanAttributes, 'tracelake.attachments') UNION DISTINCT "
            "SELECT DISTINCT Sha256 AS sha, toString(Project) AS P FROM archive_attachments").to_pylist()
        return {(r["sha"], r["P"]) for r in rows}

    def _finish(self, req: Request) -> None:
        by_project = self._by_project(req)
        admin = req.doc.get("request", {}).get("project", "*") == "*"
        req.doc["pins_removed"] = req.doc.get("pins_removed", 0) + _unpin(self.store, by_project, req.actor, admin)
        req.doc["replaced_parts_left"] = self._wait_for_parts(req.doc.get("parts_before", []))
        req.doc["after"] = self._counts(req.request_id, by_project, req.doc.get("archive_days", []))
        req.step("done")
        req.doc["finished_at"] = req.doc["steps"]["done"]
        receipt = self.receipt(req)
        receipts.store_receipt(self.store, req.request_id, receipt)
        fail_point("erase_before_done")
        record(self.store, req, "done")

    @staticmethod
    def receipt(req: Request) -> dict[str, Any]:
        d = req.doc
        return {"receipt": "tracelake erasure", "request_id": req.request_id, "request": d.get("request", {}),
                "matched_trace_ids": d.get("matched_trace_ids", []), "archive_days": d.get("archive_days", []),
                "spans": {"before": {"hot": d["before"]["hot_spans"], "archive": d["before"]["archive_spans"]},
                          "after": {"hot": d["after"]["hot_spans"], "archive": d["after"]["archive_spans"]}},
                "rows": {"before": d["before"]["rows"], "after": d["after"]["rows"]},
                "delta": d.get("delta", {}), "blobs_removed": d.get("blobs_removed", []),
                "blobs_kept_shared": d.get("blobs_kept_shared", []), "pins_removed": d.get("pins_removed", 0),
                "spool": d.get("spool", {}), "replaced_parts_left": d.get("replaced_parts_left", []),
                "steps": d.get("steps", {}), "finished_at": d.get("finished_at")}

    # -- parts ---------------------------------------------------------------------------------------
    def _active_parts(self, tables: tuple[str, ...]) -> list[list[str]]:
        names = ",".join(tables)
        return [[r["table"], r["name"]] for r in self.store.query_arrow(
            "SELECT table, name FROM system.parts WHERE database = currentDatabase() AND active "
            "AND has(splitByChar(',', {t:String}), table)", {"t": names}).to_pylist()]

    def _wait_for_parts(self, before: list[list[str]]) -> list[list[str]]:
        """Parts replaced by the mutations still hold the old rows until ClickHouse removes them
        (old_parts_lifetime): wait for that, bounded; what is left is named in the receipt."""
        if not before:
            return []
        wanted = {(t, n) for t, n in before}
        deadline = time.monotonic() + self.parts_wait_s
        while True:
            left = sorted({(r["table"], r["name"]) for r in self.store.query_arrow(
                "SELECT table, name FROM system.parts WHERE database = currentDatabase() AND NOT active "
                "AND has(splitByChar(',', {t:String}), table)", {"t": ",".join({t for t, _ in wanted})}).to_pylist()}
                & wanted)
            if not left or time.monotonic() >= deadline:
                return [list(x) for x in left]
            time.sleep(0.5)


def _days_of(entry: dict[str, Any]) -> str:
    pred = (entry.get("operationParameters") or {}).get("predicate", "")
    return pred.split("AND")[0].strip() if pred else ""


def spool_probe_for_dir(spool_dir: Path | None) -> SpoolProbe | None:
    """For a process without a collector: spool segments on disk that no loader took yet."""
    if spool_dir is None:
        return None

    def probe() -> int:
        if not spool_dir.is_dir():
            return 0
        return sum(1 for p in spool_dir.iterdir() if p.suffix in (".seg", ".open") and p.stat().st_size > 0)

    return probe


def eraser_for(store: Store, config: ArchiverConfig, spool: SpoolProbe | None = None) -> Eraser:
    """An Eraser of the configured archive and object store; ``spool`` tells whether ingest has
    spans not yet loaded (the collector's in this process, :func:`spool_probe_for_dir` for the CLI)."""
    try:
        object_store = config.open_object_store()
    except Exception as exc:  # noqa: BLE001 - named in the error below
        raise EraseError(f"object store not reachable: {exc}", 503) from exc
    return Eraser(store, config.location, object_store, spool=spool, spool_wait_s=config.erase_spool_wait_s,
                  parts_wait_s=config.erase_parts_wait_s)


Audit = Callable[..., None]  # audit(action, target, detail, outcome="ok"): the caller's audit log entry


def erase_audited(eraser: "Eraser", criteria: Criteria, audit: Audit, *, dry_run: bool = False,
                  **caller: str) -> dict[str, Any]:
    """:meth:`Eraser.erase`, recorded in the audit log as refused (with the reason) or done; a dry
    run changes nothing and is not recorded. Shared by the API and the CLI run on its own."""
    try:
        doc = eraser.erase(criteria, dry_run=dry_run, **caller)
    except RetentionError as exc:  # EraseError, or Busy (a pass holds the archive)
        if not dry_run:
            audit("erase", criteria.filter_text(), str(exc), "refused")
        raise
    if not dry_run:
        audit("erase", criteria.filter_text(),
              f"{doc.get('request_id')}: {len(doc.get('matched_trace_ids', []))} traces erased")
        from tracelake.events import traces_changed

        traces_changed(doc.get("matched_trace_ids", []))  # copies kept elsewhere (the UI's trees) go too
    return doc
