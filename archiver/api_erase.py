"""HTTP endpoints for erasure and restore (JSON API and the htmx partials of the Retention and
trace pages).

JSON:
* ``POST /api/erase``          body ``{"user", "session", "filter", "dry_run"}`` -> the receipt
  (400 bad filter, 404 nothing matched, 409 under a legal hold or an archive run in progress)
* ``GET  /api/erasure``        -> receipts, newest first
* ``GET  /api/erasure/{id}``   -> one receipt (``?download=1``: as an attachment file)
* ``POST /api/traces/{id}/restore`` body ``{"pin_for": "7d"}``; ``POST /api/restore`` body
  ``{"filter", "pin_for"}`` -> the restore (404 not archived)

HTML partials: ``GET /retention/erase``, ``POST /retention/erase`` and ``POST /retention/restore``
(the Retention page's section), ``POST /traces/{id}/restore`` (the trace page's Restore button).

Under auth: erasure needs ``retention`` (ops and up), restore too; matching goes through the
caller's project-scoped store, so a project's ops key erases and restores only its project's
traces. Every request is audited (after it finished, or as refused).
"""
from __future__ import annotations

import re
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from tracelake.archiver import receipts
from tracelake.archiver.api import json_response as _json
from tracelake.archiver.api_keep import _audit, _body, _caller, _process_store, _render
from tracelake.archiver.api_keep import _viewer as _project  # receipts and holds are shown per project
from tracelake.archiver.erase import Criteria, Eraser, erase_audited, eraser_from_settings
from tracelake.archiver.restore import RestoreError, Restorer, restore_audited, restorer_from_settings

router = APIRouter(tags=["erasure"])
PIN_CHOICES = ("1d", "7d", "30d", "90d")


def _spool_probe(request: Request) -> Any:
    """The collector's spool in this process (spool ack mode), or None (the receipt says so)."""
    spooled = getattr(getattr(request.app.state, "collector", None), "spooled", None)
    spool = getattr(spooled, "spool", None)
    return spool.unloaded_segments if spool is not None else None


def _eraser(request: Request) -> Eraser:
    from tracelake.archiver.connection import own_connection

    store = own_connection(_process_store(request))
    eraser = eraser_from_settings(store, request.app.state.settings, _spool_probe(request))
    eraser.match_store = request.app.state.store
    return eraser


def _release(obj: Any) -> None:
    from tracelake.archiver.connection import release

    release(obj.store)


def _criteria(body: dict[str, Any]) -> tuple[Criteria, bool]:
    def text(name: str) -> str | None:
        v = body.get(name)
        return str(v) if v not in (None, "") else None

    dry = body.get("dry_run") in (True, "1", "true", "on", "yes")
    return Criteria(text("user"), text("session"), text("filter")), dry


def _do_erase(request: Request, criteria: Criteria, dry_run: bool) -> dict[str, Any]:
    actor, role = _caller(request)
    eraser = _eraser(request)
    try:
        return erase_audited(eraser, criteria, partial(_audit, request), dry_run=dry_run, actor=actor, role=role,
                             project=_project(request))
    finally:
        _release(eraser)


@router.post("/api/erase")
async def erase(request: Request) -> Response:
    try:
        criteria, dry = _criteria(await _body(request))
        doc = await run_in_threadpool(_do_erase, request, criteria, dry)
    except ValueError as exc:
        status = getattr(exc, "status", 400)
        return _json({"error": str(exc), **getattr(exc, "detail", {})}, status)
    return _json(doc)


@router.get("/api/erasure")
async def erasure_list(request: Request, limit: int = 100) -> Response:
    rows = await run_in_threadpool(receipts.list_receipts, _process_store(request), limit, _project(request))
    return _json({"receipts": rows})


_RID = re.compile(r"^erase-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$")


@router.get("/api/erasure/{request_id}")
async def erasure_receipt(request: Request, request_id: str, download: int = 0) -> Response:
    if not _RID.match(request_id):
        return _json({"error": f"not an erasure id: {request_id[:80]!r}"}, 400)
    doc = await run_in_threadpool(receipts.get_receipt, _process_store(request), request_id)
    if doc is not None and _project(request) not in ("*", doc.get("request", {}).get("project", "*")):
        return _json({"error": f"no erasure {request_id}"}, 404)  # another project's: as if there were none
    if doc is None:
        req = await run_in_threadpool(receipts.get, _process_store(request), request_id)
        if req is None:
            return _json({"error": f"no erasure {request_id}"}, 404)
        return _json({"error": f"erasure {request_id} is not finished (state {req.state}); it completes at the "
                               f"next erasure call", "state": req.state}, 409)
    headers = {"Content-Disposition": f'attachment; filename="{request_id}.json"'} if download else None
    return _json(doc, headers=headers)


# --- restore ------------------------------------------------------------------------------------
def _restorer(request: Request) -> Restorer:
    from tracelake.archiver.connection import own_connection

    r = restorer_from_settings(own_connection(_process_store(request)), request.app.state.settings)
    r.match_store = request.app.state.store
    return r


def _do_restore(request: Request, trace_id: str | None, filter_text: str | None, pin_for: str | None) -> dict[str, Any]:
    from tracelake.durations import parse_duration

    actor, role = _caller(request)
    try:
        duration = parse_duration(pin_for or request.app.state.settings.restore_pin_for, allow_forever=False)
    except ValueError as exc:
        raise RestoreError(f"pin_for: {exc}") from exc
    restorer = _restorer(request)
    try:
        return restore_audited(restorer, partial(_audit, request), trace_id=trace_id, filter_text=filter_text,
                               pin_for=duration, actor=actor, role=role)
    finally:
        _release(restorer)


async def _restore_json(request: Request, trace_id: str | None) -> Response:
    try:
        body = await _body(request)
        doc = await run_in_threadpool(_do_restore, request, trace_id, body.get("filter") if trace_id is None else None,
                                      body.get("pin_for"))
    except ValueError as exc:
        return _json({"error": str(exc)}, getattr(exc, "status", 400))
    return _json(doc)


@router.post("/api/traces/{trace_id}/restore")
async def restore_trace(request: Request, trace_id: str) -> Response:
    return await _restore_json(request, trace_id)


@router.post("/api/restore")
async def restore_filter(request: Request) -> Response:
    return await _restore_json(request, None)


# --- HTML partials --------------------------------------------------------------------------------
def _section_ctx(request: Request) -> dict[str, Any]:
    from tracelake.ui.queries.erase import erase_section

    return {"e": erase_section(_process_store(request), project=_project(request))}


async def _section(request: Request, form: dict[str, str] | None = None, result: dict[str, Any] | None = None,
                   error: str = "", restored: dict[str, Any] | None = None, restore_error: str = "") -> Response:
    ctx = await run_in_threadpool(_section_ctx, request)
    return _render(request, "_retention_erase.html", {**ctx, "form": form or {}, "result": result,
                                                      "form_error": error, "pin_choices": PIN_CHOICES,
                                                      "restored": restored, "restore_error": restore_error})


@router.get("/retention/erase", include_in_schema=False)
async def section(request: Request) -> Response:
    return await _section(request)


@router.post("/retention/erase", include_in_schema=False)
async def section_erase(request: Request) -> Response:
    body = await _body(request)
    form = {k: str(v) for k, v in body.items() if k in ("user", "session", "filter", "dry_run")}
    criteria, dry = _criteria(form)
    try:
        doc = await run_in_threadpool(_do_erase, request, criteria, dry)
    except ValueError as exc:
        return await _section(request, form, None, str(exc))  # 200: htmx swaps the section with the error
    return await _section(request, {} if not dry else form, doc)


@router.post("/retention/restore", include_in_schema=False)
async def section_restore(request: Request) -> Response:
    body = await _body(request)
    text = str(body.get("filter") or "")
    try:
        doc = await run_in_threadpool(_do_restore, request, None, text, body.get("pin_for"))
    except ValueError as exc:
        return await _section(request, {"restore_filter": text}, restore_error=str(exc))
    return await _section(request, restored=doc)


@router.post("/traces/{trace_id}/restore", include_in_schema=False)
async def panel_restore(request: Request, trace_id: str) -> Response:
    body = await _body(request)
    try:
        doc = await run_in_threadpool(_do_restore, request, trace_id, None, body.get("pin_for"))
    except ValueError as exc:
        return _render(request, "_trace_restore.html", {"trace_id": trace_id, "error": str(exc),
                                                        "pin_choices": PIN_CHOICES, "archived": True})
    return _render(request, "_trace_restore.html", {"trace_id": trace_id, "restored": doc,
                                                    "pin_choices": PIN_CHOICES, "archived": False})
