"""Keys, audit log and "who am I" endpoints (behind the guard, which checked the role already).

``ops`` keys manage keys of their own project only, up to ``ops``; ``admin`` anything. Every
change is written to the audit log. Secrets are in the create response only.
"""
from __future__ import annotations

import html
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from tracelake.auth import audit
from tracelake.auth.keys import KeyRegistry
from tracelake.auth.roles import ALL_PROJECTS, GRANTABLE, Perm, Role, parse_role, valid_project
from tracelake.auth.routes import SIGNED_IN, needs

router = APIRouter(tags=["access"])


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content, default=str), status_code=status, media_type="application/json")


def _error(message: str, status: int) -> Response:
    return _json({"error": {"message": message}}, status)


def _ctx(request: Request) -> tuple[Any, KeyRegistry]:
    state = request.app.state
    return state.caller, state.auth_registry


def _remote(request: Request) -> str:
    return request.client.host if request.client else ""


@router.get("/api/whoami", summary="The caller: key id, role, project; the CSRF token for sessions",
            dependencies=[needs(SIGNED_IN)])
def whoami(request: Request) -> Response:
    caller, _ = _ctx(request)
    signer = request.app.state.auth_signer
    doc = caller.as_json()
    if caller.nonce:  # session and proxy callers: ambient credentials, changes need the token
        doc["csrf_token"] = signer.csrf_token(caller.nonce)
    return _json(doc)


@router.get("/api/keys", summary="Keys (never their secrets): all for admin, the project's for ops",
            dependencies=[needs(Perm.KEYS)])
async def list_keys(request: Request) -> Response:
    caller, registry = _ctx(request)
    project = None if caller.role is Role.ADMIN else caller.project
    records = await run_in_threadpool(registry.list, project)
    return _json({"keys": [r.as_json() for r in records]})


@router.post("/api/keys", summary="Create a key: {project, role, name}; the key is in this answer only",
             dependencies=[needs(Perm.KEYS)])
async def create_key(request: Request) -> Response:
    caller, registry = _ctx(request)
    try:
        doc = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        return _error("body must be JSON: {\"project\": ..., \"role\": ..., \"name\": ...}", 400)
    if not isinstance(doc, dict):
        return _error("body must be a JSON object", 400)
    try:
        role = parse_role(str(doc.get("role", "")))
    except ValueError as exc:
        return _error(str(exc), 400)
    project = ALL_PROJECTS if role is Role.ADMIN else str(doc.get("project", "")).strip()
    if role is not Role.ADMIN and not valid_project(project):
        return _error("project must be 1-63 characters: letters, digits, '_', '.', '-' (starting with a letter or digit)", 400)
    name = str(doc.get("name") or f"{role.value} for {project}")[:200]
    if role not in GRANTABLE.get(caller.role, frozenset()):
        return _error(f"role {caller.role.value} may not create {role.value} keys", 403)
    if caller.role is not Role.ADMIN and project != caller.project:
        return _error(f"role {caller.role.value} may create keys for project {caller.project} only", 403)
    record, key = await run_in_threadpool(registry.create, project, role, name, caller.actor)
    await run_in_threadpool(audit.record, registry.store, actor=caller.actor, role=caller.role.value,
                            action="key.create", project=project, target=record.key_id,
                            detail=f"role={role.value} name={name}", remote=_remote(request))
    return _json({**record.as_json(), "key": key}, 201)


@router.delete("/api/keys/{kid}", summary="Revoke a key (effective at once in this process)",
               dependencies=[needs(Perm.KEYS)])
@router.post("/api/keys/{kid}/revoke", include_in_schema=False, dependencies=[needs(Perm.KEYS)])
async def revoke_key(request: Request, kid: str) -> Response:
    caller, registry = _ctx(request)
    if not (len(kid) == 12 and kid.isalnum()):
        return _error("no such key", 404)
    record = await run_in_threadpool(registry.lookup, kid)
    if record is None or (caller.role is not Role.ADMIN and (record.project != caller.project
                                                               or record.role is Role.ADMIN)):
        return _error("no such key", 404)  # other projects' keys are not even confirmed to exist
    revoked = await run_in_threadpool(registry.revoke, kid, caller.actor)
    await run_in_threadpool(audit.record, registry.store, actor=caller.actor, role=caller.role.value,
                            action="key.revoke", project=record.project, target=kid, remote=_remote(request))
    return _json(revoked.as_json() if revoked else {})


@router.get("/api/audit", summary="The audit log, newest first (admin)", dependencies=[needs(Perm.AUDIT)])
async def audit_api(request: Request, limit: int = 200, action: str = "") -> Response:
    _, registry = _ctx(request)
    rows = await run_in_threadpool(audit.recent, registry.store, limit, action[:64])
    return _json({"entries": rows})


@router.get("/audit", response_class=HTMLResponse, include_in_schema=False, dependencies=[needs(Perm.AUDIT)])
async def audit_page(request: Request, action: str = "") -> Response:
    _, registry = _ctx(request)
    rows = await run_in_threadpool(audit.recent, registry.store, 500, action[:64])
    e = html.escape
    cols = ("time", "actor", "role", "action", "project", "target", "detail", "remote", "outcome")
    body = "".join("<tr>" + "".join(f"<td>{e(str(r[c]))}</td>" for c in cols) + "</tr>" for r in rows)
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Audit log · tracelake</title>
<link rel="stylesheet" href="/ui/static/app.css"></head><body><header class="top"><a class="brand" href="/traces">tracelake</a>
<nav><a href="/traces">Traces</a> <a href="/audit" aria-current="page">Audit log</a></nav></header>
<main id="content"><h1>Audit log</h1><table class="audit"><thead><tr>{''.join(f'<th>{c}</th>' for c in cols)}</tr></thead>
<tbody>{body}</tbody></table></main></body></html>"""
    return HTMLResponse(page, headers={"Content-Security-Policy": "default-src 'none'; style-src 'self'; frame-ancestors 'none'",
                                       "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})
