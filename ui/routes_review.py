"""Review mode: a queue of traces matching a filter, judged one after the other by keyboard.

``GET /review?q=<filter>&name=<score>&range=24h`` shows the newest trace that matches the filter
and has no ``<score>`` yet (``-has:score.<name>`` is added to the filter), with its root span's
input and output. Each label of the score's config has a key (1, 2, ... in the config's order;
thumbs: 1 down, 2 up); pressing it records the score as the reviewer (``source: human``) and the
next trace takes its place (htmx). ``s`` skips a trace for this sitting, ``c`` writes a comment.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from tracelake.archiver.api.common import audit, caller_of, process_store
from tracelake.auth.roles import Perm, valid_project
from tracelake.auth.routes import allows, needs
from tracelake.store import scores
from tracelake.store.scores import ScoreConfig, ScoreError
from tracelake.ui import views
from tracelake.ui.render import templates
from tracelake.ui.routes_scores import add
from tracelake.ui.security import is_htmx

router = APIRouter(include_in_schema=False)
MAX_SKIPPED = 200  # skips remembered by one sitting (the page carries them)


def _keys(config: ScoreConfig) -> list[tuple[str, str, str]]:
    """(key, label, value) per choice: 1..9 then 0."""
    return [(str((i + 1) % 10), label, value) for i, (label, value) in enumerate(config.keys[:10])]


def _config(store: Any, name: str) -> ScoreConfig | None:
    return next((c for c in scores.configs(store) if c.name == name), None)


def _skipped(text: str) -> list[str]:
    ids = [t for t in (text or "").split(",") if len(t) == 32 and all(c in "0123456789abcdef" for c in t)]
    return ids[-MAX_SKIPPED:]


async def _item(request: Request, q: str, name: str, range_: str | None, skipped: list[str], done: int,
                error: str = "") -> dict[str, Any]:
    """What the review box shows: the next trace of the queue (or why there is none)."""
    store = request.app.state.store
    ctx: dict[str, Any] = {"request": request, "q": q, "name": name, "range": range_ or "24h", "skipped": skipped,
                           "done": done, "error": error, "trace": None, "sv": None, "keys": [],
                           "can_score": allows(request, Perm.ANNOTATE)}
    try:
        scores.check_name(name)
    except ScoreError as exc:
        ctx["error"] = exc.message
        return ctx
    config = await run_in_threadpool(_config, store, name)
    if config is None:
        ctx["error"] = f"no score config named {name}: an admin defines it (POST /api/score-configs)"
        return ctx
    ctx["config"], ctx["keys"] = config, _keys(config)
    queue = f"({q}) -has:score.{name}" if q.strip() else f"-has:score.{name}"
    view = await views.trace_list(store, queue, range_, None, None, None, len(skipped) + 1)
    if view.error is not None:
        ctx["error"] = f"filter: {view.error}"
        return ctx
    rows = [r for r in (view.page.rows if view.page else []) if r.trace_id not in set(skipped)]
    if not rows:
        return ctx
    ctx["trace"] = rows[0]
    tv = await views.trace_view(store, rows[0].trace_id)
    if tv is not None:
        ctx["sv"] = await views.span_view(store, tv.trace_id, tv.root.span_id, tv.location)
    return ctx


async def _page_ctx(request: Request, ctx: dict[str, Any], config_error: str = "") -> dict[str, Any]:
    found = await run_in_threadpool(scores.configs, request.app.state.store)
    ctx.update(nav="review", names=list(dict.fromkeys(c.name for c in found)), configs=found,
               can_configure=allows(request, Perm.ADMIN), config_error=config_error)
    return ctx


@router.get("/review", dependencies=[needs(Perm.READ)])
async def review_page(request: Request, q: str = "", name: str = scores.THUMBS, range: str | None = None) -> Response:
    ctx = await _item(request, q, name, range, [], 0)
    return templates.TemplateResponse(request, "review.html", await _page_ctx(request, ctx))


@router.post("/review/configs", dependencies=[needs(Perm.ADMIN)])
async def review_config(request: Request) -> Response:
    """The page's form for a score config (admins): the API's checks, the error shown in place."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    try:
        project = form.get("project", "")
        if not valid_project(project):
            raise ScoreError("project: a project name", "project")
        config = scores.check_config(form)
    except ScoreError as exc:
        ctx = await _item(request, "", scores.THUMBS, None, [], 0)
        return templates.TemplateResponse(request, "review.html", await _page_ctx(request, ctx, exc.message), status_code=400)
    actor, _ = caller_of(request)
    await run_in_threadpool(scores.set_config, process_store(request), project, config, actor)
    audit(request, "score.config", f"{project}/{config.name}", str(config.to_dict()))
    return RedirectResponse(f"/review?{urlencode({'name': config.name})}", status_code=303)


@router.post("/review", dependencies=[needs(Perm.ANNOTATE)])
async def review_label(request: Request) -> Response:
    """Record the label (or the skip) of the trace shown, then show the next one."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    q, name, range_ = form.get("q", ""), form.get("name", scores.THUMBS), form.get("range") or None
    skipped = _skipped(form.get("skipped", ""))
    done = int(form.get("done", "0") or 0) if form.get("done", "0").isdigit() else 0
    error = ""
    trace_id = form.get("trace_id", "")
    if form.get("skip"):
        skipped.append(trace_id)
    else:
        try:
            await run_in_threadpool(add, request, {"trace_id": trace_id, "name": name, "value": form.get("value"),
                                                   "comment": form.get("comment", ""), "source": "human"})
            done += 1
        except ScoreError as exc:
            error = exc.message
    ctx = await _item(request, q, name, range_, _skipped(",".join(skipped)), done, error)
    if not is_htmx(request):  # a form posted without htmx: the whole page
        return templates.TemplateResponse(request, "review.html", await _page_ctx(request, ctx))
    return templates.TemplateResponse(request, "review.html", ctx, block_name="item")
