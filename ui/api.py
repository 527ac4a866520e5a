"""JSON twins of every page under /api/ (documented in the OpenAPI schema at /api/docs).

A bad filter is a 400 with ``{"error": {"message", "position", "end"}}`` (0-based character
offsets into ``q``); an unknown id is a 404. Never a 500 for user input.
"""
from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from tracelake.auth.roles import Perm
from tracelake.auth.routes import needs
from tracelake.query import filters
from tracelake.ui import queries, views

router = APIRouter(prefix="/api", tags=["ui"])

Q_DOC = "Filter in the trace filter language (see GET /api/filter/fields and docs/ui.md)."
RANGE_DOC = "Relative time range ending now: 5m, 15m, 1h, 6h, 24h (default), 7d, 30d."
FROM_DOC = "Absolute range start (ISO 8601, UTC unless an offset is given, or unix seconds); overrides range."


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content, default=str, option=orjson.OPT_NON_STR_KEYS), status_code=status,
                    media_type="application/json")


def _filter_error(q: str, err: filters.FilterError) -> Response:
    return _json({"error": {"message": err.message, "position": err.pos, "end": err.end, "query": q}}, 400)


@router.get("/traces", summary="Trace list: newest first, filtered, cursor-paginated", dependencies=[needs(Perm.READ)])
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
    scored = view.extra.get("scores", {})
    return _json({"traces": [{**r.as_json(), "scores": scored.get(r.trace_id, {})} for r in view.page.rows],
                  "next_cursor": view.page.next_cursor,
                  "range": {"from_ns": view.tr.lo_ns, "to_ns": view.tr.hi_ns}, "query": q})


TRACE_PAGE_SPANS = 5_000  # spans per page of /api/traces/{id} unless the caller asks otherwise


@router.get("/traces/{trace_id}", summary="One trace: totals over all its spans, and a page of its spans in tree order",
            dependencies=[needs(Perm.READ)])
async def api_trace(request: Request, trace_id: str,
                    cursor: int = Query(0, ge=0, description="next_cursor of the previous page (a position in tree order)."),
                    limit: int = Query(TRACE_PAGE_SPANS, ge=1, le=50_000, description="Spans per page.")) -> Response:
    """Totals (spans, errors, duration, services, tokens, cost) are SQL aggregates over the whole
    trace, whatever the page. ``spans`` are depth-first; ``complete`` says whether this page holds
    every span, and ``next_cursor`` (null at the end) fetches the next page."""
    tid = views.valid_trace_id(trace_id)
    found = await views.trace_spans(request.app.state.store, tid, cursor, limit) if tid else None
    if found is None:
        return _json({"error": {"message": "trace not found"}}, 404)
    loc, totals, spans = found
    end = cursor + len(spans)
    return _json({"trace_id": tid, "tier": loc.tier, **totals.as_json(), "span_count": totals.spans,
                  "offset": cursor, "complete": cursor == 0 and end >= totals.spans,
                  "next_cursor": end if end < totals.spans else None, "spans": [s.as_json() for s in spans]})


@router.get("/traces/{trace_id}/skeleton",
            summary="A window of the trace's tree as a viewer sees it: compact rows, long sibling runs folded",
            dependencies=[needs(Perm.READ)])
async def api_trace_skeleton(request: Request, trace_id: str,
                             start: str | None = Query(None, description="Span id of the first row (default: the top)."),
                             collapsed: str | None = Query(None, description="Comma-separated span ids shown collapsed."),
                             expanded: str | None = Query(None, description="With all=1: span ids shown expanded."),
                             opened: str | None = Query(None, description="Folded groups shown member by member (their first span id)."),
                             all: int = Query(0, description="1: every span below the roots starts collapsed."),
                             limit: int = Query(views.WINDOW_ROWS, ge=1, le=2_000, description="Rows in the window.")) -> Response:
    """Rows are ``[span_id, parent_span_id, depth, name, kind, start_ns, duration_ns, status, model,
    children, collapsed]``; a folded run of similar siblings is ``{"group": ...}`` with its count,
    total time and errors. ``next`` is the ``start`` of the next window (null at the end)."""
    tid = views.valid_trace_id(trace_id)
    req = views.TreeRequest(views.valid_span_id(start or ""), collapsed, expanded, opened, bool(all), limit)
    tw = await views.tree_window(request.app.state.store, tid, req) if tid else None
    if tw is None:
        return _json({"error": {"message": "trace not found"}}, 404)
    rows: list[Any] = []
    for r in tw.view.rows:
        if isinstance(r, queries.trace.SpanRow):
            rows.append([r.span_id, r.parent_id, r.depth, r.name, r.kind, r.start_ns, r.duration_ns, r.status, r.model,
                         r.children, r.collapsed])
        else:
            rows.append({"group": {"first_span_id": r.first_span_id, "name": r.name, "count": r.count, "depth": r.depth,
                                   "start_ns": r.start_ns, "end_ns": r.end_ns, "total_ms": r.total_ns / 1e6,
                                   "errors": r.errors}})
    return _json({"trace_id": tid, "tier": tw.view.tier, **tw.view.totals.as_json(), "rows": rows, "next": tw.view.next})


@router.get("/traces/{trace_id}/find", summary="Find in a trace: span ids matching the text, in tree order",
            dependencies=[needs(Perm.READ)])
async def api_trace_find(request: Request, trace_id: str,
                         q: str = Query(..., min_length=1, max_length=500,
                                        description="Words as the filter's free text means them (refund, refund*, \"order 4417\"; "
                                                    "over names, messages, prompts, tool I/O, events), status:error, key=value."),
                         n: int | None = Query(None, description="The trace's span count as the page shows it (reuses its tree).")) -> Response:
    tid = views.valid_trace_id(trace_id)
    found = await views.trace_find(request.app.state.store, tid, q, n) if tid else None
    if found is None:
        return _json({"error": {"message": "trace not found"}}, 404)
    ids, total = found
    return _json({"trace_id": tid, "query": q, "matches": ids, "total": total, "complete": total == len(ids)})


@router.get("/traces/{trace_id}/flame",
            summary="Flame view of a trace: one bar per (depth, pixel column), the longest span there; critical path marked",
            dependencies=[needs(Perm.READ)])
async def api_trace_flame(request: Request, trace_id: str,
                          from_ns: int | None = Query(None, description="Start of the time range (default: the trace's start)."),
                          to_ns: int | None = Query(None, description="End of the time range (default: the trace's end)."),
                          width: int = Query(1200, ge=1, le=4_000, description="Canvas width in pixels."),
                          depth_from: int = Query(0, ge=0, description="First tree level shown."),
                          depths: int = Query(60, ge=1, le=200, description="Tree levels shown."),
                          n: int | None = Query(None, description="The trace's span count as the page shows it.")) -> Response:
    """Columns: ``depth``, ``x0``, ``x1`` (pixels), ``kind`` (0 span, 1 LLM, 2 tool, 3 error), ``critical``,
    ``span_id``, ``name`` (index into ``names``). Bars are at most width x depths, whatever the trace's size."""
    tid = views.valid_trace_id(trace_id)
    fl = await views.trace_flame(request.app.state.store, tid, n, from_ns, to_ns, width, depth_from, depths) if tid else None
    if fl is None:
        return _json({"error": {"message": "trace not found"}}, 404)
    return _json({"trace_id": tid, "from_ns": fl.lo_ns, "to_ns": fl.hi_ns, "depth_from": fl.depth_from,
                  "max_depth": fl.max_depth, "depth": fl.depth, "x0": fl.x0, "x1": fl.x1, "kind": fl.kind,
                  "critical": fl.critical, "span_id": fl.span_id, "name": fl.name, "names": fl.names})


@router.get("/traces/{trace_id}/shape",
            summary="The trace's shape: per span name and model, count, total and p95 time, tokens, cost, errors",
            dependencies=[needs(Perm.READ)])
async def api_trace_shape(request: Request, trace_id: str) -> Response:
    tid = views.valid_trace_id(trace_id)
    found = await views.trace_shape(request.app.state.store, tid) if tid else None
    if found is None:
        return _json({"error": {"message": "trace not found"}}, 404)
    totals, rows = found
    return _json({"trace_id": tid, **totals.as_json(), "groups": rows})


@router.get("/traces/{trace_id}/spans/{span_id}",
            summary="One span: attributes, resource, events, links and its normalized input/output",
            dependencies=[needs(Perm.READ)])
async def api_span(request: Request, trace_id: str, span_id: str) -> Response:
    tid, sid = views.valid_trace_id(trace_id), views.valid_span_id(span_id)
    sv = await views.span_view(request.app.state.store, tid, sid) if tid and sid else None
    if sv is None:
        return _json({"error": {"message": "span not found"}}, 404)
    d = sv.detail
    return _json({"trace_id": d.trace_id, "tier": d.tier, "span": d.row.as_json(), "attributes": d.attributes, "resource": d.resource,
                  "scope": d.scope, "events": d.events, "links": d.links, "io": sv.io.as_json()})


@router.get("/sessions", summary="Sessions with traces in the range, most recent activity first",
            dependencies=[needs(Perm.READ)])
async def api_sessions(request: Request, q: str = Query("", description="Substring of the session id."),
                       range: str | None = Query(None, description=RANGE_DOC),
                       from_: str | None = Query(None, alias="from", description=FROM_DOC), to: str | None = None) -> Response:
    sv = await views.sessions_list(request.app.state.store, q, range, from_, to)
    return _json({"sessions": sv.rows, "range": {"from_ns": sv.tr.lo_ns, "to_ns": sv.tr.hi_ns}})


@router.get("/sessions/{session_id}", summary="One session: its traces (oldest first) as conversation turns",
            dependencies=[needs(Perm.READ)])
async def api_session(request: Request, session_id: str) -> Response:
    traces, turns = await views.session_view(request.app.state.store, session_id)
    if not traces:
        return _json({"error": {"message": "session not found"}}, 404)
    return _json({"session_id": session_id,
                  "turns": [{"trace": t["trace"].as_json(), "user": t["user"], "assistant": t["assistant"]} for t in turns]})


@router.get("/dashboard", summary="Requests, errors, latency, tokens and cost over time; by model and service",
            dependencies=[needs(Perm.READ)])
async def api_dashboard(request: Request, q: str = Query("", description=Q_DOC), range: str | None = Query(None, description=RANGE_DOC),
                        from_: str | None = Query(None, alias="from", description=FROM_DOC), to: str | None = None) -> Response:
    dv = await views.dashboard_view(request.app.state.store, q, range, from_, to)
    if dv.error is not None:
        return _filter_error(q, dv.error)
    assert dv.data is not None
    return _json({**dv.data, "range": {"from_ns": dv.tr.lo_ns, "to_ns": dv.tr.hi_ns}})


@router.get("/retention", summary="Retention: rules, the next run's plan, past runs, spans and bytes per tier and day",
            dependencies=[needs(Perm.RETENTION)])
async def api_retention(request: Request) -> Response:
    rv = await views.retention_view(request.app.state.store, getattr(request.app.state, "archiver", None))
    return _json(rv.as_json())


@router.get("/filter/fields", summary="The filter language: fields, operators and units",
            dependencies=[needs(Perm.READ)])
def api_filter_fields() -> Response:
    return _json({"fields": [{"name": f.name, "aliases": list(f.aliases), "kind": f.kind, "level": f.level,
                              "doc": f.doc} for f in filters.FIELDS],
                  "operators": list(filters.OPS), "duration_units": list(filters.DURATION_UNITS),
                  "status_values": sorted(set(filters.STATUS_VALUES))})


@router.get("/filter/parse", summary="Parse a filter: its syntax tree, or the error and its position",
            dependencies=[needs(Perm.READ)])
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
