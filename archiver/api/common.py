"""What every endpoint of the archiver's JSON API shares, and the UI's retention pages too.

* :func:`error_response`: the one handler of :class:`~tracelake.archiver.errors.RetentionError`
  (installed with the archiver's routes): ``{"error": message, **detail}`` with the error's status;
* reading a request: :func:`read_body` (JSON object or form), :func:`caller_of`, :func:`viewer`;
* the stores: :func:`process_store` (every project's, for holds, receipts, rule versions and the
  audit log) beside ``request.app.state.store`` (the caller's, project-scoped under auth);
* :func:`audit`: one audit-log row for a change, naming the caller ("local" without auth).
"""
from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from tracelake.archiver.config import ArchiverConfig
from tracelake.archiver.errors import BadRequest, RetentionError
from tracelake.auth.roles import ALL_PROJECTS


def json_response(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON answer of every archiver endpoint (orjson; datetimes and the like as strings)."""
    return Response(orjson.dumps(content, default=str), status_code=status_code, media_type="application/json",
                    headers=headers)


async def error_response(request: Request, exc: Exception) -> Response:
    """The exception handler for :class:`RetentionError` (and its subclasses): mapped here only."""
    assert isinstance(exc, RetentionError)
    return json_response(exc.to_dict(), exc.status)


def signed_in(request: Request) -> Any:
    """The caller (:class:`tracelake.auth.web.Caller`), or None when auth is off."""
    return (request.scope.get("state") or {}).get("caller")


def caller_of(request: Request) -> tuple[str, str]:
    """(actor, role): the caller's key id and role; "local" when auth is off."""
    caller = signed_in(request)
    return (caller.actor, caller.role.value) if caller is not None else ("local", "local")


def viewer(request: Request) -> str:
    """The caller's project ('*' for admin, or without auth): which holds and receipts it sees."""
    caller = signed_in(request)
    return caller.project if caller is not None else ALL_PROJECTS


def process_store(request: Request) -> Any:
    """The process's store (a caller's scoped store hides holds of other projects, receipts, rule
    versions and the audit log; plans count every project, as the Retention page does)."""
    store = request.app.state.store
    return getattr(store, "inner", store)


def base_state(request: Request) -> Any:
    """``app.state`` itself (under auth, request.app.state is a per-request view: setting the
    archiver on it would not last)."""
    state = request.app.state
    return getattr(state, "_base", state)


def config(request: Request) -> ArchiverConfig:
    """The archiver's configuration (built once, when the routes were installed)."""
    return request.app.state.archiver_config


def audit(request: Request, action: str, target: str, detail: str = "", outcome: str = "ok") -> None:
    """Record a change in the audit log, with who made it ("local" without auth)."""
    from tracelake.auth import audit as audit_log

    actor, role = caller_of(request)
    registry = getattr(request.app.state, "auth_registry", None)
    store = registry.store if registry is not None else process_store(request)
    audit_log.record(store, actor=actor, role=role, action=action, target=target, detail=detail,
                     remote=request.client.host if request.client else "", outcome=outcome)


async def read_body(request: Request) -> dict[str, Any]:
    """A form's fields, or a JSON object (an empty body: {}); :class:`BadRequest` otherwise."""
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
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest("the body must be a JSON object")
    return doc


def spool_probe(request: Request) -> Any:
    """The collector's spool in this process (spool ack mode), or None (the receipt says so)."""
    spooled = getattr(getattr(request.app.state, "collector", None), "spooled", None)
    spool = getattr(spooled, "spool", None)
    return spool.unloaded_segments if spool is not None else None


__all__ = ["audit", "base_state", "caller_of", "config", "error_response", "json_response", "process_store",
           "read_body", "signed_in", "spool_probe", "viewer"]
