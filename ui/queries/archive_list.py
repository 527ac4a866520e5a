"""The trace list over the archive: newest-first rows of ``archived_traces`` matching a filter.

The archive's index has one finalized row per trace, so trace-level terms are plain conditions on
its columns (no aggregation, no windows): one ``ORDER BY TS DESC LIMIT n`` query over the range.
Span-level terms read ``otel_traces_archive``; those scan day by day, newest first (1 day, then 4x
more each time), each span subquery bounded to the days of the step so it reads only their
partitions, and stop once the page is full.
"""
from __future__ import annotations

from datetime import date, datetime, timezone

from tracelake.query.compile import ALL_AGGS, ARCHIVE, Compiler, aggs, has_span_terms
from tracelake.query.filters import Node
from tracelake.query.params import Params, query
from tracelake.store.base import Store
from tracelake.ui.queries.trace_list import SPAN_SLACK_NS, TracePage, TraceRow, trace_row

DAY_NS = 86400 * 10**9
DAY_STEP_GROWTH = 4
DUP_MARGIN = 8  # a trace archived by two runs has two index rows: read a few more, keep one


def _day_ns(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp()) * 10**9


def _rows(store: Store, node: Node | None, lo_ns: int, hi_ns: int, upper: tuple[int, str], want: int) -> list[TraceRow]:
    """Archived traces with start in [lo_ns, hi_ns), below the cursor ``upper``, matching ``node``."""
    upper_ts, upper_id = upper
    p = Params()
    cond = Compiler(p, p.i(lo_ns), p.i(hi_ns + SPAN_SLACK_NS), tier=ARCHIVE).compile(node)
    if upper_id:
        bound = f"(TS < {p.i(upper_ts)} OR (TS = {p.i(upper_ts)} AND TraceId < {p.s(upper_id)}))"
    else:
        bound = f"TS < {p.i(upper_ts)}"
    lo, hi = p.i(lo_ns), p.i(min(hi_ns, upper_ts + 1))
    sql = (f"SELECT TraceId, {aggs(ALL_AGGS, ARCHIVE)} FROM archived_traces "
           f"WHERE Day >= toDate(fromUnixTimestamp64Nano({lo})) AND Day <= toDate(fromUnixTimestamp64Nano({hi})) "
           f"AND Start >= fromUnixTimestamp64Nano({lo}) AND Start < fromUnixTimestamp64Nano({hi}) "
           f"AND {bound} AND {cond} "
           f"ORDER BY TS DESC, TraceId DESC LIMIT {int(want) + DUP_MARGIN}")
    return [trace_row(r, "archive") for r in query(store, sql, p)]


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
    rows: list[TraceRow] = []
    days = _days(store, lo_ns, min(hi_ns, upper[0] + 1))
    step, i, scanned = 1, 0, 0
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
