"""One trace located in either tier, and one span with everything it carries (the tree of a trace
of any size, windows of it and its totals: :mod:`.trace_tree`).

A trace is first located (:func:`tracelake.store.tiers.locate`, shared with the archiver): in the hot tier through the id -> time lookup table
(unless it is being moved: then its archive copy is the visible one), else in the archive's index,
which gives its ``Day`` and ``Project`` partitions. Span reads then stay inside the hot time window
(the primary key prunes parts) or those archive partitions (one partition's files are read), and
deduplicate (``LIMIT 1 BY SpanId``: otel_traces is a ReplacingMergeTree, and a trace archived by two
runs has two copies).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from tracelake.query.params import Params
from tracelake.store.base import Store, StoreError
from tracelake.store.tiers import Location, locate
from tracelake.ui.queries import archive_files

@dataclass
class SpanRow:
    span_id: str
    parent_id: str
    name: str
    kind: str
    service: str
    start_ns: int
    duration_ns: int
    status: str  # ok / error / unset
    status_message: str
    operation: str
    model: str
    input_tokens: int
    output_tokens: int
    cost: float
    n_events: int
    has_exception: bool
    depth: int = 0
    children: int = 0
    orphan: bool = False
    position: int = -1  # in the trace's depth-first order (trace_tree)
    collapsed: bool = False  # as the viewer sees it in a window of a big trace
    hit: bool = False  # matches the page's highlighted search (trace_tree.marks)
    unpriced: bool = False  # tokens and no price for its model (cost shown as unpriced, counted as 0)

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_ns

    def as_json(self) -> dict[str, Any]:
        return {"span_id": self.span_id, "parent_span_id": self.parent_id, "name": self.name, "kind": self.kind,
                "service": self.service, "start_ns": self.start_ns, "duration_ms": self.duration_ns / 1e6,
                "status": self.status, "status_message": self.status_message, "operation": self.operation,
                "model": self.model, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cost_usd": self.cost, "unpriced": self.unpriced, "events": self.n_events, "depth": self.depth,
                "children": self.children}


def _status(code: str) -> str:
    c = code.lower()
    if "error" in c:
        return "error"
    if c in ("ok", "status_code_ok"):
        return "ok"
    return "unset"


def _source(p: Params, loc: Location, store: Store | None = None) -> str:
    """``FROM ... WHERE`` for the located trace's spans (the caller adds span conditions). An
    archived trace is read from its Parquet files directly when ``store`` knows them."""
    if loc.tier == "hot":
        return f"FROM otel_traces WHERE TraceId = {p.s(loc.trace_id)} AND {_within(p, loc.window)}"
    direct = _archive_files_source(p, loc, store) if store is not None else None
    if direct is not None:
        return direct
    days = ", ".join(p.add(d.isoformat(), "Date") for d in loc.days)
    projects = ", ".join(p.s(x) for x in loc.projects)
    return (f"FROM otel_traces_archive WHERE Day IN ({days}) AND Project IN ({projects}) "
            f"AND TraceId = {p.s(loc.trace_id)}")


def _archive_files_source(p: Params, loc: Location, store: Store) -> str | None:
    """The archived trace's spans read from the few Parquet files that can hold them
    (:mod:`.archive_files`) rather than through the engine table.

    Same rows as the view: only the runs the index shows as visible (``loc.runs``, from
    ``archived_traces``), only the partitions of projects the caller may see (``loc`` comes from
    the index, which a scoped caller reads filtered)."""
    if not loc.runs:
        return None
    index = archive_files.file_index(store)
    if index is None:
        return None
    parts = [(d.isoformat(), project) for d in loc.days for project in loc.projects]
    paths = index.files(loc.trace_id, parts, set(loc.runs), loc.window)
    if not paths:
        return None
    tid, runs = p.s(loc.trace_id), ", ".join(p.s(r) for r in loc.runs)
    # The trace's project prices its spans (a trace id in two projects: the default prices).
    project = p.s(loc.projects[0]) if len(loc.projects) == 1 else "''"
    source = archive_files.spans_source(index, paths, f"TraceId = {tid} AND RunId IN ({runs})", store.database, project)
    # As the view: a trace a restore has flipped back to hot is not read from the archive.
    return (f"FROM {source} WHERE TraceId = {tid} "
            f"AND TraceId NOT IN (SELECT TraceId FROM restore_flipped WHERE TraceId = {tid})")


def query_spans_arrow(store: Store, loc: Location, build) -> pa.Table:
    """Columns of ``build(params, source)``; an archived trace whose files changed under the read
    (a vacuum in between) is read again through the engine table."""
    p = Params()
    try:
        return store.query_arrow(build(p, _source(p, loc, store)), p.bound(store))
    except StoreError:
        if loc.tier != "archive":
            raise
    p = Params()
    return store.query_arrow(build(p, _source(p, loc)), p.bound(store))


def _query_spans(store: Store, loc: Location, build) -> list[dict[str, Any]]:
    """Rows of ``build(params, source)`` (see :func:`query_spans_arrow`)."""
    return query_spans_arrow(store, loc, build).to_pylist()


SPAN_COLUMNS = ("SpanId, ParentSpanId, SpanName, SpanKind, ServiceName, toUnixTimestamp64Nano(Timestamp) AS TsNs, "
                "Duration, StatusCode, StatusMessage, LlmOperation, LlmModel, InputTokens, OutputTokens, CostUsd, "
                "length(Events.Name) AS NEvents, has(Events.Name, 'exception') AS HasExc, Unpriced")


def _span_row(r: dict[str, Any]) -> SpanRow:
    """A SpanRow from a result row holding SPAN_COLUMNS."""
    return SpanRow(r["SpanId"], r["ParentSpanId"], r["SpanName"], r["SpanKind"], r["ServiceName"], int(r["TsNs"]),
                   int(r["Duration"]), _status(r["StatusCode"]), r["StatusMessage"], r["LlmOperation"], r["LlmModel"],
                   int(r["InputTokens"]), int(r["OutputTokens"]), float(r["CostUsd"]), int(r["NEvents"]),
                   bool(r["HasExc"]), unpriced=bool(r.get("Unpriced", False)))


def _within(p: Params, window: tuple[int, int]) -> str:
    """Spans inside a trace's time window (from trace_window), so the primary key prunes parts."""
    return (f"Timestamp >= fromUnixTimestamp64Nano({p.i(window[0])}) "
            f"AND Timestamp <= fromUnixTimestamp64Nano({p.i(window[1])})")


def _read_spans(store: Store, loc: Location) -> list[SpanRow]:
    """Every span of the located trace, start-ordered (tools and tests; pages read windows of
    :mod:`.trace_tree`)."""
    rows = _query_spans(store, loc, lambda p, source: f"SELECT {SPAN_COLUMNS} {source} "
                                                      f"ORDER BY TsNs, SpanId LIMIT 1 BY SpanId")
    return [_span_row(r) for r in rows]


@dataclass
class SpanDetail:
    row: SpanRow
    trace_id: str
    attributes: dict[str, str]
    resource: dict[str, str]
    scope: str
    events: list[dict[str, Any]]
    links: list[dict[str, str]]
    tier: str = "hot"


def get_span(store: Store, trace_id: str, span_id: str, loc: Location | None = None) -> SpanDetail | None:
    """One span of the trace with its attributes, resource, events and links; ``loc`` from
    :func:`locate` when the caller has it (saves the lookup)."""
    loc = loc or locate(store, trace_id)
    if loc is None:
        return None
    rows = _query_spans(store, loc, lambda p, source: (
        f"SELECT {SPAN_COLUMNS}, SpanAttributes, ResourceAttributes, ScopeName, ScopeVersion, "
        f"arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS EvTs, Events.Name AS EvName, "
        f"Events.Attributes AS EvAttrs, Links.TraceId AS LTrace, Links.SpanId AS LSpan "
        f"{source} AND SpanId = {p.s(span_id)} LIMIT 1"))
    if not rows:
        return None
    r = rows[0]
    row = _span_row(r)
    events = [{"time_ns": int(t), "name": n, "attributes": dict(a)}
              for t, n, a in zip(r["EvTs"], r["EvName"], r["EvAttrs"])]
    links = [{"trace_id": t, "span_id": s} for t, s in zip(r["LTrace"], r["LSpan"])]
    scope = r["ScopeName"] + (f" {r['ScopeVersion']}" if r["ScopeVersion"] else "")
    return SpanDetail(row, trace_id, dict(r["SpanAttributes"]), dict(r["ResourceAttributes"]), scope, events, links,
                      loc.tier)
