"""Erasure and restore: the JSON API, and the actions the UI's retention panels call too.

* ``POST /api/erase``          body ``{"user", "session", "filter", "dry_run"}`` -> the receipt
  (400 bad filter, 404 nothing matched, 409 under a legal hold or an archive run in progress)
* ``GET  /api/erasure``        -> receipts, newest first
* ``GET  /api/erasure/{id}``   -> one receipt (``?download=1``: as an attachment file)
* ``POST /api/traces/{id}/restore`` body ``{"pin_for": "7d"}``; ``POST /api/restore`` body
  ``{"filter", "pin_for"}`` -> the restore (404 not archived)

Erasure and restore need ``retention`` (ops and up); matching goes through the caller's
project-scoped store, so a project's ops key erases and restores only its project's traces.
Every request is audited (after it finished, or as refused).
"""
from __future__ import annotations

import re
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from tracelake.archiver import receipts
from tracelake.archiver.api.common import (audit, caller_of, config, json_response, process_store, read_body,
                                                spool_probe, viewer)
from tracelake.archiver.connection import own_connection, release
from tracelake.archiver.erase import Criteria, erase_audited, eraser_for
from tracelake.archiver.errors import BadRequest, Conflict, NotFound
from tracelake.archiver.restore import pin_duration, restore_audited, restorer_for
from tracelake.auth.roles import Perm
from tracelake.auth.routes import needs

router = APIRouter(tags=["erasure"])
_RID = re.compile(r"^erase-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$")


# --- actions (the JSON API and the UI's panels) ---------------------------------------------------
def criteria_of(body: dict[str, Any]) -> tuple[Criteria, bool]:
    """The erasure's criteria and whether it is a dry run, from a JSON body or a form."""
    def text(name: str) -> str | None:
        v = body.get(name)
        return str(v) if v not in (None, "") else None

    dry = body.get("dry_run") in (True, "1", "true", "on", "yes")
    return Criteria(text("user"), text("session"), text("filter")), dry


def erase(request: Request, criteria: Criteria, dry_run: bool) -> dict[str, Any]:
    """Erase (or, dry, match) as the caller: the receipt; refusals are audited and raised."""
    actor, role = caller_of(request)
    store = own_connection(process_store(request))  # deletes and receipts: every project's store
    try:
        eraser = eraser_for(store, config(request), spool_probe(request))
        eraser.match_store = request.app.state.store  # matching: the caller's projects only
        return erase_audited(eraser, criteria, partial(audit, request), dry_run=dry_run, actor=actor, role=role,
                             project=viewer(request))
    finally:
        release(store)


def restore(request: Request, trace_id: str | None, filter_text: str | None, pin_for: str | None) -> dict[str, Any]:
    """Restore one archived trace or what a filter matches, as the caller, pinned for ``pin_for``."""
    actor, role = caller_of(request)
    duration = pin_duration(pin_for, config(request))
    store = own_connection(process_store(request))
    try:
        restorer = restorer_for(store, config(request))
        restorer.match_store = request.app.state.store
        return restore_audited(restorer, partial(audit, request), trace_id=trace_id, filter_text=filter_text,
                               pin_for=duration, actor=actor, role=role)
    finally:
        release(store)


# --- erasure ----------------------------------------------------------------------------------------
@router.post("/api/erase", dependencies=[needs(Perm.RETENTION)])
async def erase_json(request: Request) -> Response:
    criteria, dry = criteria_of(await read_body(request))
    return json_response(await run_in_threadpool(erase, request, criteria, dry))


@router.get("/api/erasure", dependencies=[needs(Perm.RETENTION)])
async def erasure_list(request: Request, limit: int = 100) -> Response:
    rows = await run_in_threadpool(receipts.list_receipts, process_store(request), limit, viewer(request))
    return json_response({"receipts": rows})


@router.get("/api/erasure/{request_id}", dependencies=[needs(Perm.RETENTION)])  # receipts name who was erased
async def erasure_receipt(request: Request, request_id: str, download: int = 0) -> Response:
    if not _RID.match(request_id):
        raise BadRequest(f"not an erasure id: {request_id[:80]!r}")
    doc = await run_in_threadpool(receipts.get_receipt, process_store(request), request_id)
    if doc is not None and viewer(request) not in ("*", doc.get("request", {}).get("project", "*")):
        raise NotFound(f"no erasure {request_id}")  # another project's: as if there were none
    if doc is None:
        req = await run_in_threadpool(receipts.get, process_store(request), request_id)
        if req is None:
            raise NotFound(f"no erasure {request_id}")
        raise Conflict(f"erasure {request_id} is not finished (state {req.state}); it completes at the next "
                       "erasure call", detail={"state": req.state})
    headers = {"Content-Disposition": f'attachment; filename="{request_id}.json"'} if download else None
    return json_response(doc, headers=headers)


# --- restore ------------------------------------------------------------------------------------
@router.post("/api/traces/{trace_id}/restore", dependencies=[needs(Perm.RETENTION)])
async def restore_trace(request: Request, trace_id: str) -> Response:
    body = await read_body(request)
    return json_response(await run_in_threadpool(restore, request, trace_id, None, body.get("pin_for")))


@router.post("/api/restore", dependencies=[needs(Perm.RETENTION)])
async def restore_filter(request: Request) -> Response:
    body = await read_body(request)
    return json_response(await run_in_threadpool(restore, request, None, body.get("filter"), body.get("pin_for")))
