"""The trace list: newest-first pages of traces matching a filter, with a (start, id) cursor,
over the hot tier and, when the range reaches back that far, the archive (:mod:`.archive_list`).

Both tiers order by (start, trace id) descending, so one cursor serves the merged list: the hot
page is read first; the archive is asked only for rows that could still make this page (newer
than the hot page's last row when the hot tier has more), and the two are merged.

The trace list is the hot path. Aggregating every trace of a 24 h range costs ~400 ms at 120k
traces, so the list scans time windows newest-first (5 min, then x4 each time) and stops once a
page is full; each window computes only the aggregates the filter needs, and the page's rows are
then re-aggregated exactly by TraceId (primary key lookups). A trace whose spans straddle a window
edge can look newer in the window than it is: the exact pass drops it and it is found, whole, in
the older window.

trace_summary holds several partial rows per trace until merged, so it is always aggregated
``GROUP BY TraceId``.
"""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

from tracelake.query.compile import ALL_AGGS, Compiler, aggs, has_span_terms
from tracelake.query.filters import Node
from tracelake.query.params import Params, query
from tracelake.store import tiers
from tracelake.store.base import Store
from tracelake.store.scores import few_scores

HEX_ID = re.compile(r"^[0-9a-f]{1,32}$")
SPAN_SLACK_NS = 3600 * 10**9  # spans of a trace are looked for up to 1 h after the trace's window
FIRST_WINDOW_NS = 300 * 10**9
SPAN_FILTER_FIRST_WINDOW_NS = 30 * 10**9
WINDOW_GROWTH = 8  # span-level terms read payloads: start smaller


@dataclass
class TraceRow:
    trace_id: str
    start_ns: int
    end_ns: int
    root: str
    root_service: str
    spans: int
    errors: int
    services: list[str]
    models: list[str]
    input_tokens: int
    output_tokens: int
    cost: float
    session: str
    user: str
    project: str
    tier: str = "hot"  # 'hot' | 'archive': where the trace was read from
    unpriced: int = 0  # LLM spans with tokens and no price (their cost counts as 0)
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    matched: Any = None  # the filter has free text: the span that matched (ui.queries.matched.Matched)

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)

    @property
    def status(self) -> str:
        return "error" if self.errors else "ok"

    def as_json(self) -> dict[str, Any]:
        return {"trace_id": self.trace_id, "start_ns": self.start_ns, "end_ns": self.end_ns,
                "duration_ms": self.duration_ns / 1e6, "name": self.root, "root_service": self.root_service,
                "status": self.status, "error_spans": self.errors, "spans": self.spans,
                "services": self.services, "models": self.models, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "cost_usd": self.cost, "session_id": self.session,
                "user_id": self.user, "project": self.project, "tier": self.tier,
                "unpriced_spans": self.unpriced, "cache_read_tokens": self.cache_read_tokens,
                "cache_write_tokens": self.cache_write_tokens, "reasoning_tokens": self.reasoning_tokens,
                **({"matched_span": self.matched.as_json()} if self.matched is not None else {})}


@dataclass
class TracePage:
    rows: list[TraceRow]
    next_cursor: str | None
    windows_scanned: int = 0


def encode_cursor(start_ns: int, trace_id: str) -> str:
    return base64.urlsafe_b64encode(f"{start_ns}:{trace_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str] | None:
    """(start_ns, trace_id) of the last row shown, or None if the cursor is not ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, tid = raw.split(":", 1)
        if not HEX_ID.match(tid):
            return None
        return int(ts), tid
    except (ValueError, UnicodeDecodeError):
        return None


def trace_row(r: dict[str, Any], tier: str = "hot") -> TraceRow:
    """A TraceRow from a result row holding every alias of ALL_AGGS."""
    return TraceRow(r["TraceId"], int(r["TS"]), int(r["TE"]), r["Root"], r["RootService"], int(r["NSpans"]),
                    int(r["Errors"]), sorted(r["Svcs"]), sorted(r["Mods"]), int(r["InTok"]), int(r["OutTok"]),
                    float(r["CostUsd"]), r["Sess"], r["Usr"], r["Proj"], tier, int(r["Unpriced"]),
                    int(r["CacheReadTok"]), int(r["CacheWriteTok"]), int(r["ReasonTok"]))


def _exact(store: Store, node: Node | None, ids: list[str], lo_ns: int, hi_ns: int) -> dict[str, TraceRow]:
    """Full aggregates of ``ids`` over all their rows, keeping those that start in [lo, hi)
    and pass the filter on exact data."""
    if not ids:
        return {}
    p = Params()
    id_list = ", ".join(p.s(t) for t in ids)
    comp = Compiler(p, p.i(lo_ns), p.i(hi_ns + SPAN_SLACK_NS), scope_ids=id_list)
    # Top-level span terms were answered exactly by the candidate query (they select whole
    # traces); only the trace-level rest is re-checked on the complete aggregates.
    _, having = comp.split(node, None, None)
    sql = (f"SELECT TraceId, {aggs(ALL_AGGS)} FROM trace_summary WHERE TraceId IN ({id_list}) "
           f"GROUP BY TraceId HAVING TS >= {p.i(lo_ns)} AND TS < {p.i(hi_ns)} AND {having}")
    return {r["TraceId"]: trace_row(r) for r in query(store, sql, p)}


def list_traces(store: Store, node: Node | None, lo_ns: int, hi_ns: int, cursor: tuple[int, str] | None = None,
                limit: int = 50) -> TracePage:
    """Newest-first page of traces, hot and archived, that started in [lo_ns, hi_ns) and match ``node``."""
    from tracelake.ui.queries import archive_list

    hot = tiers.read_hot(store, lambda visible: list_hot(store, node, lo_ns, hi_ns, cursor, limit, visible))
    if not tiers.archive_reaches(store, lo_ns):
        return hot
    arch_lo = lo_ns
    if hot.next_cursor is not None:
        # The hot page is full and the hot tier has more: only archived traces newer than its
        # last row can still be on this page.
        last = hot.rows[-1]
        newest = tiers.newest_archived_ns(store)
        if newest is None or newest < last.start_ns:
            return hot
        arch_lo = max(lo_ns, last.start_ns)
    archived = archive_list.list_archived(store, node, arch_lo, hi_ns, cursor, limit + 1)
    merged = sorted([*hot.rows, *archived.rows], key=lambda r: (r.start_ns, r.trace_id), reverse=True)
    seen: set[str] = set()
    uniq = [r for r in merged if not (r.trace_id in seen or seen.add(r.trace_id))]  # type: ignore[func-returns-value]
    page = uniq[:limit]
    more = len(uniq) > limit or hot.next_cursor is not None
    nxt = encode_cursor(page[-1].start_ns, page[-1].trace_id) if more and page else None
    return TracePage(page, nxt, hot.windows_scanned + archived.windows_scanned)


def list_hot(store: Store, node: Node | None, lo_ns: int, hi_ns: int, cursor: tuple[int, str] | None = None,
             limit: int = 50, visible: str = "1") -> TracePage:
    """Newest-first page of hot traces that started in [lo_ns, hi_ns) and match ``node``;
    ``visible`` is the hot readers' clause (:func:`tiers.read_hot`)."""
    rows: list[TraceRow] = []
    upper_ts, upper_id = (cursor if cursor else (hi_ns, ""))
    window = SPAN_FILTER_FIRST_WINDOW_NS if has_span_terms(node) else FIRST_WINDOW_NS
    # Start the first window at the newest trace, not at the range's end: ranges are often wider
    # than the data (a 7-day range over traces of this morning).
    p0 = Params()
    newest = query(store, f"SELECT toUnixTimestamp64Nano(max(Start)) AS M, count() AS N FROM trace_summary "
                          f"WHERE Start >= fromUnixTimestamp64Nano({p0.i(lo_ns)}) "
                          f"AND Start < fromUnixTimestamp64Nano({p0.i(upper_ts)})", p0)
    if not newest or not newest[0]["N"]:
        return TracePage([], None, 0)
    newest_ts = int(newest[0]["M"]) + 1
    if not upper_id:
        upper_ts = min(upper_ts, newest_ts)
    scanned = 0
    few: bool | None = None
    while len(rows) <= limit and upper_ts > lo_ns:
        w_lo = max(lo_ns, upper_ts - window)
        want = limit + 1 - len(rows)
        p = Params()
        comp = Compiler(p, p.i(w_lo), p.i(upper_ts + SPAN_SLACK_NS))
        prefilter, having = comp.split(node, p.i(w_lo), p.i(upper_ts + SPAN_SLACK_NS))
        if few is None:  # asked once per list: the filter's score names are the same in every window
            few = few_scores(store, comp.score_names)
        if w_lo > lo_ns and (comp.selective or few):
            # Few traces match anywhere: one pass over the whole range beats growing windows.
            window = upper_ts - lo_ns
            continue
        needs = ["TS"] + sorted(comp.needs - {"TS"})
        # (TS, TraceId) < upper: the cursor, or the previous window's lower edge.
        if upper_id:
            bound = f"(TS < {p.i(upper_ts)} OR (TS = {p.i(upper_ts)} AND TraceId < {p.s(upper_id)}))"
        else:
            bound = f"TS < {p.i(upper_ts)}"
        sql = (f"SELECT TraceId, {aggs(needs)} FROM trace_summary "
               f"WHERE Start >= fromUnixTimestamp64Nano({p.i(w_lo)}) "
               f"AND Start < fromUnixTimestamp64Nano({p.i(upper_ts + SPAN_SLACK_NS)}) AND {prefilter} AND {visible} "
               f"GROUP BY TraceId HAVING TS >= {p.i(w_lo)} AND {bound} AND {having} "
               f"ORDER BY TS DESC, TraceId DESC LIMIT {int(want) + 8}")
        cands = query(store, sql, p)
        scanned += 1
        exact = _exact(store, node, [c["TraceId"] for c in cands], w_lo, hi_ns)
        for c in cands:
            r = exact.get(c["TraceId"])
            if r is not None and (r.start_ns, r.trace_id) < (upper_ts, upper_id or "\uffff"):
                rows.append(r)
        if len(cands) >= want + 8:
            # The window had more: carry on below the last candidate.
            last = cands[-1]
            upper_ts, upper_id = int(last["TS"]), last["TraceId"]
        else:
            upper_ts, upper_id = w_lo, ""
            window *= WINDOW_GROWTH
    rows.sort(key=lambda r: (r.start_ns, r.trace_id), reverse=True)
    # Dedupe (a straddling trace can be a candidate of two windows).
    seen: set[str] = set()
    uniq = [r for r in rows if not (r.trace_id in seen or seen.add(r.trace_id))]  # type: ignore[func-returns-value]
    page = uniq[:limit]
    nxt = encode_cursor(page[-1].start_ns, page[-1].trace_id) if len(uniq) > limit and page else None
    return TracePage(page, nxt, scanned)
