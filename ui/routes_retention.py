"""The retention panels: htmx partials of the trace page (why the trace is where it is, pin,
restore) and of the Retention page's "Pins and holds" and "Erasure and restore" tabs.

Each calls the archiver's actions (:mod:`tracelake.archiver.api.keep`, ``.erase``) and shows a
refusal (:class:`~tracelake.archiver.errors.RetentionError`) in place, with the form kept, where
the JSON API answers with its status instead. The rules tab is :mod:`tracelake.ui.routes_rules`.
"""
from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from tracelake.archiver import keep
from tracelake.archiver.api import erase as erase_api
from tracelake.archiver.api import keep as keep_api
from tracelake.archiver.api.common import process_store, read_body, viewer
from tracelake.archiver.errors import RetentionError
from tracelake.archiver.explain import TraceNotFound, when
from tracelake.auth.roles import Perm
from tracelake.auth.routes import allows, needs
from tracelake.ui.queries.erase import erase_section
from tracelake.ui.queries.keep import keep_section
from tracelake.ui.render import templates

router = APIRouter(include_in_schema=False)

UNTIL_CHOICES = ("", "1d", "7d", "30d", "90d", "365d")  # a pin's choices ("" = until unpinned)
PIN_CHOICES = ("1d", "7d", "30d", "90d")  # how long a restore pins


def _render(request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> Response:
    return templates.TemplateResponse(request, name, {"request": request, **ctx}, status_code=status)


# --- the trace page's retention panel ---------------------------------------------------------------
def _panel_ctx(request: Request, trace_id: str, error: str = "") -> dict[str, Any]:
    e = keep_api.explain_trace(request, trace_id)
    return {"e": e, "when": when, "until_choices": UNTIL_CHOICES, "error": error,
            "can_pin": allows(request, Perm.ANNOTATE)}


async def _panel(request: Request, trace_id: str, error: str = "", status: int = 200) -> Response:
    try:
        ctx = await run_in_threadpool(_panel_ctx, request, trace_id, error)
    except RetentionError as exc:  # a malformed id, or none the caller can read
        return HTMLResponse(f'<section id="retention-panel" class="retention-panel"><p class="muted">'
                            f'{html.escape(str(exc), quote=True)}</p></section>', status_code=404)
    return _render(request, "_trace_retention.html", ctx, status)


@router.get("/traces/{trace_id}/retention", dependencies=[needs(Perm.READ)])
async def panel(request: Request, trace_id: str) -> Response:
    return await _panel(request, trace_id)


@router.post("/traces/{trace_id}/pin", dependencies=[needs(Perm.ANNOTATE)])
async def panel_pin(request: Request, trace_id: str) -> Response:
    form = await read_body(request)
    try:
        until = keep.parse_until(form.get("until"))
        await run_in_threadpool(keep_api.pin, request, trace_id, until, str(form.get("reason") or ""))
    except TraceNotFound:
        pass  # the panel says so
    except RetentionError as exc:
        return await _panel(request, trace_id, str(exc))
    return await _panel(request, trace_id)


@router.post("/traces/{trace_id}/unpin", dependencies=[needs(Perm.ANNOTATE)])
async def panel_unpin(request: Request, trace_id: str) -> Response:
    try:
        await run_in_threadpool(keep_api.unpin, request, trace_id)
    except RetentionError:
        pass  # the panel shows the trace as it is
    return await _panel(request, trace_id)


@router.post("/traces/{trace_id}/restore", dependencies=[needs(Perm.RETENTION)])
async def panel_restore(request: Request, trace_id: str) -> Response:
    body = await read_body(request)
    try:
        doc = await run_in_threadpool(erase_api.restore, request, trace_id, None, body.get("pin_for"))
    except RetentionError as exc:
        return _render(request, "_trace_restore.html", {"trace_id": trace_id, "error": str(exc),
                                                        "pin_choices": PIN_CHOICES, "archived": True})
    return _render(request, "_trace_restore.html", {"trace_id": trace_id, "restored": doc,
                                                    "pin_choices": PIN_CHOICES, "archived": False})


# --- the Retention page: pins and holds ----------------------------------------------------------------
async def _keep_tab(request: Request, form: dict[str, str] | None = None, error: dict[str, Any] | None = None,
                    status: int = 200) -> Response:
    k = await run_in_threadpool(keep_section, request.app.state.store, process_store(request), viewer(request))
    return _render(request, "_retention_keep.html", {"k": k, "when": when, "global_details": keep.GLOBAL_DETAILS,
                                                     "form": form or {}, "form_error": error}, status)


@router.get("/retention/keep", dependencies=[needs(Perm.RETENTION)])
async def keep_tab(request: Request) -> Response:
    return await _keep_tab(request)


@router.post("/retention/holds", dependencies=[needs(Perm.RETENTION)])
async def keep_tab_create(request: Request) -> Response:
    form = {k: str(v) for k, v in (await read_body(request)).items() if k in ("name", "filter", "reason", "project")}
    try:
        await run_in_threadpool(keep_api.create_hold, request, form)
    except RetentionError as exc:
        # 200 so htmx swaps the section: the form comes back with the error in place and the input kept.
        return await _keep_tab(request, form, exc.to_dict())
    return await _keep_tab(request)


@router.post("/retention/holds/{name}/release", dependencies=[needs(Perm.RETENTION)])
async def keep_tab_release(request: Request, name: str) -> Response:
    try:
        await run_in_threadpool(keep_api.release_hold, request, name)
    except RetentionError:
        pass  # the section shows the holds as they are
    return await _keep_tab(request)


# --- the Retention page: erasure and restore -------------------------------------------------------------
async def _erase_tab(request: Request, form: dict[str, str] | None = None, result: dict[str, Any] | None = None,
                     error: str = "", restored: dict[str, Any] | None = None, restore_error: str = "") -> Response:
    e = await run_in_threadpool(erase_section, process_store(request), project=viewer(request))
    return _render(request, "_retention_erase.html", {"e": e, "form": form or {}, "result": result,
                                                      "form_error": error, "pin_choices": PIN_CHOICES,
                                                      "restored": restored, "restore_error": restore_error})


@router.get("/retention/erase", dependencies=[needs(Perm.RETENTION)])
async def erase_tab(request: Request) -> Response:
    return await _erase_tab(request)


@router.post("/retention/erase", dependencies=[needs(Perm.RETENTION)])
async def erase_tab_erase(request: Request) -> Response:
    body = await read_body(request)
    form = {k: str(v) for k, v in body.items() if k in ("user", "session", "filter", "dry_run")}
    criteria, dry = erase_api.criteria_of(form)
    try:
        doc = await run_in_threadpool(erase_api.erase, request, criteria, dry)
    except RetentionError as exc:
        return await _erase_tab(request, form, None, str(exc))  # 200: htmx swaps the section with the error
    return await _erase_tab(request, {} if not dry else form, doc)


@router.post("/retention/restore", dependencies=[needs(Perm.RETENTION)])
async def erase_tab_restore(request: Request) -> Response:
    body = await read_body(request)
    text = str(body.get("filter") or "")
    try:
        doc = await run_in_threadpool(erase_api.restore, request, None, text, body.get("pin_for"))
    except RetentionError as exc:
        return await _erase_tab(request, {"restore_filter": text}, restore_error=str(exc))
    return await _erase_tab(request, restored=doc)
