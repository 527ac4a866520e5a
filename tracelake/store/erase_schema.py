"""Tables for erasure and restore (migration 22; docs/archive.md "Erasure and restore").

* ``retention_requests``: one row per state change of an erasure or a restore request
  (ReplacingMergeTree(Version), like ``archive_runs``); ``Doc`` is the request's JSON so far
  (criteria, counts, per-step timestamps) — the receipt is made from it;
* ``retention_targets``: the trace ids a request froze at its start, with the tier and archive Day
  they were found in (trace ids only, never content);
* ``erasure_receipts``: the receipt of each finished erasure (JSON, downloadable);
* ``retention_request_state``: the current state per request.

Restore changes which tier shows a trace with ONE insert (the request's ``flipped`` state): while a
restore is ``planned``/``copied``, its traces' hot copies are hidden (they join ``archive_moving``);
from ``flipped`` on, the archive copy is hidden (``restore_flipped``, consulted by
``archived_traces`` and the ``otel_traces_archive`` view) until it is deleted. Both views are
replaced here (a released migration never changes).
"""
from __future__ import annotations

from tracelake.store.archive_schema import VISIBLE_STATES

RESTORE_HIDES_HOT = ("planned", "copied")
RESTORE_HIDES_ARCHIVE = ("flipped",)

RETENTION_REQUESTS = """
CREATE TABLE IF NOT EXISTS retention_requests (
    RequestId String,
    Kind LowCardinality(String),
    State LowCardinality(String),
    Version UInt64,
    CreatedAt DateTime64(3),
    UpdatedAt DateTime64(3),
    Actor String,
    Role LowCardinality(String),
    Doc String,
    Error String
) ENGINE = ReplacingMergeTree(Version)
ORDER BY RequestId
"""

RETENTION_TARGETS = """
CREATE TABLE IF NOT EXISTS retention_targets (
    RequestId String,
    TraceId String,
    Tier LowCardinality(String),
    Day Date
) ENGINE = ReplacingMergeTree
ORDER BY (RequestId, TraceId, Tier, Day)
"""

ERASURE_RECEIPTS = """
CREATE TABLE IF NOT EXISTS erasure_receipts (
    RequestId String,
    CreatedAt DateTime64(3),
    Receipt String
) ENGINE = ReplacingMergeTree(CreatedAt)
ORDER BY RequestId
"""

REQUEST_STATE = """
CREATE VIEW IF NOT EXISTS retention_request_state AS
SELECT RequestId, argMax(Kind, Version) AS Kind, argMax(State, Version) AS State, max(Version) AS LastVersion
FROM retention_requests GROUP BY RequestId
"""


def _in(states: tuple[str, ...]) -> str:
    return ", ".join(f"'{s}'" for s in states)


RESTORE_FLIPPED = f"""
CREATE VIEW IF NOT EXISTS restore_flipped AS
SELECT TraceId FROM retention_targets
WHERE RequestId IN (SELECT RequestId FROM retention_request_state WHERE Kind = 'restore'
                    AND State IN ({_in(RESTORE_HIDES_ARCHIVE)}))
"""

ARCHIVE_MOVING = f"""
CREATE OR REPLACE VIEW archive_moving AS
SELECT TraceId FROM trace_summary_archive
WHERE RunId IN (SELECT RunId FROM archive_run_state WHERE State = 'committed')
UNION ALL
SELECT TraceId FROM retention_targets
WHERE RequestId IN (SELECT RequestId FROM retention_request_state WHERE Kind = 'restore'
                    AND State IN ({_in(RESTORE_HIDES_HOT)}))
"""

ARCHIVED_TRACES = f"""
CREATE OR REPLACE VIEW archived_traces AS
SELECT * FROM trace_summary_archive FINAL
WHERE RunId IN (SELECT RunId FROM archive_run_state WHERE State IN ({_in(VISIBLE_STATES)}))
  AND TraceId NOT IN (SELECT TraceId FROM restore_flipped)
"""

STATEMENTS: tuple[str, ...] = (RETENTION_REQUESTS, RETENTION_TARGETS, ERASURE_RECEIPTS, REQUEST_STATE,
                               RESTORE_FLIPPED, ARCHIVE_MOVING, ARCHIVED_TRACES)

