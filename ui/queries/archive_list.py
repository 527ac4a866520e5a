"""The trace list over the archive: newest-first rows of ``archived_traces`` matching a filter.

The archive's index has one finalized row per trace, so trace-level terms are plain conditions on
its columns (no aggregation, no windows): one ``ORDER BY TS DESC LIMIT n`` query over the range.

Span-level terms read archived spans: a scan of a day's span payloads costs ~1.5 s per million
spans, while checking a few hundred given traces reads only the files of their time window (each
file holds the traces of a range of start times) and, inside them, the row groups holding them
(sorted by TraceId). So span terms are first checked on the newest candidate traces of the index
(those passing the filter's trace-level terms), 64 then 512 then 4096 of them, read straight from
their files (:mod:`.archive_files`; the engine view cannot prune files by time); that fills a page
whenever the term is not rare. Once the match rate says the next steps cannot fill the page (a
rare term), the rest of the range below the last candidate is scanned through
``otel_traces_archive`` day by day, newest first (1 day, then 4x more days each step), each step
bounded to its ``Day`` partitions.
"""
from __future__ import annotations

from datetime import date, datetime, timezone

from tracelake.query.compile import ALL_AGGS, ARCHIVE, Compiler, Tier, aggs, has_span_terms
from tracelake.query.filters import And, Node
from tracelake.query.params import Params, query
from tracelake.store.base import Store, StoreError
from tracelake.ui.queries import archive_files, archive_search
from tracelake.ui.queries.trace_list import HEX_ID, SPAN_SLACK_NS, TracePage, TraceRow, trace_row

DAY_NS = 86400 * 10**9
DAY_STEP_GROWTH = 4
CANDIDATE_STEPS = (64, 512, 4096)
DUP_MARGIN = 8  # a trace archived by two runs has two index rows: read a few more, keep one


def _day_ns(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp()) * 10**9


def _range(p: Params, lo_ns: int, hi_ns: int, upper: tuple[int, str]) -> str:
    """Index rows starting in [lo_ns, hi_ns) and below the cursor ``upper`` (partitions pruned by Day)."""
    upper_ts, upper_id = upper
    lo, hi = p.i(lo_ns), p.i(min(hi_ns, upper_ts + 1))
    if upper_id:
        bound = f"(TS < {p.i(upper_ts)} OR (TS = {p.i(upper_ts)} AND TraceId < {p.s(upper_id)}))"
    else:
        bound = f"TS < {p.i(upper_ts)}"
    return (f"Day >= toDate(fromUnixTimestamp64Nano({lo})) AND Day <= toDate(fromUnixTimestamp64Nano({hi})) "
            f"AND Start >= fromUnixTimestamp64Nano({lo}) AND Start < fromUnixTimestamp64Nano({hi}) AND {bound}")


def _rows(store: Store, node: Node | None, lo_ns: int, hi_ns: int, upper: tuple[int, str], want: int,
          ids: list[str] | None = None, narrowed: archive_search.Narrowed | None = None) -> list[TraceRow]:
    """Archived traces with start in [lo_ns, hi_ns), below the cursor ``upper``, matching ``node``;
    only among ``ids`` when given (then span subqueries read only those traces' spans, from their
    files when the file list is at hand, else through the view); span subqueries read only the
    ``narrowed`` row groups when given."""
    def run(direct: bool) -> list[TraceRow]:
        p = Params()
        scope, tier = "", ARCHIVE
        if narrowed is not None and direct:
            tier = archive_search.narrowed_tier(store, p, narrowed) or ARCHIVE
        if ids is not None:
            scope = f"SELECT arrayJoin(splitByChar(',', {p.s(','.join(ids))}))"  # hex ids: never a comma
            if direct:
                tier = _files_tier(store, p, scope) or ARCHIVE
        if tier is ARCHIVE and has_span_terms(node):
            archive_files.OPENED["view_scans"] += 1
        cond = Compiler(p, p.i(lo_ns), p.i(hi_ns + SPAN_SLACK_NS), scope_ids=scope, tier=tier).compile(node)
        only = f"AND TraceId IN ({scope}) " if scope else ""
        sql = (f"SELECT TraceId, {aggs(ALL_AGGS, ARCHIVE)} FROM archived_traces "
               f"WHERE {_range(p, lo_ns, hi_ns, upper)} {only}AND {cond} "
               f"ORDER BY TS DESC, TraceId DESC LIMIT {int(want) + DUP_MARGIN}")
        return [trace_row(r, "archive") for r in query(store, sql, p)]

    if ids is None and narrowed is None:
        return run(False)
    try:
        return run(True)
    except StoreError:  # a file vacuumed between the list and the read: the view sees the new version
        return run(False)


def _files_tier(store: Store, p: Params, scope: str) -> Tier | None:
    """The archive tier with spans read from the files that can hold the traces of ``scope`` (their
    partitions and time window, from every index row of theirs: a trace archived twice has two);
    None when the file list is not at hand."""
    index = archive_files.file_index(store)
    if index is None:
        return None
    rows = query(store, "SELECT toString(Day) AS D, toString(Project) AS P, toUnixTimestamp64Nano(min(Start)) AS S, "
                        f"toUnixTimestamp64Nano(max(End)) AS E FROM archived_traces WHERE TraceId IN ({scope}) "
                        "GROUP BY D, P", p)
    if not rows:
        return None
    window = (min(r["S"] for r in rows) - 10**9, max(r["E"] for r in rows) + 10**9)
    paths = index.in_window(sorted((r["D"], r["P"]) for r in rows), window)
    if not paths:
        return None
    return archive_files.visible_files_tier(store, index, p, paths, f"TraceId IN ({scope})")


def _candidates(store: Store, node: Node | None, lo_ns: int, hi_ns: int, upper: tuple[int, str],
                k: int) -> list[tuple[int, str]]:
    """(TS, TraceId) of the newest ``k`` index rows below ``upper`` that pass the filter's top-level
    trace-level terms (the ones that read no spans)."""
    items = list(node.items) if isinstance(node, And) else [node] if node is not None else []
    pre = [n for n in items if not has_span_terms(n)]
    p = Params()
    cond = Compiler(p, "0", "0", tier=ARCHIVE).compile(And(tuple(pre))) if pre else "1"
    sql = (f"SELECT TraceId, {aggs(ALL_AGGS, ARCHIVE)} FROM archived_traces "
           f"WHERE {_range(p, lo_ns, hi_ns, upper)} AND {cond} ORDER BY TS DESC, TraceId DESC LIMIT {int(k)}")
    return [(int(r["TS"]), r["TraceId"]) for r in query(store, sql, p) if HEX_ID.match(r["TraceId"])]


def _days(store: Store, lo_ns: int, hi_ns: int) -> list[date]:
    """Days holding archived traces that start in [lo_ns, hi_ns), newest first."""
    p = Params()
    rows = query(store, f"SELECT DISTINCT Day FROM archived_traces "
                        f"WHERE Start >= fromUnixTimestamp64Nano({p.i(lo_ns)}) "
                        f"AND Start < fromUnixTimestamp64Nano({p.i(hi_ns)}) ORDER BY Day DESC", p)
    return [r["Day"] for r in rows]


def list_archived(store: Store, node: Node | None, lo_ns: int, hi_ns: int, cursor: tuple[int, str] | None = None,
                  limit: int = 50) -> TracePage:
    """Up to ``limit`` archived traces, newest first, that started in [lo_ns, hi_ns), are older
    than ``cursor`` and match ``node``. ``next_cursor`` is always None: the caller merges tiers."""
    upper = cursor if cursor else (hi_ns, "")
    if not has_span_terms(node):
        rows = _rows(store, node, lo_ns, hi_ns, upper, limit + 1)
        return TracePage(_dedupe(rows)[:limit], None, 1)
    narrowed = archive_search.narrow(store, node, lo_ns, hi_ns)
    if narrowed is not None and narrowed.nothing:
        return TracePage([], None, 0)  # no row group holds the words: no file is opened
    if narrowed is not None and not narrowed.unindexed and narrowed.groups <= archive_search.MAX_DIRECT_GROUPS:
        rows = _rows(store, node, lo_ns, hi_ns, upper, limit + 1, narrowed=narrowed)
        return TracePage(_dedupe(rows)[:limit], None, 1)
    rows: list[TraceRow] = []
    scanned = 0
    for i, k in enumerate(CANDIDATE_STEPS):
        cands = _candidates(store, node, lo_ns, hi_ns, upper, k)
        if not cands:
            return TracePage(_dedupe(rows)[:limit], None, scanned)
        found = _rows(store, node, lo_ns, hi_ns, upper, limit + 1 - len(rows), [t for _, t in cands])
        rows.extend(found)
        scanned += 1
        upper = cands[-1]  # everything above it is decided
        if len(rows) > limit or len(cands) < k:
            return TracePage(_dedupe(rows)[:limit], None, scanned)
        # At this match rate the remaining steps cannot fill the page: a rare term, scan instead.
        if len(found) * sum(CANDIDATE_STEPS[i + 1:]) < (limit + 1 - len(rows)) * len(cands):
            break
    days = _days(store, lo_ns, min(hi_ns, upper[0] + 1))
    step, i = 1, 0
    while i < len(days) and len(rows) <= limit:
        chunk = days[i:i + step]
        w_lo = max(lo_ns, _day_ns(chunk[-1]))
        w_hi = min(hi_ns, _day_ns(chunk[0]) + DAY_NS)
        rows.extend(_rows(store, node, w_lo, w_hi, upper, limit + 1 - len(rows)))
        scanned += 1
        i += step
        step *= DAY_STEP_GROWTH
    return TracePage(_dedupe(rows)[:limit], None, scanned)


def _dedupe(rows: list[TraceRow]) -> list[TraceRow]:
    seen: set[str] = set()
    return [r for r in rows if not (r.trace_id in seen or seen.add(r.trace_id))]  # type: ignore[func-returns-value]

