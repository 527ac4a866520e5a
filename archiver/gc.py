"""Attachment garbage collection: blobs referenced by no trace in any tier leave after a grace period.

Live digests come from the hot spans (``SpanAttributes['tracelake.attachments']``) and from
``archive_attachments`` (filled when spans are archived, emptied when they expire), so the
archive itself is never scanned. A blob that is not live is deleted once the ``attachments``
index says it was last seen more than ``grace`` ago; a blob without an index row gets one now,
which starts its grace period (nothing is deleted on the strength of a missing row).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pyarrow as pa

from tracelake.store.base import Store

log = logging.getLogger(__name__)

BLOB_PREFIX = "blobs/sha256/"

LIVE_HOT = """
SELECT DISTINCT sha FROM otel_traces
ARRAY JOIN extractAll(SpanAttributes['tracelake.attachments'], '[0-9a-f]{64}') AS sha
WHERE mapContains(SpanAttributes, 'tracelake.attachments')
"""


@dataclass
class GcResult:
    blobs: int = 0
    live: int = 0
    deleted: int = 0
    deleted_bytes: int = 0
    waiting: int = 0  # unreferenced, still inside the grace period


def collect_attachments(store: Store, object_store, grace: timedelta, now: datetime | None = None) -> GcResult:
    now = now or datetime.now(timezone.utc)
    live = set(store.query_arrow(LIVE_HOT).column("sha").to_pylist())
    live.update(store.query_arrow("SELECT DISTINCT Sha256 FROM archive_attachments").column("Sha256").to_pylist())
    result = GcResult(live=len(live))
    dead: dict[str, tuple[str, int]] = {}
    for info in object_store.list(BLOB_PREFIX):
        result.blobs += 1
        sha = info.key.rsplit("/", 1)[-1]
        if sha not in live:
            dead[sha] = (info.key, info.size)
    if not dead:
        return result
    seen = {r["Sha256"]: r["L"] for r in store.query_arrow(
        "SELECT Sha256, max(LastSeen) AS L FROM attachments GROUP BY Sha256").to_pylist() if r["Sha256"] in dead}
    cutoff = (now - grace).astimezone(timezone.utc).replace(tzinfo=None)
    unknown = [s for s in dead if s not in seen]
    if unknown:
        stamp = now.astimezone(timezone.utc).replace(tzinfo=None)
        store.insert_arrow("attachments", pa.table({
            "Sha256": unknown, "ObjectKey": [dead[s][0] for s in unknown], "Size": pa.array([dead[s][1] for s in unknown], pa.uint64()),
            "FirstSeen": pa.array([stamp] * len(unknown), pa.timestamp("ms")),
            "LastSeen": pa.array([stamp] * len(unknown), pa.timestamp("ms"))}))
    gone = []
    for sha, last in seen.items():
        last_utc = last.replace(tzinfo=None) if last.tzinfo is None else last.astimezone(timezone.utc).replace(tzinfo=None)
        if last_utc > cutoff:
            result.waiting += 1
            continue
        key, size = dead[sha]
        object_store.delete(key)
        gone.append(sha)
        result.deleted += 1
        result.deleted_bytes += size
    result.waiting += len(unknown)
    if gone:
        store.execute("DELETE FROM attachments WHERE Sha256 IN (SELECT arrayJoin(splitByChar(',', {s:String})))",
                      {"s": ",".join(gone)})
        log.info("attachments: removed %d unreferenced blob(s), %d bytes", result.deleted, result.deleted_bytes)
    return result
