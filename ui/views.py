"""Page data shared by the HTML pages and the JSON API: request params in, plain data out."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from tracelake.query.filters import Explained, FilterError, explain
from tracelake.store.base import Store
from tracelake.ui import messages, queries
from tracelake.ui.render import TimeRange, time_range

TRACE_ID_RE = re.compile(r"^[0-9a-fA-F]{1,32}$")
SPAN_ID_RE = re.compile(r"^[0-9a-fA-F]{1,16}$")
PAGE_SIZES = (25, 50, 100, 200)


@dataclass
class ListView:
    q: str
    filt: Explained
    tr: TimeRange
    limit: int
    cursor: str = ""
    page: queries.trace_list.TracePage | None = None
    cursor_error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def error(self) -> FilterError | None:
        return self.filt.error


def clamp_limit(limit: int | None) -> int:
    if not limit:
        return 50
    return max(1, min(200, int(limit)))


async def trace_list(store: Store, q: str, range_: str | None, frm: str | None, to: str | None,
                     cursor: str | None, limit: int | None) -> ListView:
    view = ListView(q or "", explain(q or ""), time_range(range_, frm, to), clamp_limit(limit), cursor or "")
    if view.error is not None:
        return view
    cur = None
    if cursor:
        cur = queries.trace_list.decode_cursor(cursor)
        if cur is None:
            view.cursor_error = "the page cursor is not valid; showing the first page"
    view.page = await run_in_threadpool(queries.trace_list.list_traces, store, view.filt.node, view.tr.lo_ns, view.tr.hi_ns,
                                        cur, view.limit)
    return view


def valid_trace_id(trace_id: str) -> str | None:
    return trace_id.lower() if TRACE_ID_RE.match(trace_id) else None


def valid_span_id(span_id: str) -> str | None:
    return span_id.lower() if SPAN_ID_RE.match(span_id) else None


@dataclass
class TraceView:
    trace_id: str
    spans: list[queries.trace.SpanRow]
    start_ns: int
    end_ns: int
    errors: int
    services: list[str]
    input_tokens: int
    output_tokens: int
    cost: float
    location: queries.trace.Location

    @property
    def tier(self) -> str:
        return self.location.tier

    @property
    def duration_ns(self) -> int:
        return max(1, self.end_ns - self.start_ns)

    def bar(self, s: queries.trace.SpanRow) -> tuple[float, float]:
        """(x, width) of the span's bar on a 0..1000 scale, at least 2 units wide to stay visible."""
        x = (s.start_ns - self.start_ns) / self.duration_ns * 1000
        w = max(2.0, s.duration_ns / self.duration_ns * 1000)
        x = min(max(0.0, x), 998.0)
        return round(x, 2), round(min(w, 1000 - x), 2)


async def trace_view(store: Store, trace_id: str) -> TraceView | None:
    found = await run_in_threadpool(queries.trace.get_trace, store, trace_id)
    if not found:
        return None
    loc, spans = found
    start = min(s.start_ns for s in spans)
    end = max(s.end_ns for s in spans)
    return TraceView(trace_id, spans, start, end, sum(1 for s in spans if s.status == "error"),
                     sorted({s.service for s in spans}), sum(s.input_tokens for s in spans),
                     sum(s.output_tokens for s in spans), sum(s.cost for s in spans), loc)


@dataclass
class SpanView:
    detail: queries.trace.SpanDetail
    io: messages.SpanIO
    attr_filter: str = ""

    @property
    def exceptions(self) -> list[dict[str, Any]]:
        return [e for e in self.detail.events if e["name"] == "exception"]


def _span_view(store: Store, trace_id: str, span_id: str,
               loc: queries.trace.Location | None = None) -> SpanView | None:
    detail = queries.trace.get_span(store, trace_id, span_id, loc)
    if detail is None:
        return None
    io = messages.normalize(detail.attributes)
    shas = [m.sha256 for m in io.attachments if m.sha256]
    if shas:
        messages.apply_attachment_meta(io, queries.attachments.attachment_meta(store, shas))
    return SpanView(detail, io)


async def span_view(store: Store, trace_id: str, span_id: str,
                    loc: queries.trace.Location | None = None) -> SpanView | None:
    return await run_in_threadpool(_span_view, store, trace_id, span_id, loc)


def full_value(view: SpanView, path: str) -> str | None:
    """The untruncated text a "show all" button asks for: ``attr:<key>``, ``res:<key>``,
    ``io:<section>.<message>.<part>``, ``val:input|output``, ``doc:<n>``, ``event:<n>.<key>``."""
    kind, _, rest = path.partition(":")
    d = view.detail
    if kind == "attr":
        from tracelake.ui.render import pretty_value

        v = d.attributes.get(rest)
        return pretty_value(v) if v is not None else None
    if kind == "res":
        return d.resource.get(rest)
    if kind == "val":
        v = view.io.input_value if rest == "input" else view.io.output_value if rest == "output" else None
        return v.text if v else None
    try:
        if kind == "io":
            section, mi, pi = rest.split(".")
            msgs = {"system": view.io.system, "input": view.io.input, "output": view.io.output}[section]
            return msgs[int(mi)].parts[int(pi)].text
        if kind == "doc":
            return view.io.documents[int(rest)].content
        if kind == "event":
            ei, _, key = rest.partition(".")
            return d.events[int(ei)]["attributes"].get(key)
        if kind == "tool":
            return view.io.tools[int(rest)].text
    except (ValueError, IndexError, KeyError):
        return None
    return None


@dataclass
class SessionsView:
    q: str
    tr: TimeRange
    rows: list[dict[str, Any]]


async def sessions_list(store: Store, q: str, range_: str | None, frm: str | None, to: str | None) -> SessionsView:
    tr = time_range(range_, frm, to)
    rows = await run_in_threadpool(queries.sessions.list_sessions, store, tr.lo_ns, tr.hi_ns, (q or "").strip())
    return SessionsView(q or "", tr, rows)


@dataclass
class DashboardView:
    q: str
    filt: Explained
    tr: TimeRange
    data: dict[str, Any] | None = None  # None when the filter has an error

    @property
    def error(self) -> FilterError | None:
        return self.filt.error


async def dashboard_view(store: Store, q: str, range_: str | None, frm: str | None, to: str | None) -> DashboardView:
    view = DashboardView(q or "", explain(q or ""), time_range(range_, frm, to))
    if view.error is None:
        view.data = await run_in_threadpool(queries.dashboard.dashboard, store, view.tr.lo_ns, view.tr.hi_ns, view.filt.node)
    return view


def conversation(store: Store, session_id: str) -> tuple[list[queries.trace_list.TraceRow], list[dict[str, Any]]]:
    """The session's traces (oldest first) and one turn per trace: what the user said, what came back."""
    traces = queries.sessions.session_traces(store, session_id)
    spans = queries.sessions.conversation_spans(store, traces)
    turns = []
    for t in traces:
        ss = spans.get(t.trace_id, [])
        root = next((s for s in ss if s["ParentSpanId"] == ""), None)
        llm = [s for s in ss if s["ParentSpanId"] != "" or s is not root]
        user_text = assistant_text = ""
        if root is not None:
            io = messages.normalize(root["SpanAttributes"])
            user_text = messages.summary_text([m for m in io.input if m.role == "user"]) or (io.input_value.text[:400] if io.input_value else "")
            assistant_text = messages.summary_text(io.output) or (io.output_value.text[:400] if io.output_value else "")
        llm_spans = [s for s in llm if s["LlmOperation"] in ("chat", "llm", "text_completion", "generate_content", "completion")]
        if llm_spans and not user_text:
            io = messages.normalize(llm_spans[0]["SpanAttributes"])
            user_text = messages.summary_text([m for m in io.input if m.role == "user"])
        if llm_spans and not assistant_text:
            io = messages.normalize(llm_spans[-1]["SpanAttributes"])
            assistant_text = messages.summary_text(io.output)
        turns.append({"trace": t, "user": user_text, "assistant": assistant_text})
    return traces, turns


async def retention_view(store: Store, archiver: Any) -> queries.retention.Retention:
    """The Retention page: ``archiver`` is ``app.state.archiver`` (None without a retention policy)."""
    return await run_in_threadpool(queries.retention.retention, store, archiver)


async def session_view(store: Store, session_id: str) -> tuple[list[queries.trace_list.TraceRow], list[dict[str, Any]]]:
    return await run_in_threadpool(conversation, store, session_id)
