"""The Alerts page: rules with their state and a sparkline, silences, destinations, the rule
editor (preview, apply) and a rule's page (history with links to its traces, delivery log).

Every form posts as a plain form and the page is rendered again with the outcome in place (a bad
rule file shows its line and field above the editor, kept as typed); the actions are the JSON
API's (:mod:`tracelake.alerts.api`), which answers with statuses instead.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from tracelake.alerts import access, api, destinations, silences
from tracelake.alerts.errors import AlertError, RuleFileError
from tracelake.alerts.rulefile import MAX_YAML_BYTES
from tracelake.alerts.service import source
from tracelake.auth.roles import Perm
from tracelake.auth.routes import allows, needs
from tracelake.ui.render import templates

router = APIRouter(include_in_schema=False)

STARTER = """rules:
  - name: errors
    aggregate: error_rate          # error_rate, count, p50/p95/p99_latency, tokens, cost
    window: 5m
    threshold: 5%
    clear: 2%                      # resolves once back under 2 %
    min_traces: 20
    destinations: []               # names of destinations below
"""


def _page(request: Request, project: str, **kw: Any) -> dict[str, Any]:
    can_edit = allows(request, Perm.ALERTS)
    ctx: dict[str, Any] = {"overview": api.rules_overview(request), "project": project, "can_edit": can_edit,
                           "silences": [s.to_dict(access.now()) for s in silences.all_silences(
                               access.process_store(request), access.projects(request))],
                           "error": None, "preview": None, "message": "", "yaml": None, "comment": ""}
    if can_edit:
        src = source(access.process_store(request), access.config(request), project)
        ctx.update(source=src, destinations=[d.to_dict() for d in destinations.all_destinations(
            access.process_store(request), access.projects(request))], kinds=destinations.KINDS)
        ctx["yaml"] = src.text or STARTER
        ctx["base_version"] = src.base_version
    ctx.update(kw)
    return ctx


async def _render(request: Request, project: str, status: int = 200, **kw: Any) -> Response:
    ctx = await run_in_threadpool(_page, request, project, **kw)
    return templates.TemplateResponse(request, "alerts.html", {"request": request, "nav": "alerts", **ctx},
                                      status_code=status)


def _project(request: Request, asked: str | None) -> str:
    try:
        return access.own_project(request, asked)
    except AlertError:
        return access.own_project(request, None)


async def _form(request: Request) -> dict[str, str]:
    if int(request.headers.get("content-length") or 0) > 2 * MAX_YAML_BYTES:
        raise AlertError("the form is too large")
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.get("/alerts", response_class=HTMLResponse, dependencies=[needs(Perm.READ)])
async def alerts_page(request: Request, project: str | None = None) -> Response:
    return await _render(request, _project(request, project))


@router.post("/alerts/preview", response_class=HTMLResponse, dependencies=[needs(Perm.ALERTS)])
async def preview_form(request: Request) -> Response:
    form = await _form(request)
    project = _project(request, form.get("project"))
    text = form.get("yaml", "").replace("\r\n", "\n")
    try:
        result = await run_in_threadpool(api.preview, request, text, project, 7)
        return await _render(request, project, yaml=text, preview=result, base_version=result["base_version"],
                             comment=form.get("comment", ""))
    except RuleFileError as exc:
        return await _render(request, project, 400, yaml=text, error=exc.to_dict(), comment=form.get("comment", ""))
    except AlertError as exc:
        return await _render(request, project, exc.status, yaml=text, error={"error": str(exc)})


@router.post("/alerts/apply", response_class=HTMLResponse, dependencies=[needs(Perm.ALERTS)])
async def apply_form(request: Request) -> Response:
    form = await _form(request)
    project = _project(request, form.get("project"))
    text = form.get("yaml", "").replace("\r\n", "\n")
    try:
        base = int(form.get("base_version", "0"))
        done = await run_in_threadpool(api.apply, request, text, project, base, form.get("comment", ""))
    except (AlertError, ValueError) as exc:
        status = exc.status if isinstance(exc, AlertError) else 400
        err = exc.to_dict() if isinstance(exc, RuleFileError) else {"error": str(exc)}
        return await _render(request, project, status, yaml=text, error=err, comment=form.get("comment", ""))
    return await _render(request, project, message=f"Applied version {done['version']['version']} "
                                                   f"({done['rules']} rules); in force from the next round.")


@router.post("/alerts/silences", response_class=HTMLResponse, dependencies=[needs(Perm.ALERTS)])
async def silence_form(request: Request) -> Response:
    form = await _form(request)
    project = _project(request, form.get("project"))
    try:
        s = await run_in_threadpool(api.create_silence, request, form)
    except AlertError as exc:
        return await _render(request, project, exc.status, error={"error": str(exc)})
    return await _render(request, project, message=f"Silenced {s.rule} until {s.ends_at:%Y-%m-%d %H:%M} UTC.")


@router.post("/alerts/silences/{silence_id}/lift", response_class=HTMLResponse, dependencies=[needs(Perm.ALERTS)])
async def lift_form(request: Request, silence_id: str) -> Response:
    project = _project(request, None)
    try:
        await run_in_threadpool(api.lift_silence, request, silence_id)
    except AlertError as exc:
        return await _render(request, project, exc.status, error={"error": str(exc)})
    return await _render(request, project, message="Silence lifted.")


@router.post("/alerts/destinations", response_class=HTMLResponse, dependencies=[needs(Perm.ALERTS)])
async def destination_form(request: Request) -> Response:
    form = await _form(request)
    project = _project(request, form.get("project"))
    try:
        d = await run_in_threadpool(api.put_destination, request, form.get("name", ""), form)
    except AlertError as exc:
        return await _render(request, project, exc.status, error={"error": str(exc)})
    return await _render(request, project, message=f"Destination {d.name} saved (fingerprint {d.fingerprint}); "
                                                   "its secret is not shown again.")


@router.post("/alerts/destinations/{name}/delete", response_class=HTMLResponse, dependencies=[needs(Perm.ALERTS)])
async def destination_delete_form(request: Request, name: str) -> Response:
    project = _project(request, None)
    try:
        await run_in_threadpool(api.delete_destination, request, name)
    except AlertError as exc:
        return await _render(request, project, exc.status, error={"error": str(exc)})
    return await _render(request, project, message=f"Destination {name} deleted.")


@router.get("/alerts/rules/{name}", response_class=HTMLResponse, dependencies=[needs(Perm.READ)])
async def rule_page(request: Request, name: str, project: str | None = None) -> Response:
    try:
        detail = await run_in_threadpool(api.rule_detail, request, name, project)
    except AlertError as exc:
        return templates.TemplateResponse(request, "notfound.html", {"request": request, "what": "alert rule",
                                                                     "ident": name}, status_code=exc.status)
    return templates.TemplateResponse(request, "alerts_rule.html", {
        "request": request, "nav": "alerts", "d": detail, "can_edit": allows(request, Perm.ALERTS)})


__all__ = ["router"]
