"""The Prices page and its JSON API: prices in force, history, unpriced models, edits and imports.

Who may change what: ``prices`` (ops and admin). A project's own prices are changed by its ops or
an admin; the default prices (project '') apply to every project, so only an admin changes them
(everyone, without auth). Every change is audited (``prices.set``, ``prices.import``,
``prices.alias``) and reloads the price dictionaries: the next request shows costs priced with it.

A price without an effective time takes the form's; a blank one means "from now" for a model that
already has a price in that project (a price change does not rewrite the past) and "from the
beginning" for a model priced for the first time (its spans so far were unpriced).
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from tracelake.archiver.api.common import audit, json_response, process_store, read_body, signed_in
from tracelake.auth.roles import ALL_PROJECTS, Perm
from tracelake.auth.routes import needs
from tracelake.store.prices import EPOCH, Price, PriceFile, PriceFileError, load_prices_text, write_aliases, write_prices
from tracelake.ui.queries import prices as prices_q
from tracelake.ui.render import templates
from tracelake.ui.security import is_htmx

router = APIRouter()
MAX_FILE_BYTES = 8 * 1024 * 1024  # LiteLLM's full list is ~1 MB
UNPRICED_WINDOW_NS = 30 * 86400 * 10**9


class Refused(ValueError):
    """A change the caller may not make, or that cannot be made (said plainly, nothing written)."""


def _caller_projects(request: Request) -> frozenset[str] | None:
    """The projects whose prices the caller changes (None: every project, the defaults included)."""
    caller = signed_in(request)
    if caller is None or caller.project == ALL_PROJECTS:
        return None
    return frozenset({caller.project})


def _check_scope(request: Request, prices: list[Price]) -> None:
    allowed = _caller_projects(request)
    if allowed is None:
        return
    for p in prices:
        if p.project == "":
            raise Refused(f"the default price of {p.model!r} applies to every project: only an admin changes it "
                          f"(set a price for project {sorted(allowed)[0]!r} instead)")
        if p.project not in allowed:
            raise Refused(f"project {p.project!r} is not yours")


def _parse_when(text: str) -> datetime | None:
    """A form's effective time: blank (None), 'beginning', or an ISO date / date-time (UTC)."""
    text = text.strip()
    if not text:
        return None
    if text.lower() in ("beginning", "all", "always"):
        return EPOCH
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Refused(f"effective from: {text!r} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM, UTC)") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _dated(store: Any, prices: list[Price], when: datetime | None) -> list[Price]:
    """Prices without an effective time of their own get ``when``, or the default described above."""
    if all("effective_from" in p.model_fields_set for p in prices):
        return prices
    known = {(r["project"], r["model"]) for r in prices_q.in_force(store)}
    now = datetime.now(timezone.utc).replace(microsecond=0)
    out = []
    for p in prices:
        if "effective_from" not in p.model_fields_set:
            default = now if (p.project, p.model) in known else EPOCH
            p = p.model_copy(update={"effective_from": when or default})
        out.append(p)
    return out


def apply_file(request: Request, pf: PriceFile, when: datetime | None, action: str) -> dict[str, Any]:
    """Check, date, write and audit a set of prices and aliases; what was written."""
    store = process_store(request)
    _check_scope(request, pf.prices)
    if pf.aliases and _caller_projects(request) is not None:
        raise Refused("aliases apply to every project: only an admin changes them")
    prices = _dated(store, pf.prices, when)
    actor = (signed_in(request).actor if signed_in(request) else "local")
    write_prices(store, prices, "ui" if action == "prices.set" else "import", actor)
    if pf.aliases:
        write_aliases(store, pf.aliases, actor)
    models = sorted({p.model for p in prices})
    detail = f"{len(prices)} prices ({', '.join(models[:20])}{'...' if len(models) > 20 else ''}), {len(pf.aliases)} aliases"
    audit(request, action, ",".join(sorted({p.project or "(default)" for p in prices}))[:200], detail)
    return {"prices": len(prices), "aliases": len(pf.aliases),
            "written": [p.model_dump(mode="json") for p in prices[:200]]}


def page_data(request: Request) -> dict[str, Any]:
    store = process_store(request)
    projects = _caller_projects(request)
    now = time.time_ns()
    scoped = request.app.state.store  # unpriced models: only the caller's projects' spans
    return {"in_force": prices_q.in_force(store, projects), "history": prices_q.history(store, projects=projects, limit=100),
            "aliases": prices_q.aliases(store), "unpriced": prices_q.unpriced(scoped, now - UNPRICED_WINDOW_NS, now),
            "admin": projects is None, "own_project": sorted(projects)[0] if projects else ""}


async def _page(request: Request, message: str = "", error: str = "", form: dict[str, str] | None = None,
                status: int = 200) -> Response:
    data = await run_in_threadpool(page_data, request)
    return templates.TemplateResponse(request, "prices.html", {"request": request, "nav": "prices", "message": message,
                                                               "error": error, "form": form or {}, **data},
                                      status_code=status)


@router.get("/prices", response_class=HTMLResponse, include_in_schema=False, dependencies=[needs(Perm.PRICES)])
async def prices_page(request: Request, saved: str = "") -> Response:
    return await _page(request, message=saved[:200])


def _form_price(form: dict[str, str]) -> Price:
    fields: dict[str, Any] = {"model": form.get("model", "").strip(), "project": form.get("project", "").strip()}
    for name in ("input", "output", "cache_read", "cache_write", "reasoning", "audio_input", "audio_output", "image_input"):
        raw = form.get(name, "").strip()
        if raw:
            try:
                fields[name] = float(raw)
            except ValueError:
                raise Refused(f"{name.replace('_', ' ')}: {raw!r} is not a number of USD per million tokens") from None
    if "input" not in fields or "output" not in fields:
        raise Refused("a price needs at least its input and output USD per million tokens")
    try:
        return Price(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise Refused(f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}") from None


async def _done(request: Request, message: str) -> Response:
    target = f"/prices?saved={message}"
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


@router.post("/prices", response_class=HTMLResponse, include_in_schema=False, dependencies=[needs(Perm.PRICES)])
async def set_price_form(request: Request) -> Response:
    form = await read_body(request)
    try:
        price = _form_price(form)
        when = _parse_when(form.get("effective_from", ""))
        await run_in_threadpool(apply_file, request, PriceFile(prices=[price]), when, "prices.set")
    except (Refused, PriceFileError) as exc:
        return await _page(request, error=str(exc), form=form, status=400)
    return await _done(request, f"price of {price.model} saved")


@router.post("/prices/import", response_class=HTMLResponse, include_in_schema=False, dependencies=[needs(Perm.PRICES)])
async def import_form(request: Request) -> Response:
    if int(request.headers.get("content-length") or 0) > MAX_FILE_BYTES:
        return await _page(request, error="the price file is too large (8 MB at most)", status=413)
    form = await request.form()
    upload = form.get("file")
    text = str(form.get("text") or "")
    if upload is not None and not isinstance(upload, str):
        text = (await upload.read()).decode("utf-8", errors="replace") or text
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        pf = load_prices_text(text, "the imported file")
        when = _parse_when(fields.get("effective_from", ""))
        result = await run_in_threadpool(apply_file, request, pf, when, "prices.import")
    except (Refused, PriceFileError) as exc:
        return await _page(request, error=str(exc), form=fields, status=400)
    return await _done(request, f"{result['prices']} prices and {result['aliases']} aliases imported")


@router.post("/prices/alias", response_class=HTMLResponse, include_in_schema=False, dependencies=[needs(Perm.PRICES)])
async def alias_form(request: Request) -> Response:
    form = await read_body(request)
    alias, model = form.get("alias", "").strip(), form.get("model", "").strip()
    try:
        if not alias or not model or len(alias) > 200 or len(model) > 200:
            raise Refused("an alias needs a name (the deployment's) and the model it stands for (200 characters at most)")
        await run_in_threadpool(apply_file, request, PriceFile(aliases={alias: model}), None, "prices.alias")
    except Refused as exc:
        return await _page(request, error=str(exc), form=form, status=400)
    return await _done(request, f"alias {alias} saved")


# --- JSON API ---------------------------------------------------------------------------------------
@router.get("/api/prices", tags=["prices"], summary="Prices in force, recent changes, aliases, unpriced models",
            dependencies=[needs(Perm.PRICES)])
async def api_prices(request: Request) -> Response:
    return json_response(await run_in_threadpool(page_data, request))


@router.post("/api/prices", tags=["prices"], dependencies=[needs(Perm.PRICES)],
             summary="Set prices: a price file (ours or LiteLLM's, docs/cost.md); ?effective_from= dates entries without one")
async def api_set_prices(request: Request, effective_from: str = "") -> Response:
    raw = await request.body()
    if len(raw) > MAX_FILE_BYTES:
        return json_response({"error": "the price file is too large (8 MB at most)"}, 413)
    try:
        pf = load_prices_text(raw.decode("utf-8", errors="replace"), "request body")
        result = await run_in_threadpool(apply_file, request, pf, _parse_when(effective_from), "prices.import")
    except PriceFileError as exc:
        return json_response({"error": str(exc)}, 400)
    except Refused as exc:
        return json_response({"error": str(exc)}, 403 if "admin" in str(exc) or "not yours" in str(exc) else 400)
    return json_response(result)
