"""Size of each tier per day: spans and bytes, hot (ClickHouse parts) and archive (Delta log)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tracelake.archiver.delta import ArchiveLocation, DeltaArchive
from tracelake.store.base import Store


@dataclass(frozen=True)
class TierSize:
    tier: Literal["hot", "archive"]
    day: str
    spans: int
    bytes: int


def tier_sizes(store: Store, location: ArchiveLocation | None = None) -> list[TierSize]:
    """Hot: otel_traces parts per day partition. Archive: the Delta files per Day (exact) when the
    location is given, else the index (span counts, bytes estimated at archive time)."""
    out = [TierSize("hot", r["D"], r["R"], r["B"]) for r in store.query_arrow(
        "SELECT toString(partition) AS D, sum(rows) AS R, sum(bytes_on_disk) AS B FROM system.parts "
        "WHERE database = currentDatabase() AND table = 'otel_traces' AND active GROUP BY D ORDER BY D").to_pylist()]
    if location is not None:
        days: dict[str, list[int]] = {}
        for day, _project, rows, size in DeltaArchive(location).partition_sizes():
            acc = days.setdefault(day, [0, 0])
            acc[0] += rows
            acc[1] += size
        out += [TierSize("archive", d, r, b) for d, (r, b) in sorted(days.items())]
    else:
        out += [TierSize("archive", r["D"], r["S"], r["B"]) for r in store.query_arrow(
            "SELECT toString(Day) AS D, sum(SpanCount) AS S, sum(Bytes) AS B FROM archived_traces "
            "GROUP BY D ORDER BY D").to_pylist()]
    return out
