"""Scores over HTTP: the JSON API and the trace page's scores panel (htmx). docs/scores.md.

* ``POST   /api/scores``  body ``{"trace_id", "span_id"?, "name", "value", "comment"?, "source"?, "author"?,
  "author_version"?}`` -> ``{"scores": [...]}`` (one per project holding the trace)
* ``GET    /api/traces/{id}/scores`` -> every score of the trace, newest first, and the current ones
* ``DELETE /api/traces/{id}/scores/{score_id}`` (its author, or ops and admins)
* ``GET    /api/export/scores.jsonl?q=<filter>&range=7d`` -> one JSON object per trace (summary, root
  input/output, scores): an evaluation set from judged traces
* ``GET    /api/score-configs``; ``POST /api/score-configs`` body ``{"project", "name", "data_type",
  "min_value", "max_value", "categories", "description"}`` (admins); ``DELETE /api/score-configs/{project}/{name}``

Viewers read scores, engineers add them (the ``annotate`` permission), ops delete anyone's. A
score made here by a person is ``source: human`` with the caller as author; an app relaying its
users' feedback says ``source: app`` and names the user in ``author`` (erased with that user). Every
change is audited. :class:`~tracelake.store.scores.ScoreError` is mapped to its status here only.
"""
from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from tracelake.archiver.api.common import audit, caller_of, json_response, process_store
from tracelake.auth.roles import Perm, has, valid_project
from tracelake.auth.routes import allows, needs
from tracelake.store import scores
from tracelake.query.filters import add_term, explain
from tracelake.store.scores import ScoreError
from tracelake.ui import charts
from tracelake.ui.queries import dashboard_scores, export
from tracelake.ui.render import templates, time_range

router = APIRouter(tags=["scores"])


def _error(exc: ScoreError) -> Response:
    return json_response(exc.to_dict(), exc.status)


async def _body(request: Request) -> dict[str, Any]:
    """A form's fields or a JSON object; ScoreError otherwise."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return {k: str(v) for k, v in (await request.form()).items()}
    raw = await request.body()
    try:
        doc = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        raise ScoreError("the body is not JSON") from None
    if not isinstance(doc, dict):
        raise ScoreError("the body must be a JSON object")
    return doc


def _may_delete_any(request: Request) -> bool:
    caller = (request.scope.get("state") or {}).get("caller")
    return caller is None or has(caller.role, Perm.RETENTION)


def add(request: Request, body: dict[str, Any]) -> list[scores.Score]:
    """Add a score as the caller (the action behind the API, the panel and review mode)."""
    actor, _ = caller_of(request)
    source = str(body.get("source") or "human")
    author = actor if source == "human" else str(body.get("author") or actor)
    made = scores.add_score(request.app.state.store, str(body.get("trace_id") or ""), body.get("name"), body.get("value"),
                            span_id=str(body.get("span_id") or ""), comment=str(body.get("comment") or ""),
                            source=source, author=author, author_version=str(body.get("author_version") or ""))
    for s in made:
        audit(request, "score.add", f"{s.trace_id}/{s.span_id}" if s.span_id else s.trace_id,
              f"{s.project}: {s.name}={s.shown} ({s.source})")
    return made


def delete(request: Request, trace_id: str, score_id: str) -> scores.Score:
    actor, _ = caller_of(request)
    gone = scores.delete_score(request.app.state.store, trace_id, score_id, actor=actor,
                               any_author=_may_delete_any(request))
    audit(request, "score.delete", f"{gone.trace_id}/{score_id}", f"{gone.project}: {gone.name}={gone.shown}")
    return gone


# --- JSON API ---------------------------------------------------------------------------------------
@router.post("/api/scores", summary="Score a trace or one of its spans", dependencies=[needs(Perm.ANNOTATE)])
async def api_add(request: Request) -> Response:
    try:
        made = await run_in_threadpool(add, request, await _body(request))
    except ScoreError as exc:
        return _error(exc)
    return json_response({"scores": [s.to_dict() for s in made]}, 201)


@router.get("/api/traces/{trace_id}/scores", summary="A trace's scores: every one, newest first, and the current ones",
            dependencies=[needs(Perm.READ)])
async def api_trace_scores(request: Request, trace_id: str) -> Response:
    try:
        tid, _ = scores.check_ids(trace_id, "")
    except ScoreError as exc:
        return _error(exc)
    found = await run_in_threadpool(scores.trace_scores, request.app.state.store, tid)
    return json_response({"trace_id": tid, "current": [s.to_dict() for s in found.latest()],
                          "all": [s.to_dict() for s in found.all]})


@router.delete("/api/traces/{trace_id}/scores/{score_id}", summary="Delete a score (its author, or ops)",
               dependencies=[needs(Perm.ANNOTATE)])
async def api_delete(request: Request, trace_id: str, score_id: str) -> Response:
    try:
        gone = await run_in_threadpool(delete, request, trace_id, score_id)
    except ScoreError as exc:
        return _error(exc)
    return json_response({"deleted": gone.to_dict()})


@router.get("/api/score-configs", summary="Score names and their types, per project", dependencies=[needs(Perm.READ)])
async def api_configs(request: Request) -> Response:
    found = await run_in_threadpool(scores.configs, request.app.state.store)
    return json_response({"configs": [c.to_dict() for c in found]})


def _config_project(body: dict[str, Any]) -> str:
    project = str(body.get("project") or "")
    if not valid_project(project):
        raise ScoreError("project: a project name", "project")
    return project


@router.post("/api/score-configs", summary="Define a score name for a project (admins)", dependencies=[needs(Perm.ADMIN)])
async def api_set_config(request: Request) -> Response:
    try:
        body = await _body(request)
        project = _config_project(body)
        config = scores.check_config(body)
    except ScoreError as exc:
        return _error(exc)
    actor, _ = caller_of(request)
    await run_in_threadpool(scores.set_config, process_store(request), project, config, actor)
    audit(request, "score.config", f"{project}/{config.name}", str(config.to_dict()))
    return json_response({"config": {**config.to_dict(), "project": project}}, 201)


@router.delete("/api/score-configs/{project}/{name}", summary="Retire a score name (admins)",
               dependencies=[needs(Perm.ADMIN)])
async def api_delete_config(request: Request, project: str, name: str) -> Response:
    try:
        project = _config_project({"project": project})
        config = scores.config_of(process_store(request), project, scores.check_name(name))
        if config is None or config.name == scores.THUMBS:
            raise ScoreError("no such score config", "name", 404)
    except ScoreError as exc:
        return _error(exc)
    actor, _ = caller_of(request)
    await run_in_threadpool(scores.set_config, process_store(request), project, config, actor, False)
    audit(request, "score.config.retire", f"{project}/{name}")
    return json_response({"retired": {**config.to_dict(), "project": project}})


# --- export -----------------------------------------------------------------------------------------
@router.get("/api/export/scores.jsonl", summary="Traces matching a filter with their scores, one JSON object per line",
            dependencies=[needs(Perm.READ)])
async def api_export(request: Request, q: str = "has:score.thumbs", range: str | None = "7d",
                     from_: str | None = Query(None, alias="from"), to: str | None = None,
                     limit: int = Query(export.MAX_TRACES, ge=1, le=export.MAX_TRACES)) -> Response:
    filt = explain(q)
    if filt.error is not None:
        return json_response({"error": filt.error.message, "position": filt.error.pos, "field": "q"}, 400)
    tr = time_range(range, from_, to)
    if tr.error:
        return json_response({"error": tr.error, "field": "range"}, 400)
    lines = export.export_lines(request.app.state.store, filt.node, tr.lo_ns, tr.hi_ns, limit)
    return StreamingResponse(iterate_in_threadpool(lines), media_type="application/x-ndjson",
                             headers={"Content-Disposition": 'attachment; filename="scores.jsonl"'})


# --- the dashboard's scores section ------------------------------------------------------------------
async def _score_stats(request: Request, q: str, range_: str | None, from_: str | None, to: str | None) -> dict[str, Any]:
    filt = explain(q)
    tr = time_range(range_, from_, to)
    if filt.error is not None or tr.error:
        raise ScoreError(filt.error.message if filt.error is not None else tr.error, "q" if filt.error else "range")
    return await run_in_threadpool(dashboard_scores.score_stats, request.app.state.store, tr.lo_ns, tr.hi_ns, filt.node)


@router.get("/api/dashboard/scores", summary="Average and count of current scores over time, by model and prompt version",
            dependencies=[needs(Perm.READ)])
async def api_dashboard_scores(request: Request, q: str = "", range: str | None = None,
                               from_: str | None = Query(None, alias="from"), to: str | None = None) -> Response:
    try:
        return json_response(await _score_stats(request, q, range, from_, to))
    except ScoreError as exc:
        return _error(exc)


@router.get("/dashboard/scores", include_in_schema=False, dependencies=[needs(Perm.READ)])
async def dashboard_section(request: Request, q: str = "", range: str | None = None,
                            from_: str | None = Query(None, alias="from"), to: str | None = None) -> Response:
    try:
        stats = await _score_stats(request, q, range, from_, to)
    except ScoreError as exc:
        stats = {"error": exc.message, "scores": []}
    return templates.TemplateResponse(request, "_dashboard_scores.html", {
        "request": request, "s": stats, "charts": charts.score_charts(stats) if stats.get("scores") else [], "q": q,
        "tr": time_range(range, from_, to), "add_term": add_term})


# --- the trace page's panel (htmx) ------------------------------------------------------------------
def _panel_ctx(request: Request, trace_id: str, error: str = "") -> dict[str, Any]:
    store = request.app.state.store
    found = scores.trace_scores(store, trace_id)
    projects = scores.trace_projects(store, trace_id)
    names = {c.name: c for p in projects for c in scores.configs(store, p)}  # thumbs first
    actor, _ = caller_of(request)
    return {"request": request, "trace_id": trace_id, "found": found, "configs": list(names.values()), "error": error,
            "can_score": allows(request, Perm.ANNOTATE), "actor": actor, "delete_any": _may_delete_any(request)}


async def panel(request: Request, trace_id: str, error: str = "", status: int = 200) -> Response:
    ctx = await run_in_threadpool(_panel_ctx, request, trace_id, error)
    return templates.TemplateResponse(request, "_trace_scores.html", ctx, status_code=status)


def _valid(trace_id: str) -> str | None:
    try:
        return scores.check_ids(trace_id, "")[0]
    except ScoreError:
        return None


@router.get("/traces/{trace_id}/scores", include_in_schema=False, dependencies=[needs(Perm.READ)])
async def panel_get(request: Request, trace_id: str) -> Response:
    tid = _valid(trace_id)
    if tid is None:
        return Response("not a trace id", 404)
    return await panel(request, tid)


@router.post("/traces/{trace_id}/scores", include_in_schema=False, dependencies=[needs(Perm.ANNOTATE)])
async def panel_add(request: Request, trace_id: str) -> Response:
    tid = _valid(trace_id)
    if tid is None:
        return Response("not a trace id", 404)
    try:
        body = await _body(request)
        body = {**body, "trace_id": tid, "source": "human"}
        await run_in_threadpool(add, request, body)
    except ScoreError as exc:
        return await panel(request, tid, exc.message, 200)  # shown in place, the form kept
    return await panel(request, tid)


@router.post("/traces/{trace_id}/scores/{score_id}/delete", include_in_schema=False, dependencies=[needs(Perm.ANNOTATE)])
async def panel_delete(request: Request, trace_id: str, score_id: str) -> Response:
    tid = _valid(trace_id)
    if tid is None:
        return Response("not a trace id", 404)
    try:
        await run_in_threadpool(delete, request, tid, score_id)
    except ScoreError as exc:
        return await panel(request, tid, exc.message)
    return await panel(request, tid)


__all__ = ["router", "add", "delete", "panel"]
