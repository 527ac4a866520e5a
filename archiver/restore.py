"""Restore: archived traces come back to the hot tier, pinned for a while, never duplicated.

    (targets frozen: trace ids and their archive Day in retention_targets)
      -> planned   hot readers hide these traces (``archive_moving``); the traces are pinned
      -> copied    spans copied from the archive into otel_traces (still hidden hot)
      -> flipped   ONE insert: hot readers show them, the archive views hide them
      -> done      archive copy removed (index rows, Delta delete, vacuum)

A target is one project's spans of a trace (Project, TraceId): restoring as one project copies,
pins and removes from the archive that project's spans only, never another project's spans that
share the trace id. At every state each span is visible in exactly one tier (views in
:mod:`tracelake.store.erase_schema`). A copy cut off by a crash is removed before copying again,
and the copy does not use insert deduplication (a block identical to an earlier restore must not
be dropped). Fail points: ``TRACELAKE_ARCHIVER_FAIL_AT=restore_<point>:kill`` (:data:`FAIL_POINTS`).
"""
from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

from tracelake.archiver import lock, receipts
from tracelake.archiver.config import ArchiverConfig
from tracelake.archiver.delta import ArchiveLocation, DeltaArchive
from tracelake.archiver.erase import IDS_PER_DELETE, MAX_NS
from tracelake.archiver.errors import BadRequest, RetentionError
from tracelake.archiver.receipts import TARGETS_SQL, Request, check_trace_id, iso, record, targets_by_project
from tracelake.archiver.runs import InjectedFailure, fail_point
from tracelake.durations import parse_duration
from tracelake.query.compile import ALL_AGGS, ARCHIVE, Compiler, aggs
from tracelake.query.filters import FilterError, parse
from tracelake.query.params import Params
from tracelake.store.base import Store

log = logging.getLogger(__name__)

FAIL_POINTS = ("restore_after_targets", "restore_after_planned", "restore_after_insert", "restore_after_copied",
               "restore_after_flipped", "restore_mid_archive_delete", "restore_before_done")

# otel_traces' stored (not MATERIALIZED) columns: those are computed again on insert.
COPY_COLUMNS = ("Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, ServiceName, "
                "ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode, StatusMessage, "
                "`Events.Timestamp`, `Events.Name`, `Events.Attributes`, `Links.TraceId`, `Links.SpanId`, "
                "`Links.TraceState`, `Links.Attributes`")


class RestoreError(BadRequest):
    """Refused before anything changed (bad filter or pin_for 400, nothing archived matched 404,
    an unfinished archive run 409)."""


def match_archived(store: Store, *, trace_id: str | None = None,
                   filter_text: str | None = None) -> list[tuple[str, str, date]]:
    """(Project, TraceId, Day) of visible archived traces ``store`` may see: one id, or what a filter matches."""
    if trace_id is not None:
        try:
            tid = check_trace_id(trace_id)
        except ValueError as exc:
            raise RestoreError(str(exc)) from exc
        rows = store.query_arrow("SELECT DISTINCT toString(Project) AS P, TraceId, Day FROM archived_traces "
                                 "WHERE TraceId = {t:String}", {"t": tid}).to_pylist()
        if not rows:
            raise RestoreError(f"trace {tid} is not in the archive (unknown, or already hot)", 404)
        return sorted((r["P"], r["TraceId"], r["Day"]) for r in rows)
    if not filter_text or not filter_text.strip():
        raise RestoreError("say what to restore: a trace id or --filter TEXT")
    try:
        node = parse(filter_text)
    except FilterError as exc:
        raise RestoreError(f"filter does not parse: {exc}") from exc
    p = Params()
    cond = Compiler(p, p.i(0), p.i(MAX_NS), tier=ARCHIVE).compile(node)
    rows = store.query_arrow(f"SELECT DISTINCT toString(Project) AS P, TraceId, Day FROM (SELECT Project, TraceId, "
                             f"Day, {aggs(ALL_AGGS, ARCHIVE)} FROM archived_traces) WHERE {cond}",
                             p.bound(store)).to_pylist()
    if not rows:
        raise RestoreError(f"no archived trace matches {filter_text!r}", 404)
    return sorted((r["P"], r["TraceId"], r["Day"]) for r in rows)


class Restorer:
    def __init__(self, store: Store, location: ArchiveLocation, match_store: Store | None = None) -> None:
        self.store = store
        self.match_store = match_store or store  # a caller's project-scoped store finds what it may restore
        self.location = location
        self.delta = DeltaArchive(location)

    def restore(self, *, trace_id: str | None = None, filter_text: str | None = None,
                pin_for: timedelta = timedelta(days=7), actor: str = "local", role: str = "admin") -> dict[str, Any]:
        with lock.exclusive(600):
            return self._restore_locked(trace_id, filter_text, pin_for, actor, role)

    def _restore_locked(self, trace_id: str | None, filter_text: str | None, pin_for: timedelta, actor: str,
                        role: str) -> dict[str, Any]:
        from tracelake.archiver.service import ensure_archive_view

        ensure_archive_view(self.store, self.location)
        self._resume_locked()
        from tracelake.archiver.runs import unfinished_runs

        if unfinished_runs(self.store):
            # Its traces may still have a hidden hot copy: a restore would duplicate them.
            raise RestoreError("an archive run was left unfinished; run `tracelake archiver run` to finish it, "
                               "then restore", 409)
        found = match_archived(self.match_store, trace_id=trace_id, filter_text=filter_text)
        until = datetime.now(timezone.utc) + pin_for
        req = receipts.new_request("restore", actor, role, {
            "request": {"actor": actor, "role": role, "trace_id": trace_id, "filter": filter_text,
                        "pin_for_s": int(pin_for.total_seconds()), "requested_at": iso()},
            "pinned_until": iso(until), "trace_ids": sorted({t for _, t, _ in found}),
            "days": sorted({d.isoformat() for _, _, d in found})})
        receipts.add_targets(self.store, req.request_id, [(p, t, "archive", d) for p, t, d in found])
        fail_point("restore_after_targets")
        req.step("planned")
        record(self.store, req, "planned")
        fail_point("restore_after_planned")
        return self._execute(req)

    def resume(self) -> list[dict[str, Any]]:
        from tracelake.archiver.service import ensure_archive_view

        with lock.exclusive():
            ensure_archive_view(self.store, self.location)
            return self._resume_locked()

    def _resume_locked(self) -> list[dict[str, Any]]:
        out = []
        for req in receipts.unfinished(self.store, "restore"):
            log.info("resuming restore %s from state %s", req.request_id, req.state)
            out.append(self._execute(req))
        return out

    def _execute(self, req: Request) -> dict[str, Any]:
        try:
            if req.state == "planned":
                self._pin(req)
                self._copy(req)
            if req.state == "copied":
                req.step("flipped")
                record(self.store, req, "flipped")  # the flip: hot shows them, the archive hides them
                fail_point("restore_after_flipped")
            if req.state == "flipped":
                self._remove_archive_copy(req)
            return req.to_dict() | {"trace_ids": req.doc.get("trace_ids", [])}
        except Exception as exc:
            if not isinstance(exc, InjectedFailure):
                try:
                    record(self.store, req, req.state, error=f"{type(exc).__name__}: {exc}")
                except Exception:  # noqa: BLE001
                    pass
            raise

    def _targets_sql(self) -> str:
        return TARGETS_SQL  # (Project, TraceId) pairs: statements below match both

    def _pin(self, req: Request) -> None:
        """Pinned first, so no archive run takes them back while (or right after) they are copied;
        each restored project's pin of the trace."""
        from tracelake.archiver.keep import pin

        until = datetime.fromisoformat(req.doc["pinned_until"].replace("Z", "+00:00"))
        for project, ids in targets_by_project(self.store, req.request_id).items():
            for tid in ids:
                pin(self.store, tid, until=until, actor=req.actor, reason="restored", projects=[project])

    def _copy(self, req: Request) -> None:
        rid, t = req.request_id, self._targets_sql()
        left = self.store.query_arrow(f"SELECT count() AS n FROM otel_traces WHERE (Project, TraceId) IN {t}",
                                      {"r": rid}).to_pylist()[0]["n"]
        if left:  # a copy a crash cut off (hidden from readers): start over
            self.store.execute(f"DELETE FROM otel_traces WHERE (Project, TraceId) IN {t}", {"r": rid})
        days = [date.fromisoformat(d) for d in req.doc.get("days", [])]
        p = {"r": rid, "days": ",".join(d.isoformat() for d in days)}
        day_cond = "Day IN (SELECT toDate(arrayJoin(splitByChar(',', {days:String}))))"
        self.store.execute(f"INSERT INTO otel_traces ({COPY_COLUMNS}) SELECT {COPY_COLUMNS} FROM otel_traces_archive "
                           f"WHERE {day_cond} AND (Project, TraceId) IN {t} SETTINGS insert_deduplicate = 0", p)
        fail_point("restore_after_insert")
        n = self.store.query_arrow(f"SELECT count() AS n FROM (SELECT DISTINCT TraceId, SpanId FROM otel_traces "
                                   f"WHERE (Project, TraceId) IN {t})", {"r": rid}).to_pylist()[0]["n"]
        req.doc["spans_restored"] = int(n)
        req.step("copied")
        record(self.store, req, "copied")
        fail_point("restore_after_copied")

    def _remove_archive_copy(self, req: Request) -> None:
        rid, t = req.request_id, self._targets_sql()
        from tracelake.archiver.service import _string_literal

        for table in ("trace_summary_archive", "archive_attachments"):
            if self.store.query_arrow(f"SELECT count() AS n FROM {table} WHERE (Project, TraceId) IN {t}",
                                      {"r": rid}).to_pylist()[0]["n"]:
                self.store.execute(f"DELETE FROM {table} WHERE (Project, TraceId) IN {t}", {"r": rid})
        by_project = {p: [check_trace_id(x) for x in ids] for p, ids in targets_by_project(self.store, rid).items()}
        days = [date.fromisoformat(d).isoformat() for d in req.doc.get("days", [])]
        if by_project and days and self.delta.exists():
            for i, day in enumerate(days):
                for project, ids in by_project.items():  # the project is a partition column of the table
                    for j in range(0, len(ids), IDS_PER_DELETE):
                        id_list = ", ".join(f"'{x}'" for x in ids[j:j + IDS_PER_DELETE])
                        self.delta.delete(f"Day = '{day}' AND Project = {_string_literal(project)} "
                                          f"AND TraceId IN ({id_list})")
                if i == 0:
                    fail_point("restore_mid_archive_delete")
            self.delta.vacuum()
        fail_point("restore_before_done")
        req.step("done")
        record(self.store, req, "done")


def restorer_for(store: Store, config: ArchiverConfig) -> Restorer:
    return Restorer(store, config.location)


def pin_duration(text: str | None, config: ArchiverConfig) -> timedelta:
    """How long restored traces stay pinned: ``text`` (30d), else the configured default."""
    try:
        duration = parse_duration(text or config.restore_pin_for, allow_forever=False)
    except ValueError as exc:
        raise RestoreError(f"pin_for: {exc}") from exc
    assert duration is not None
    return duration


def restore_audited(restorer: "Restorer", audit: Callable[..., None], *, trace_id: str | None,
                    filter_text: str | None, pin_for: timedelta, **caller: str) -> dict[str, Any]:
    """:meth:`Restorer.restore`, recorded in the audit log as refused (with the reason) or done
    (``audit(action, target, detail, outcome)``). Shared by the API and the CLI run on its own."""
    target = trace_id or filter_text or ""
    try:
        doc = restorer.restore(trace_id=trace_id, filter_text=filter_text, pin_for=pin_for, **caller)
    except RetentionError as exc:  # RestoreError, or Busy (a pass holds the archive)
        audit("restore", target, str(exc), "refused")
        raise
    audit("restore", target,
          f"{doc['request_id']}: {len(doc['trace_ids'])} traces, pinned until {doc.get('pinned_until')}")
    from tracelake.events import traces_changed

    traces_changed(doc["trace_ids"])  # read from the hot tier from now on
    return doc
