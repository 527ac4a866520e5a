"""At server start: finish the erasures and restores that a killed process left midway.

Without this, an interrupted erasure stays half done (erased in one tier and not yet in the other,
no receipt) until somebody happens to run the next erase or restore. Each request resumes from the
step it reached (the state machines in erase.py and restore.py), on a thread of its own: an erasure
waits for ClickHouse's mutations and part cleanup, which must not hold up the server's start.
"""
from __future__ import annotations

import logging
import threading

from tracelake.archiver import receipts
from tracelake.archiver.config import ArchiverConfig
from tracelake.store.base import Store

log = logging.getLogger(__name__)

ACTOR = "tracelake (resumed at start)"


def resume_unfinished(store: Store, config: ArchiverConfig) -> dict[str, list[str]]:
    """Finish every unfinished erasure, then every unfinished restore; the request ids finished,
    per kind. Each one is written to the audit log."""
    from tracelake.archiver.connection import own_connection, release
    from tracelake.archiver.erase import eraser_for
    from tracelake.archiver.restore import restorer_for
    from tracelake.auth import audit

    finished: dict[str, list[str]] = {"erase": [], "restore": []}
    conn = own_connection(store)  # off the server's shared session (chdb keeps parameters per connection)
    try:
        for kind, make in (("erase", eraser_for), ("restore", restorer_for)):
            if not receipts.unfinished(conn, kind):
                continue
            for doc in make(conn, config).resume():
                request_id = str(doc.get("request_id", ""))
                finished[kind].append(request_id)
                traces = doc.get("matched_trace_ids") or doc.get("trace_ids") or []
                audit.record(conn, actor=ACTOR, role="system", action=kind, target=request_id,
                             detail=f"finished after an interruption: {len(traces)} traces")
    finally:
        release(conn)
    return finished


def start_resuming(store: Store, config: ArchiverConfig) -> threading.Thread:
    """:func:`resume_unfinished` on a daemon thread; failures are logged (the next erase or
    restore call tries again)."""
    def work() -> None:
        try:
            finished = resume_unfinished(store, config)
        except Exception as exc:  # noqa: BLE001 - the server runs on; the next call resumes
            log.error("could not finish interrupted erasures/restores at start: %s", exc)
            return
        for kind, ids in finished.items():
            if ids:
                log.warning("finished %d interrupted %s request(s) at start: %s", len(ids), kind, ", ".join(ids))

    thread = threading.Thread(target=work, name="tracelake-resume-requests", daemon=True)
    thread.start()
    return thread
