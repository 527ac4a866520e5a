"""The HTML pages: traces, trace, sessions, session, dashboard (htmx fragments for partial updates).

A bad filter or time range is a 200 page with an inline message; an unknown id is a 404 page.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from tracelake.auth.roles import Perm
from tracelake.auth.routes import needs
from tracelake.query import filters
from tracelake.ui import charts, views
from tracelake.ui.highlight import Highlight
from tracelake.ui.render import qs, templates
from tracelake.ui.security import is_htmx

router = APIRouter(include_in_schema=False)


def _store(request: Request):
    return request.app.state.store


def _page(request: Request, name: str, ctx: dict, status: int = 200, block: str | None = None) -> Response:
    ctx = {"request": request, "nav": ctx.pop("nav", ""), **ctx}
    if block:
        return templates.TemplateResponse(request, name, ctx, status_code=status, block_name=block)
    return templates.TemplateResponse(request, name, ctx, status_code=status)


@router.get("/", response_class=HTMLResponse, dependencies=[needs(Perm.READ)])
def home() -> Response:
    return RedirectResponse("/traces", status_code=307)


@router.get("/traces", response_class=HTMLResponse, dependencies=[needs(Perm.READ)])
async def traces_page(request: Request, q: str = "", range: str | None = None, from_: str | None = Query(None, alias="from"),
                      to: str | None = None, cursor: str | None = None, limit: int | None = None,
                      live: str | None = None, fragment: str | None = None) -> Response:
    if fragment is None and (tid := views.bare_trace_id(q)) and await views.trace_exists(_store(request), tid):
        return RedirectResponse(f"/traces/{tid}", status_code=303)  # a pasted trace id opens the trace
    view = await views.trace_list(_store(request), q, range, from_, to, cursor, limit)
    # Live updates only make sense on the first page of a range that ends now.
    live_on = live != "0" and not cursor and view.tr.relative
    ctx = {"nav": "traces", "v": view, "live": live_on, "add_term": filters.add_term, "fields": filters.FIELDS}
    if fragment == "rows" and is_htmx(request):
        return _page(request, "traces.html", ctx, block="rows")
    return _page(request, "traces.html", ctx)


@router.get("/traces/{trace_id}", response_class=HTMLResponse, dependencies=[needs(Perm.READ)])
async def trace_page(request: Request, trace_id: str, span: str | None = None, hl: str | None = None) -> Response:
    """``hl``: a search to show (the trace list's free text): matching spans marked, words highlighted."""
    tid = views.valid_trace_id(trace_id)
    sid = views.valid_span_id(span or "")
    highlight = Highlight.from_query(hl)
    tv = await views.trace_view(_store(request), tid, sid, highlight) if tid else None
    if tv is None:
        return _page(request, "notfound.html", {"nav": "traces", "what": "trace", "ident": trace_id}, 404)
    selected = sid or tv.root.span_id
    sv = await views.span_view(_store(request), tv.trace_id, selected, tv.location, highlight)
    return _page(request, "trace.html", {"nav": "traces", "t": tv, "sv": sv, "selected": selected})


@router.get("/traces/{trace_id}/rows", response_class=HTMLResponse, dependencies=[needs(Perm.READ)])
async def trace_rows(request: Request, trace_id: str, start: str | None = None, collapsed: str | None = None,
                     expanded: str | None = None, opened: str | None = None, all: int = 0,
                     selected: str | None = None, n: int | None = None, reveal: str | None = None,
                     hl: str | None = None) -> Response:
    """A window of a big trace's rows (htmx: appended as the viewer scrolls, or after a toggle)."""
    tid = views.valid_trace_id(trace_id)
    req = views.TreeRequest(views.valid_span_id(start or ""), collapsed, expanded, opened, bool(all), spans=n,
                            reveal=views.valid_span_id(reveal or ""), hl=hl)
    tw = await views.tree_window(_store(request), tid, req) if tid else None
    if tw is None:
        return _page(request, "notfound.html", {"what": "trace", "ident": trace_id}, 404, block="content")
    return _page(request, "_span_rows.html", {"t": tw.view, "selected": views.valid_span_id(selected or "")})


@router.get("/traces/{trace_id}/shape", response_class=HTMLResponse, dependencies=[needs(Perm.READ)])
async def trace_shape(request: Request, trace_id: str) -> Response:
    """The trace's shape: per span name and model, count, time, tokens, cost and errors (htmx)."""
    tid = views.valid_trace_id(trace_id)
    found = await views.trace_shape(_store(request), tid) if tid else None
    if found is None:
        return _page(request, "notfound.html", {"what": "trace", "ident": trace_id}, 404, block="content")
    totals, rows = found
    return _page(request, "_trace_shape.html", {"trace_id": tid, "totals": totals, "rows": rows})


@router.get("/traces/{trace_id}/spans/{span_id}", response_class=HTMLResponse, dependencies=[needs(Perm.READ)])
async def span_panel(request: Request, trace_id: str, span_id: str, attr: str = "", hl: str | None = None) -> Response:
    tid, sid = views.valid_trace_id(trace_id), views.valid_span_id(span_id)
    if not is_htmx(request) and tid and sid:
        return RedirectResponse(f"/traces/{tid}?{qs(span=sid, hl=hl)}", status_code=307)
    sv = await views.span_view(_store(request), tid, sid, hl=Highlight.from_query(hl)) if tid and sid else None
    if sv is None:
        return _page(request, "notfound.html", {"what": "span", "ident": span_id}, 404, block="content")
    sv.attr_filter = attr
    return _page(request, "span.html", {"sv": sv})


@router.get("/traces/{trace_id}/spans/{span_id}/full", dependencies=[needs(Perm.READ)])
async def span_full_value(request: Request, trace_id: str, span_id: str, path: str) -> Response:
    """The whole of a truncated value, as JSON text: the page puts it in with textContent."""
    tid, sid = views.valid_trace_id(trace_id), views.valid_span_id(span_id)
    sv = await views.span_view(_store(request), tid, sid) if tid and sid else None
    value = views.full_value(sv, path) if sv else None
    if value is None:
        return JSONResponse({"error": "no such value"}, status_code=404)
    return JSONResponse({"text": value})


@router.get("/sessions", response_class=HTMLResponse, dependencies=[needs(Perm.READ)])
async def sessions_page(request: Request, q: str = "", range: str | None = None,
                        from_: str | None = Query(None, alias="from"), to: str | None = None) -> Response:
    sv = await views.sessions_list(_store(request), q, range, from_, to)
    return _page(request, "sessions.html", {"nav": "sessions", "rows": sv.rows, "tr": sv.tr, "q": sv.q})


@router.get("/sessions/{session_id}", response_class=HTMLResponse, dependencies=[needs(Perm.READ)])
async def session_page(request: Request, session_id: str) -> Response:
    traces, turns = await views.session_view(_store(request), session_id)
    if not traces:
        return _page(request, "notfound.html", {"nav": "sessions", "what": "session", "ident": session_id}, 404)
    return _page(request, "session.html", {"nav": "sessions", "sid": session_id, "traces": traces, "turns": turns})


# The Retention page's tabs: one job each, so no tab is every table at once.
RETENTION_TABS = {"overview": "Overview", "rules": "Rules", "keep": "Pins and holds", "erase": "Erasure and restore"}


@router.get("/retention", response_class=HTMLResponse, dependencies=[needs(Perm.RETENTION)])
async def retention_page(request: Request, tab: str = "overview", edit: int | None = None,
                         applied: int | None = None) -> Response:
    if tab not in RETENTION_TABS:
        return _page(request, "notfound.html", {"nav": "retention", "what": "retention tab", "ident": tab}, 404)
    return await retention_response(request, tab="rules" if edit or applied else tab, edit=edit, applied=applied)


async def retention_response(request: Request, tab: str = "rules", rules_editor: Any = None, edit: int | None = None,
                             applied: int | None = None) -> Response:
    """One tab of the Retention page (also the rules tab after a form posted without htmx, with its
    result in place). Only the open tab's data is read."""
    ctx: dict[str, Any] = {"nav": "retention", "tab": tab, "tabs": RETENTION_TABS, "r": None, "charts": []}
    if tab == "overview":
        rv = await views.retention_view(_store(request), getattr(request.app.state, "archiver", None))
        ctx.update(r=rv, charts=charts.tier_charts(rv.tiers))
    elif tab == "rules":
        from tracelake.ui import routes_rules  # rules: the editor section

        ctx["rules"] = rules_editor or await routes_rules.editor(request, edit_version=edit, applied_version=applied)
    return _page(request, "retention.html", ctx)


@router.get("/dashboard", response_class=HTMLResponse, dependencies=[needs(Perm.READ)])
async def dashboard_page(request: Request, q: str = "", range: str | None = None,
                         from_: str | None = Query(None, alias="from"), to: str | None = None) -> Response:
    dv = await views.dashboard_view(_store(request), q, range, from_, to)
    ch = charts.dashboard_charts(dv.data) if dv.data else []
    return _page(request, "dashboard.html", {"nav": "dashboard", "tr": dv.tr, "filt": dv.filt, "q": dv.q, "d": dv.data,
                                             "charts": ch})
