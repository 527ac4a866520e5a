"""The Retention page's rule editor: preview and apply from the page, and one applied version.

Forms post as htmx requests (the editor section is replaced) or as plain forms (the whole page is
rendered again), so the editor works without script too. A bad YAML, a stale preview or a refused
apply is a 200 page with the message in place (as a bad filter on the trace list is); the JSON
API (``/api/retention/*``, :mod:`tracelake.archiver.api.rules`) answers with 400 / 409 instead.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from tracelake.archiver import policy_store, rules
from tracelake.archiver.api import rules as rules_api
from tracelake.archiver.api.common import config, process_store
from tracelake.archiver.policy import PolicyError
from tracelake.auth.roles import Perm
from tracelake.auth.routes import allows, needs
from tracelake.ui.queries import rules as rules_q
from tracelake.ui.render import templates
from tracelake.ui.security import is_htmx

router = APIRouter(include_in_schema=False)
MAX_FORM_BYTES = 256 * 1024


async def editor(request: Request, **kw: Any) -> rules_q.RulesEditor:
    # Admins (or everyone when auth is off) may apply: the route enforces it, the page says it.
    return await run_in_threadpool(rules_q.editor, process_store(request), config(request),
                                   getattr(request.app.state, "archiver", None),
                                   can_apply_role=allows(request, Perm.ADMIN), **kw)


async def _respond(request: Request, ed: rules_q.RulesEditor) -> Response:
    if is_htmx(request):
        return templates.TemplateResponse(request, "_retention_rules.html", {"request": request, "rules": ed})
    from tracelake.ui.routes import retention_response

    return await retention_response(request, rules_editor=ed)


async def _form(request: Request) -> dict[str, str]:
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        return {"yaml": "", "_too_large": "1"}
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _base(form: dict[str, str], default: int) -> int:
    try:
        return max(0, int(form.get("base_version", "")))
    except ValueError:
        return default


@router.post("/retention/rules/preview", response_class=HTMLResponse, dependencies=[needs(Perm.RETENTION)])
async def preview(request: Request) -> Response:
    form = await _form(request)
    text = form.get("yaml", "").replace("\r\n", "\n")
    ed = await editor(request, yaml_text=text)
    ed.base_version = _base(form, ed.base_version)
    if form.get("_too_large"):
        ed.error = rules.EditError("the rules are too large to preview")
        return await _respond(request, ed)
    try:
        if not text.strip():
            raise PolicyError("the editor is empty: the rules need a 'rules:' list")
        result = await run_in_threadpool(rules_api.preview, request, text)
        ed.preview = result
        ed.base_version = result["base_version"]
    except PolicyError as exc:
        ed.error = rules.EditError.of(exc)
    return await _respond(request, ed)


@router.post("/retention/rules/apply", response_class=HTMLResponse, dependencies=[needs(Perm.ADMIN)])
async def apply(request: Request) -> Response:
    form = await _form(request)
    text = form.get("yaml", "").replace("\r\n", "\n")
    base = _base(form, -1)
    try:
        if base < 0:
            raise PolicyError("the apply form has no base version: preview again")
        version, _outcome = await run_in_threadpool(rules_api.apply, request, text, base, form.get("comment", "")[:2000])
    except (rules.FileIsSource, rules.StaleVersion) as exc:
        ed = await editor(request, yaml_text=text)
        ed.apply_error = str(exc)
        return await _respond(request, ed)
    except PolicyError as exc:
        ed = await editor(request, yaml_text=text)
        ed.error = rules.EditError.of(exc)
        return await _respond(request, ed)
    # Post/redirect/get: the whole page (rules table, next run, editor) shows the rules now in force.
    target = f"/retention?applied={version.version}#rules-editor"
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


@router.get("/retention/rules/versions/{version}", response_class=HTMLResponse, dependencies=[needs(Perm.RETENTION)])
async def version_page(request: Request, version: int) -> Response:
    found = await run_in_threadpool(policy_store.get, process_store(request), version)
    if found is None:
        return templates.TemplateResponse(request, "notfound.html", {"request": request, "nav": "retention",
                                                                      "what": "rules version", "ident": str(version)},
                                          status_code=404)
    current = await run_in_threadpool(policy_store.current, process_store(request))
    return templates.TemplateResponse(request, "retention_rules_version.html",
                                      {"request": request, "nav": "retention", "v": found,
                                       "is_current": current is not None and current.version == found.version})
