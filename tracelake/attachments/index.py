"""The ``attachments`` table: one row per blob and project it was lifted from (sha256, project,
type, size, first seen, a span that carried it). The project is what grants access to the blob
(tracelake.auth.web): the same bytes sent by two projects are stored once, indexed twice.

An INSERT into the embedded store costs ~15 ms whatever its size, so rows are buffered and
written by a background thread about once a second. The object store stays the source of
truth for serving (it holds the content type); this table is an index for the UI and the
archiver and says who may read a blob: rows lost in a crash come back the next time the blob is
sent (until then only an admin reads it).
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

TABLE = "attachments"

# Rows kept while the store refuses inserts; past this the oldest are dropped (index only).
_MAX_BUFFERED = 100_000

# The table itself is migration 10 in tracelake/store/schema.py.


@dataclass(frozen=True)
class AttachmentRow:
    sha256: str
    mime_type: str
    size: int
    object_key: str
    trace_id: str = ""
    span_id: str = ""
    seen: float = 0.0  # unix seconds
    project: str = ""  # of the span the blob was lifted from ('' only in rows older than migration 26)


class AttachmentIndex:
    """Buffers :class:`AttachmentRow` and flushes them to ClickHouse in one INSERT per interval."""

    def __init__(self, store: object, interval_s: float = 1.0) -> None:
        self.store = store
        self.interval_s = interval_s
        self._rows: list[AttachmentRow] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tracelake-attachment-index", daemon=True)
        self._thread.start()

    def record(self, row: AttachmentRow) -> None:
        with self._lock:
            self._rows.append(row if row.seen else _with_now(row))
            if len(self._rows) > _MAX_BUFFERED:
                del self._rows[: len(self._rows) - _MAX_BUFFERED]

    def flush(self) -> bool:
        """Write what is buffered now; False (rows kept) when the store refused."""
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return True
        try:
            self.store.insert_arrow(TABLE, _arrow(rows))  # type: ignore[attr-defined]
            return True
        except Exception as exc:  # the store is down: keep the rows for the next flush
            log.warning("could not index %d attachment(s): %s", len(rows), exc)
            with self._lock:
                self._rows[:0] = rows
            return False

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if not self._stop.is_set():
                self.flush()


def _with_now(row: AttachmentRow) -> AttachmentRow:
    return dataclasses.replace(row, seen=time.time())


def _arrow(rows: list[AttachmentRow]):  # noqa: ANN202 - pyarrow imported lazily
    import pyarrow as pa

    seen = pa.array([int(r.seen * 1000) for r in rows], pa.timestamp("ms"))
    return pa.table({
        "Sha256": [r.sha256 for r in rows],
        "MimeType": [r.mime_type for r in rows],
        "Size": pa.array([r.size for r in rows], pa.uint64()),
        "ObjectKey": [r.object_key for r in rows],
        "FirstSeen": seen,
        "LastSeen": seen,
        "TraceId": [r.trace_id for r in rows],
        "SpanId": [r.span_id for r in rows],
        "Project": [r.project for r in rows],
    })
