"""Explain, pins and holds: the JSON API, and the actions the UI's retention panels call too.

* ``GET    /api/traces/{id}/retention``   -> :func:`tracelake.archiver.explain.explain` (404 unknown id)
* ``POST   /api/traces/{id}/pin``         body ``{"until": "30d" | ISO time | null, "reason": ""}``
* ``DELETE /api/traces/{id}/pin``, ``POST /api/traces/{id}/unpin``
* ``GET    /api/pins``
* ``GET    /api/holds``; ``POST /api/holds`` body ``{"name", "filter", "reason", "project"}`` (400 names
  what is wrong and the field, 403 a project the caller may not make holds for, 409 a used name)
* ``DELETE /api/holds/{name}``, ``POST /api/holds/{name}/release`` (404 none the caller sees, 403 a
  global hold released by a project's key)

Pinning needs the ``annotate`` permission (engineer and up), holds ``retention`` (ops and up).
Holds are scoped by project (tracelake.archiver.keep): an admin (or no auth) sees and makes every
hold, global ones by default; a project's ops key makes and releases its project's holds only, and
sees global holds without their filter or reason. Every change is audited with who made it;
without auth the actor is "local". Trace ids are looked up through the caller's store, so a trace
outside the caller's projects is "not found".
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from tracelake.archiver import keep
from tracelake.archiver.api.common import audit, caller_of, json_response, process_store, read_body, viewer
from tracelake.archiver.errors import NotFound
from tracelake.archiver.explain import Explanation, explain
from tracelake.auth.roles import Perm
from tracelake.auth.routes import needs

router = APIRouter(tags=["retention"])


def _policy(request: Request) -> Any:
    archiver = getattr(request.app.state, "archiver", None)
    return archiver.policy if archiver is not None else None


# --- actions (the JSON API and the UI's panels) ---------------------------------------------------
def explain_trace(request: Request, trace_id: str) -> Explanation:
    """Why the trace is where it is (TraceNotFound for an id the caller cannot read)."""
    return explain(request.app.state.store, trace_id, _policy(request))


def pin(request: Request, trace_id: str, until: datetime | None, reason: str) -> keep.Pin:
    e = explain_trace(request, trace_id)  # TraceNotFound for an unknown id (or one the caller may not read)
    actor, _ = caller_of(request)
    got = keep.pin(request.app.state.store, e.trace_id, until=until, actor=actor, reason=reason)
    audit(request, "retention.pin", e.trace_id, f"until {got.until.isoformat() if got.until else 'unpinned'}"
                                                + (f"; {reason}" if reason else ""))
    return got


def unpin(request: Request, trace_id: str) -> bool:
    e = explain_trace(request, trace_id)
    actor, _ = caller_of(request)
    done = keep.unpin(request.app.state.store, e.trace_id, actor=actor)
    if done:
        audit(request, "retention.unpin", e.trace_id)
    return done


def create_hold(request: Request, body: dict[str, Any]) -> keep.Hold:
    actor, _ = caller_of(request)
    hold = keep.create_hold(process_store(request), str(body.get("name") or ""), str(body.get("filter") or ""),
                            str(body.get("reason") or ""), actor=actor, project=str(body.get("project") or ""),
                            viewer=viewer(request))
    audit(request, "retention.hold.create", hold.name, keep.audit_detail(hold))
    return hold


def release_hold(request: Request, name: str) -> keep.Hold | None:
    actor, _ = caller_of(request)
    hold = keep.release_hold(process_store(request), name, actor=actor, viewer=viewer(request))
    if hold is not None:
        audit(request, "retention.hold.release", name, keep.audit_detail(hold, full=False))
    return hold


# --- explain ----------------------------------------------------------------------------------------
@router.get("/api/traces/{trace_id}/retention", dependencies=[needs(Perm.READ)])
async def retention_of(request: Request, trace_id: str) -> Response:
    e = await run_in_threadpool(explain_trace, request, trace_id)
    return json_response(e.to_dict())


# --- pins -------------------------------------------------------------------------------------------
@router.post("/api/traces/{trace_id}/pin", dependencies=[needs(Perm.ANNOTATE)])
async def pin_trace(request: Request, trace_id: str) -> Response:
    body = await read_body(request)
    until = keep.parse_until(body.get("until"))
    got = await run_in_threadpool(pin, request, trace_id, until, str(body.get("reason") or ""))
    return json_response({"pin": got.to_dict()})


@router.delete("/api/traces/{trace_id}/pin", dependencies=[needs(Perm.ANNOTATE)])
@router.post("/api/traces/{trace_id}/unpin", dependencies=[needs(Perm.ANNOTATE)])  # for clients that cannot send DELETE
async def unpin_trace(request: Request, trace_id: str) -> Response:
    done = await run_in_threadpool(unpin, request, trace_id)
    return json_response({"unpinned": done})


@router.get("/api/pins", dependencies=[needs(Perm.READ)])
async def pins_list(request: Request, limit: int = 500) -> Response:
    pins = await run_in_threadpool(keep.list_pins, request.app.state.store, max(1, min(limit, 5000)))
    return json_response({"pins": [p.to_dict() for p in pins]})


# --- holds ------------------------------------------------------------------------------------------
@router.get("/api/holds", dependencies=[needs(Perm.RETENTION)])
async def holds_list(request: Request) -> Response:
    holds = await run_in_threadpool(keep.list_holds, process_store(request), viewer(request))
    return json_response({"holds": [h.to_dict() for h in holds]})


@router.post("/api/holds", dependencies=[needs(Perm.RETENTION)])
async def holds_create(request: Request) -> Response:
    body = await read_body(request)
    hold = await run_in_threadpool(create_hold, request, body)
    return json_response({"hold": hold.to_dict()}, 201)


@router.delete("/api/holds/{name}", dependencies=[needs(Perm.RETENTION)])
@router.post("/api/holds/{name}/release", dependencies=[needs(Perm.RETENTION)])  # for clients that cannot send DELETE
async def holds_release(request: Request, name: str) -> Response:
    hold = await run_in_threadpool(release_hold, request, name)
    if hold is None:
        raise NotFound(f"no active hold named {name[:120]!r}")
    return json_response({"released": name})
