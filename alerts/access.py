"""Who is asking and what they may see: shared by the JSON API and the Alerts page.

The alert tables are private to project-scoped stores (/api/sql reads them as empty), so the
endpoints read them through the process's store and keep to the caller's projects here: a caller
of one project sees that project's rules, states, history, deliveries, silences and destinations;
an admin (or anyone without auth) sees all of them.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from tracelake.alerts.config import AlertsConfig
from tracelake.alerts.errors import AlertError, BadRequest, Forbidden
from tracelake.alerts.model import Rule, RuleSet


def now() -> datetime:
    return datetime.now(timezone.utc)


def json_response(content: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content, default=str), status_code=status_code, media_type="application/json")


async def error_response(request: Request, exc: Exception) -> Response:
    """The one handler of :class:`AlertError`: its status and ``{"error", ...}``."""
    assert isinstance(exc, AlertError)
    return json_response(exc.to_dict(), exc.status)


def caller(request: Request) -> Any:
    return (request.scope.get("state") or {}).get("caller")


def actor(request: Request) -> tuple[str, str]:
    c = caller(request)
    return (c.actor, c.role.value) if c is not None else ("local", "local")


def projects(request: Request) -> frozenset[str] | None:
    """The caller's projects (None: every project)."""
    c = caller(request)
    return c.projects if c is not None else None


def own_project(request: Request, asked: str | None) -> str:
    """The project whose file (and destinations, silences) the caller acts on: its own, or for an
    admin the one asked ('' = the admins' file)."""
    mine = projects(request)
    if mine is None:
        return (asked or "").strip()
    (project,) = tuple(mine)
    if asked and asked != project:
        raise Forbidden(f"a key of project {project} acts on that project's alerts only")
    return project


def visible(request: Request, rule: Rule) -> bool:
    mine = projects(request)
    return mine is None or rule.project in mine


def process_store(request: Request) -> Any:
    store = request.app.state.store
    return getattr(store, "inner", store)


def base_state(request: Request) -> Any:
    state = request.app.state
    return getattr(state, "_base", state)


def config(request: Request) -> AlertsConfig:
    return request.app.state.alerts_config


def engine(request: Request) -> Any:
    """The running engine (None in an app without the schedule, e.g. a UI-only process)."""
    return getattr(request.app.state, "alerts", None)


def trace_rows(request: Request) -> Any:
    rows = getattr(request.app.state, "alert_trace_rows", None)
    if rows is None:
        raise AlertError("the alerts' queries are not available in this process (no UI installed)")
    return rows


def rules_in_force(request: Request) -> RuleSet:
    """The rules the engine evaluates; without an engine, the file's or the stored ones."""
    e = engine(request)
    if e is not None:
        return e.rules
    from tracelake.alerts.rulefile import load_rules
    from tracelake.alerts.service import combine, stored_files

    cfg = config(request)
    if cfg.rules_file is not None:
        try:
            return load_rules(cfg.rules_file)
        except AlertError:
            return RuleSet(())
    try:
        return combine(stored_files(process_store(request)))
    except AlertError:
        return RuleSet(())


def audit(request: Request, action: str, target: str, detail: str = "", project: str = "") -> None:
    from tracelake.auth import audit as audit_log

    who, role = actor(request)
    registry = getattr(request.app.state, "auth_registry", None)
    store = registry.store if registry is not None else process_store(request)
    audit_log.record(store, actor=who, role=role, action=action, project=project, target=target, detail=detail[:2000],
                     remote=request.client.host if request.client else "")


async def read_body(request: Request) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        return {k: str(v) for k, v in form.items()}
    raw = await request.body()
    if len(raw) > 1024 * 1024:
        raise BadRequest("the body is larger than 1 MiB")
    if not raw.strip():
        return {}
    if ctype != "application/json" and not raw.lstrip().startswith(b"{"):
        return {"yaml": raw.decode("utf-8", errors="replace")}
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest("the body must be a JSON object")
    return doc


__all__ = ["actor", "audit", "base_state", "caller", "config", "engine", "error_response", "json_response", "now",
           "own_project", "process_store", "projects", "read_body", "rules_in_force", "trace_rows", "visible"]
