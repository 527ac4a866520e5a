"""Settled traces' rows, kept for long windows (``alert_trace_cache``).

A rule over a day re-reads a day of traces every round, and building a trace's row (merging its
partial ``trace_summary`` rows: token and cost maps, model and service sets) is most of the cost.
A trace that started more than :data:`SETTLE` ago has all its rows (the dashboard and the trace
list look for a trace's spans up to an hour after its window, :data:`query.SPAN_SLACK_NS`), so
its row is built once, stored here with compile.py's aliases as columns, and read as it is after
that. A round then builds rows only for the last hour.

* Coverage: one contiguous range of start times per store, in memory; extended at either end as
  windows ask for it, emptied at start (nothing stale from an earlier process) and when traces are
  erased or restored (:func:`tracelake.events.on_traces_changed`). Only the evaluating engine uses
  it (``alerts_evaluate``: one process), so no two processes fill the table at once.
* Only hot traces are cached. An archived trace is read from the archive unless its row is cached
  already (it was hot when cached), so a trace counts once whichever tier holds it now. Cached rows
  are of tier ``cached``: a span-level filter looks for their spans in both tiers.
* Limits (docs/alerts.md): spans that arrive more than an hour after their trace started, into a
  range already cached, are not seen by long windows until the process restarts.
"""
from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass

from tracelake.alerts.query import SPAN_SLACK_NS, TraceRows
from tracelake.query.params import Params
from tracelake.store.base import Store

log = logging.getLogger(__name__)

SETTLE_NS = SPAN_SLACK_NS
MIN_GAIN_NS = 3600 * 10**9  # a window reading less than an hour of settled traces is read live
KEEP_NS = 8 * 86400 * 10**9  # the longest window (7 d) and a day of slack
# compile.py's aliases the table keeps (migration 71); a window whose rules need another alias
# (one added to compile.py later) is read live.
COLUMNS = ("TS", "TE", "Root", "RootService", "NSpans", "Errors", "Svcs", "Mods", "InTok", "OutTok", "CostUsd", "Sess",
           "Usr", "Proj")


@dataclass
class _Coverage:
    lo: int = 0
    hi: int = 0  # [lo, hi) of trace start times cached; lo == hi: nothing
    reset: bool = True  # empty the table before the first fill of this process


_STATE: "weakref.WeakKeyDictionary[Store, _Coverage]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def forget(_ids: frozenset[str] | None = None) -> None:
    """Traces were erased or restored, or prices changed: cached rows may be stale; start again."""
    with _LOCK:
        for cov in _STATE.values():
            cov.lo = cov.hi = 0
            cov.reset = True


def settled_before(now_ns: int, wall_ns: int) -> int:
    """Start times before this are settled: an hour before ``now`` (or the wall clock, if earlier)."""
    return min(now_ns, wall_ns) - SETTLE_NS


def _fill(store: Store, trace_rows: TraceRows, lo: int, hi: int) -> None:
    p = Params()
    rows = trace_rows(p, lo, hi, None, "1", False, COLUMNS)  # hot only: the archive is read as it is
    cols = ", ".join(COLUMNS)
    store.execute(f"INSERT INTO alert_trace_cache (Project, TraceId, {cols}) SELECT Proj, TraceId, {cols} FROM ({rows})",
                  p.bound(store))


def ensure(store: Store, trace_rows: TraceRows, lo: int, hi: int) -> bool:
    """Make [lo, hi) cached; False when it cannot be (then the caller reads live)."""
    with _LOCK:
        cov = _STATE.get(store)
        if cov is None:
            cov = _STATE[store] = _Coverage()
        try:
            if cov.reset:
                store.execute("TRUNCATE TABLE alert_trace_cache")
                cov.reset = False
            if cov.lo == cov.hi or hi < cov.lo or lo > cov.hi:  # nothing, or not touching: start over here
                if cov.lo != cov.hi:
                    store.execute("TRUNCATE TABLE alert_trace_cache")
                _fill(store, trace_rows, lo, hi)
                cov.lo, cov.hi = lo, hi
            else:
                if lo < cov.lo:
                    _fill(store, trace_rows, lo, cov.lo)
                    cov.lo = lo
                if hi > cov.hi:
                    _fill(store, trace_rows, cov.hi, hi)
                    cov.hi = hi
            if cov.hi - cov.lo > KEEP_NS + 86400 * 10**9:  # drop what no window reaches any more
                cut = cov.hi - KEEP_NS
                store.execute("DELETE FROM alert_trace_cache WHERE TS < {cut:Int64}", {"cut": cut})
                cov.lo = cut
            return True
        except Exception as exc:  # noqa: BLE001 - a failing cache must not stop alerts: read live
            log.warning("alert trace cache unavailable (%s: %s); reading live", type(exc).__name__, exc)
            cov.lo = cov.hi = 0
            cov.reset = True
            return False


def cached_rows(p: Params, lo: int, hi: int, cols: tuple[str, ...], archive: bool) -> str:
    """SQL of the settled traces started in [lo, hi): the cached hot rows and, when the archive is
    read, archived traces that are not cached (a trace archived after it was cached counts once)."""
    from tracelake.query.compile import ARCHIVE, aggs

    names = ", ".join(cols)
    lo_p, hi_p = p.i(lo), p.i(hi)
    hot = (f"SELECT TraceId, {names}, 'cached' AS Tier FROM alert_trace_cache "
           f"WHERE TS >= {lo_p} AND TS < {hi_p}")
    if not archive:
        return hot
    arch = (f"SELECT TraceId, {aggs(cols, ARCHIVE)}, 'archive' AS Tier FROM archived_traces "
            f"WHERE Day >= toDate(fromUnixTimestamp64Nano({lo_p})) AND Day <= toDate(fromUnixTimestamp64Nano({hi_p})) "
            f"AND Start >= fromUnixTimestamp64Nano({lo_p}) AND Start < fromUnixTimestamp64Nano({hi_p}) "
            f"AND TraceId NOT IN (SELECT TraceId FROM alert_trace_cache WHERE TS >= {lo_p} AND TS < {hi_p}) "
            f"LIMIT 1 BY TraceId")
    return f"SELECT * FROM ({hot}) UNION ALL SELECT * FROM ({arch})"


def _install() -> None:
    from tracelake import events

    events.on_traces_changed(forget)
    # Cost is priced when read: a price edit makes cached costs stale (the signal comes with cost at read).
    on_prices = getattr(events, "on_prices_changed", None)
    if on_prices is not None:
        on_prices(forget)


_install()

__all__ = ["cached_rows", "ensure", "forget", "settled_before"]
