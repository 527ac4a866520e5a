"""Which span of each listed trace matched the filter's free text: the first matching span (by start
time) and how many spans match, for one page of the trace list.

One query per tier for the page's trace ids, with the same condition the filter used
(:func:`tracelake.query.text_search.term_sql` over the tier's searchable text, behind the cheap
necessary test of :mod:`.span_terms`), so "matched" means exactly what the filter means. A span matches when it matches any of the free-text terms (the filter
may have found different words in different spans). Hot traces are read from ``otel_traces`` within
the page's time range; archived ones from the files that can hold them (as the archive list reads its
candidates), else through ``otel_traces_archive`` bounded to their ``Day`` partitions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracelake.query.compile import ARCHIVE, HOT, Tier
from tracelake.query.filters import Text
from tracelake.query.params import Params, query
from tracelake.store.base import Store, StoreError
from tracelake.ui.queries import archive_list
from tracelake.ui.queries.span_terms import span_term_sql
from tracelake.ui.queries.trace_list import TraceRow


@dataclass(frozen=True)
class Matched:
    """The first span (by start time) of a trace that matches the free text, and how many do."""

    span_id: str
    name: str
    count: int

    def as_json(self) -> dict[str, Any]:
        return {"span_id": self.span_id, "name": self.name, "count": self.count}


def _sql(p: Params, tier: Tier, terms: list[Text], ids: str, lo_ns: int, hi_ns: int) -> str:
    cond = " OR ".join(span_term_sql(p, t, tier.name == "hot") for t in terms)
    days = ""
    if tier.day_partitioned:  # archived spans are partitioned by their trace's day
        days = (f"Day >= toDate(fromUnixTimestamp64Nano({p.i(lo_ns)})) "
                f"AND Day <= toDate(fromUnixTimestamp64Nano({p.i(hi_ns)})) AND ")
    # (Timestamp, SpanId) orders ties; a span stored twice (an unmerged replace, two archive runs) counts once.
    return (f"SELECT TraceId, argMin(SpanId, (Timestamp, SpanId)) AS Id, argMin(SpanName, (Timestamp, SpanId)) AS Name, "
            f"uniqExact(SpanId) AS N FROM {tier.spans_table} WHERE {days}TraceId IN ({ids}) "
            f"AND Timestamp >= fromUnixTimestamp64Nano({p.i(lo_ns)}) AND Timestamp <= fromUnixTimestamp64Nano({p.i(hi_ns)}) "
            f"AND ({cond}) GROUP BY TraceId")


def _tier_matches(store: Store, terms: list[Text], rows: list[TraceRow], archived: bool) -> dict[str, Matched]:
    lo, hi = min(r.start_ns for r in rows), max(r.end_ns for r in rows)
    trace_ids = sorted({r.trace_id for r in rows})

    def run(direct: bool) -> list[dict[str, Any]]:
        p = Params()
        ids = ", ".join(p.s(t) for t in trace_ids)
        tier = HOT
        if archived:
            scope = f"SELECT arrayJoin(splitByChar(',', {p.s(','.join(trace_ids))}))"  # hex ids: never a comma
            # The files of these traces' partitions and time window (the archive list's own reader).
            tier = (archive_list._files_tier(store, p, scope) if direct else None) or ARCHIVE
        return query(store, _sql(p, tier, terms, ids, lo, hi), p)

    if not archived:
        found = run(False)
    else:
        try:
            found = run(True)
        except StoreError:  # a file vacuumed between the list and the read: the view sees the new version
            found = run(False)
    return {r["TraceId"]: Matched(r["Id"], r["Name"], int(r["N"])) for r in found}


def matched_spans(store: Store, terms: list[Text], rows: list[TraceRow]) -> dict[str, Matched]:
    """Trace id -> the span that matched ``terms`` (free-text terms of the filter), for ``rows``."""
    if not terms or not rows:
        return {}
    out: dict[str, Matched] = {}
    for archived in (False, True):
        part = [r for r in rows if (r.tier == "archive") == archived]
        if part:
            out.update(_tier_matches(store, terms, part, archived))
    return out
