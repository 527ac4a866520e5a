"""HTTP endpoints for explain, pins and holds (JSON API, and the htmx partials of the trace and
Retention pages).

JSON:
* ``GET    /api/traces/{id}/retention``   -> :func:`tracelake.archiver.explain.explain` (404 unknown id)
* ``POST   /api/traces/{id}/pin``         body ``{"until": "30d" | ISO time | null, "reason": ""}``
* ``DELETE /api/traces/{id}/pin``, ``POST /api/traces/{id}/unpin``
* ``GET    /api/pins``
* ``GET    /api/holds``; ``POST /api/holds`` body ``{"name", "filter", "reason", "project"}`` (400 names
  what is wrong, 403 a project the caller may not make holds for, 409 a used name)
* ``DELETE /api/holds/{name}``, ``POST /api/holds/{name}/release`` (404 none the caller sees, 403 a
  global hold released by a project's key)

HTML partials (htmx): ``GET /traces/{id}/retention`` and ``POST /traces/{id}/pin|unpin`` (the trace
page's panel); ``GET /retention/keep``, ``POST /retention/holds`` and
``POST /retention/holds/{name}/release`` (the Retention page's pins and holds section).

Under auth (tracelake.auth.web) pinning needs the ``annotate`` permission (engineer and up), holds
``retention`` (ops and up). Holds are scoped by project (tracelake.archiver.keep): an admin (or no
auth) sees and makes every hold, global ones by default; a project's ops key makes and releases
its project's holds only, and sees global holds without their filter or reason. Every change is
audited with who made it; without auth the actor is "local". Trace ids are looked up through the
caller's store, so a trace outside the caller's projects is "not found".
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from tracelake.archiver import keep
from tracelake.archiver.api import json_response as _json
from tracelake.archiver.explain import Explanation, TraceNotFound, explain, when
from tracelake.query.filters import FilterError

router = APIRouter(tags=["retention"])

UNTIL_CHOICES = ("", "1d", "7d", "30d", "90d", "365d")  # the page's choices ("" = until unpinned)


def _caller(request: Request) -> tuple[str, str]:
    caller = (request.scope.get("state") or {}).get("caller")
    if caller is None:
        return "local", "local"
    return caller.actor, caller.role.value


def _viewer(request: Request) -> str:
    """The caller's project ('*' for admin, or without auth): which holds it sees and changes."""
    caller = (request.scope.get("state") or {}).get("caller")
    return caller.project if caller is not None else keep.ALL_PROJECTS


def _process_store(request: Request) -> Any:
    """The process's store (holds of every project are kept there; so is the audit log)."""
    store = request.app.state.store
    return getattr(store, "inner", store)


def _audit(request: Request, action: str, target: str, detail: str = "", outcome: str = "ok") -> None:
    from tracelake.auth import audit

    actor, role = _caller(request)
    registry = getattr(request.app.state, "auth_registry", None)
    store = registry.store if registry is not None else _process_store(request)
    audit.record(store, actor=actor, role=role, action=action, target=target, detail=detail,
                 remote=request.client.host if request.client else "", outcome=outcome)


def _policy(request: Request) -> Any:
    archiver = getattr(request.app.state, "archiver", None)
    return archiver.policy if archiver is not None else None


def parse_until(text: str | None, now: datetime | None = None) -> datetime | None:
    """'30d' (from now), an ISO time, or empty/None/'forever' (until unpinned). ValueError names the problem."""
    from tracelake.durations import parse_duration

    text = (text or "").strip()
    if not text or text.lower() in ("forever", "none", "never"):
        return None
    now = now or datetime.now(timezone.utc)
    try:
        d = parse_duration(text, allow_forever=False)
        assert d is not None
        if d.total_seconds() <= 0:
            raise ValueError("'until' must be a positive duration like 30d")
        return now + d
    except ValueError as exc:
        if "positive" in str(exc):
            raise
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"'until' is a duration like 30d or an ISO time like 2027-01-31T00:00:00Z, not {text[:60]!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


async def _body(request: Request) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        return {k: str(v) for k, v in form.items()}
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"the body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError("the body must be a JSON object")
    return doc


def _explain(request: Request, trace_id: str) -> Explanation:
    return explain(request.app.state.store, trace_id, _policy(request))


# --- explain ----------------------------------------------------------------------------------------
@router.get("/api/traces/{trace_id}/retention")
async def retention_of(request: Request, trace_id: str) -> Response:
    try:
        e = await run_in_threadpool(_explain, request, trace_id)
    except keep.KeepError as exc:
        return _json({"error": str(exc)}, 400)
    except TraceNotFound as exc:
        return _json({"error": str(exc)}, 404)
    return _json(e.to_dict())


# --- pins -------------------------------------------------------------------------------------------
def _do_pin(request: Request, trace_id: str, until: datetime | None, reason: str) -> keep.Pin:
    e = _explain(request, trace_id)  # TraceNotFound for an unknown id (or one the caller may not read)
    actor, _ = _caller(request)
    got = keep.pin(request.app.state.store, e.trace_id, until=until, actor=actor, reason=reason)
    _audit(request, "retention.pin", e.trace_id, f"until {got.until.isoformat() if got.until else 'unpinned'}"
                                                 + (f"; {reason}" if reason else ""))
    return got


def _do_unpin(request: Request, trace_id: str) -> bool:
    e = _explain(request, trace_id)
    actor, _ = _caller(request)
    done = keep.unpin(request.app.state.store, e.trace_id, actor=actor)
    if done:
        _audit(request, "retention.unpin", e.trace_id)
    return done


@router.post("/api/traces/{trace_id}/pin")
async def pin_trace(request: Request, trace_id: str) -> Response:
    try:
        body = await _body(request)
        until = parse_until(body.get("until"))
        pin = await run_in_threadpool(_do_pin, request, trace_id, until, str(body.get("reason") or ""))
    except (ValueError, keep.KeepError) as exc:
        return _json({"error": str(exc)}, 400)
    except TraceNotFound as exc:
        return _json({"error": str(exc)}, 404)
    return _json({"pin": pin.to_dict()})


@router.delete("/api/traces/{trace_id}/pin")
@router.post("/api/traces/{trace_id}/unpin")  # for clients that cannot send DELETE
async def unpin_trace(request: Request, trace_id: str) -> Response:
    try:
        done = await run_in_threadpool(_do_unpin, request, trace_id)
    except keep.KeepError as exc:
        return _json({"error": str(exc)}, 400)
    except TraceNotFound as exc:
        return _json({"error": str(exc)}, 404)
    return _json({"unpinned": done})


@router.get("/api/pins")
async def pins_list(request: Request, limit: int = 500) -> Response:
    pins = await run_in_threadpool(keep.list_pins, request.app.state.store, max(1, min(limit, 5000)))
    return _json({"pins": [p.to_dict() for p in pins]})


# --- holds ------------------------------------------------------------------------------------------
def _do_create_hold(request: Request, body: dict[str, Any]) -> keep.Hold:
    actor, _ = _caller(request)
    hold = keep.create_hold(_process_store(request), str(body.get("name") or ""), str(body.get("filter") or ""),
                            str(body.get("reason") or ""), actor=actor, project=str(body.get("project") or ""),
                            viewer=_viewer(request))
    _audit(request, "retention.hold.create", hold.name, keep.audit_detail(hold))
    return hold


def _do_release_hold(request: Request, name: str) -> keep.Hold | None:
    actor, _ = _caller(request)
    hold = keep.release_hold(_process_store(request), name, actor=actor, viewer=_viewer(request))
    if hold is not None:
        _audit(request, "retention.hold.release", name, keep.audit_detail(hold, full=False))
    return hold


def _hold_error(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, FilterError):
        return {"error": f"filter: {exc}", "field": "filter", "pos": exc.pos, "end": exc.end}
    return {"error": str(exc), "field": getattr(exc, "field", "reason")}


def _hold_status(exc: Exception) -> int:
    if isinstance(exc, keep.HoldForbidden):
        return 403
    return 409 if isinstance(exc, keep.HoldNameTaken) else 400


@router.get("/api/holds")
async def holds_list(request: Request) -> Response:
    holds = await run_in_threadpool(keep.list_holds, _process_store(request), _viewer(request))
    return _json({"holds": [h.to_dict() for h in holds]})


@router.post("/api/holds")
async def holds_create(request: Request) -> Response:
    try:
        body = await _body(request)
        hold = await run_in_threadpool(_do_create_hold, request, body)
    except (FilterError, keep.KeepError) as exc:
        return _json(_hold_error(exc), _hold_status(exc))
    except ValueError as exc:
        return _json({"error": str(exc)}, 400)
    return _json({"hold": hold.to_dict()}, 201)


@router.delete("/api/holds/{name}")
@router.post("/api/holds/{name}/release")  # for clients that cannot send DELETE
async def holds_release(request: Request, name: str) -> Response:
    try:
        hold = await run_in_threadpool(_do_release_hold, request, name)
    except keep.KeepError as exc:
        return _json({"error": str(exc)}, _hold_status(exc))
    if hold is None:
        return _json({"error": f"no active hold named {name[:120]!r}"}, 404)
    return _json({"released": name})


# --- HTML partials (htmx) ------------------------------------------------------------------------------
def _render(request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> Response:
    from tracelake.ui.render import templates

    return templates.TemplateResponse(request, name, {"request": request, **ctx}, status_code=status)


def _may(request: Request, perm: str) -> bool:
    """Whether the caller may (always without auth): the page hides buttons it would refuse."""
    caller = (request.scope.get("state") or {}).get("caller")
    if caller is None:
        return True
    from tracelake.auth.roles import Perm, has

    return has(caller.role, Perm(perm))


def _panel_ctx(request: Request, trace_id: str, error: str = "") -> dict[str, Any]:
    e = _explain(request, trace_id)
    return {"e": e, "when": when, "until_choices": UNTIL_CHOICES, "error": error, "can_pin": _may(request, "annotate")}


async def _panel(request: Request, trace_id: str, error: str = "", status: int = 200) -> Response:
    try:
        ctx = await run_in_threadpool(_panel_ctx, request, trace_id, error)
    except (keep.KeepError, TraceNotFound) as exc:
        return HTMLResponse(f'<section id="retention-panel" class="retention-panel"><p class="muted">'
                            f'{_esc(str(exc))}</p></section>', status_code=404)
    return _render(request, "_trace_retention.html", ctx, status)


def _esc(text: str) -> str:
    import html

    return html.escape(text, quote=True)


@router.get("/traces/{trace_id}/retention", include_in_schema=False)
async def panel(request: Request, trace_id: str) -> Response:
    return await _panel(request, trace_id)


@router.post("/traces/{trace_id}/pin", include_in_schema=False)
async def panel_pin(request: Request, trace_id: str) -> Response:
    form = await _body(request)
    try:
        until = parse_until(form.get("until"))
        await run_in_threadpool(_do_pin, request, trace_id, until, str(form.get("reason") or ""))
    except (ValueError, keep.KeepError) as exc:
        return await _panel(request, trace_id, str(exc))
    except TraceNotFound:
        pass  # the panel says so
    return await _panel(request, trace_id)


@router.post("/traces/{trace_id}/unpin", include_in_schema=False)
async def panel_unpin(request: Request, trace_id: str) -> Response:
    try:
        await run_in_threadpool(_do_unpin, request, trace_id)
    except (keep.KeepError, TraceNotFound):
        pass
    return await _panel(request, trace_id)


def _section_ctx(request: Request) -> dict[str, Any]:
    from tracelake.ui.queries.keep import keep_section

    return {"k": keep_section(request.app.state.store, _process_store(request), _viewer(request)), "when": when,
            "global_details": keep.GLOBAL_DETAILS}


async def _section(request: Request, form: dict[str, str] | None = None, error: dict[str, Any] | None = None,
                   status: int = 200) -> Response:
    ctx = await run_in_threadpool(_section_ctx, request)
    return _render(request, "_retention_keep.html", {**ctx, "form": form or {}, "form_error": error}, status)


@router.get("/retention/keep", include_in_schema=False)
async def section(request: Request) -> Response:
    return await _section(request)


@router.post("/retention/holds", include_in_schema=False)
async def section_create(request: Request) -> Response:
    form = {k: str(v) for k, v in (await _body(request)).items() if k in ("name", "filter", "reason", "project")}
    try:
        await run_in_threadpool(_do_create_hold, request, form)
    except (FilterError, keep.KeepError) as exc:
        # 200 so htmx swaps the section: the form comes back with the error in place and the input kept.
        return await _section(request, form, _hold_error(exc))
    return await _section(request)


@router.post("/retention/holds/{name}/release", include_in_schema=False)
async def section_release(request: Request, name: str) -> Response:
    try:
        await run_in_threadpool(_do_release_hold, request, name)
    except keep.KeepError:
        pass
    return await _section(request)
