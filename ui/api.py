"""JSON twins of every page under /api/ (documented in the OpenAPI schema at /api/docs).

A bad filter is a 400 with ``{"error": {"message", "position", "end"}}`` (0-based character
offsets into ``q``); an unknown id is a 404. Never a 500 for user input.
"""
from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from tracelake.query import filters
from tracelake.ui import views

router = APIRouter(prefix="/api", tags=["ui"])

Q_DOC = "Filter in the trace filter language (see GET /api/filter/fields and docs/ui.md)."
RANGE_DOC = "Relative time range ending now: 5m, 15m, 1h, 6h, 24h (default), 7d, 30d."
FROM_DOC = "Absolute range start (ISO 8601, UTC unless an offset is given, or unix seconds); overrides range."


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content, default=str, option=orjson.OPT_NON_STR_KEYS), status_code=status,
                    media_type="application/json")


def _filter_error(q: str, err: filters.FilterError) -> Response:
    return _json({"error": {"message": err.message, "position": err.pos, "end": err.end, "query": q}}, 400)


@router.get("/traces", summary="Trace list: newest first, filtered, cursor-paginated")
async def api_traces(request: Request, q: str = Query("", description=Q_DOC), range: str | None = Query(None, description=RANGE_DOC),
                     from_: str | None = Query(None, alias="from", description=FROM_DOC),
                     to: str | None = Query(None, description="Absolute range end (see from)."),
                     cursor: str | None = Query(None, description="next_cursor of the previous page."),
                     limit: int | None = Query(None, ge=1, le=200, description="Page size (default 50).")) -> Response:
    view = await views.trace_list(request.app.state.store, q, range, from_, to, cursor, limit)
    if view.error is not None:
        return _filter_error(q, view.error)
    if view.tr.error:
        return _json({"error": {"message": view.tr.error, "position": None, "end": None, "query": q}}, 400)
    if view.cursor_error:
        return _json({"error": {"message": view.cursor_error, "position": None, "end": None, "query": q}}, 400)
    assert view.page is not None
    return _json({"traces": [r.as_json() for r in view.page.rows], "next_cursor": view.page.next_cursor,
                  "range": {"from_ns": view.tr.lo_ns, "to_ns": view.tr.hi_ns}, "query": q})


@router.get("/traces/{trace_id}", summary="One trace: its spans in tree order (depth-first)")
async def api_trace(request: Request, trace_id: str) -> Response:
    tid = views.valid_trace_id(trace_id)
    tv = await views.trace_view(request.app.state.store, tid) if tid else None
    if tv is None:
        return _json({"error": {"message": "trace not found"}}, 404)
    return _json({"trace_id": tv.trace_id, "tier": tv.tier, "start_ns": tv.start_ns, "end_ns": tv.end_ns,
                  "duration_ms": tv.duration_ns / 1e6, "error_spans": tv.errors, "services": tv.services,
                  "input_tokens": tv.input_tokens, "output_tokens": tv.output_tokens, "cost_usd": tv.cost,
                  "spans": [s.as_json() for s in tv.spans]})


@router.get("/traces/{trace_id}/spans/{span_id}",
            summary="One span: attributes, resource, events, links and its normalized input/output")
async def api_span(request: Request, trace_id: str, span_id: str) -> Response:
    tid, sid = views.valid_trace_id(trace_id), views.valid_span_id(span_id)
    sv = await views.span_view(request.app.state.store, tid, sid) if tid and sid else None
    if sv is None:
        return _json({"error": {"message": "span not found"}}, 404)
    d = sv.detail
    return _json({"trace_id": d.trace_id, "tier": d.tier, "span": d.row.as_json(), "attributes": d.attributes, "resource": d.resource,
                  "scope": d.scope, "events": d.events, "links": d.links, "io": sv.io.as_json()})


@router.get("/sessions", summary="Sessions with traces in the range, most recent activity first")
async def api_sessions(request: Request, q: str = Query("", description="Substring of the session id."),
                       range: str | None = Query(None, description=RANGE_DOC),
                       from_: str | None = Query(None, alias="from", description=FROM_DOC), to: str | None = None) -> Response:
    sv = await views.sessions_list(request.app.state.store, q, range, from_, to)
    return _json({"sessions": sv.rows, "range": {"from_ns": sv.tr.lo_ns, "to_ns": sv.tr.hi_ns}})


@router.get("/sessions/{session_id}", summary="One session: its traces (oldest first) as conversation turns")
async def api_session(request: Request, session_id: str) -> Response:
    traces, turns = await views.session_view(request.app.state.store, session_id)
    if not traces:
        return _json({"error": {"message": "session not found"}}, 404)
    return _json({"session_id": session_id,
                  "turns": [{"trace": t["trace"].as_json(), "user": t["user"], "assistant": t["assistant"]} for t in turns]})


@router.get("/dashboard", summary="Requests, errors, latency, tokens and cost over time; by model and service")
async def api_dashboard(request: Request, q: str = Query("", description=Q_DOC), range: str | None = Query(None, description=RANGE_DOC),
                        from_: str | None = Query(None, alias="from", description=FROM_DOC), to: str | None = None) -> Response:
    dv = await views.dashboard_view(request.app.state.store, q, range, from_, to)
    if dv.error is not None:
        return _filter_error(q, dv.error)
    assert dv.data is not None
    return _json({**dv.data, "range": {"from_ns": dv.tr.lo_ns, "to_ns": dv.tr.hi_ns}})


@router.get("/retention", summary="Retention: rules, the next run's plan, past runs, spans and bytes per tier and day")
async def api_retention(request: Request) -> Response:
    rv = await views.retention_view(request.app.state.store, getattr(request.app.state, "archiver", None))
    return _json(rv.as_json())


@router.get("/filter/fields", summary="The filter language: fields, operators and units")
def api_filter_fields() -> Response:
    return _json({"fields": [{"name": f.name, "aliases": list(f.aliases), "kind": f.kind, "level": f.level,
                              "doc": f.doc} for f in filters.FIELDS],
                  "operators": list(filters.OPS), "duration_units": list(filters.DURATION_UNITS),
                  "status_values": sorted(set(filters.STATUS_VALUES))})


@router.get("/filter/parse", summary="Parse a filter: its syntax tree, or the error and its position")
def api_filter_parse(q: str = Query("", description=Q_DOC)) -> Response:
    try:
        node = filters.parse(q)
    except filters.FilterError as err:
        return _filter_error(q, err)
    return _json({"query": q, "ast": _ast(node)})


def _ast(node: filters.Node | None) -> Any:
    if node is None:
        return None
    if isinstance(node, filters.Text):
        return {"text": node.value, "pos": node.pos}
    if isinstance(node, filters.Cmp):
        return {"field": node.field.name, "key": node.key or None, "op": node.op, "value": node.value,
                "wildcard": node.wildcard, "pos": node.pos}
    if isinstance(node, filters.Not):
        return {"not": _ast(node.item)}
    if isinstance(node, filters.And):
        return {"and": [_ast(n) for n in node.items]}
    return {"or": [_ast(n) for n in node.items]}
