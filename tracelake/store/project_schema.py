"""Migration 26: every row keyed by a trace id also names the project of the spans it belongs to.

A trace id is not a project's: ``traceparent`` carries one id across services, so two projects
may hold spans of the same trace. Tables keyed only by TraceId (the trace lookup, the attachment
indexes, pins, erasure/restore targets) get a ``Project`` column appended to their sorting key, so
rows of two projects never merge, and readers filter them by ``Project IN (<caller's projects>)``
(tracelake.auth.scope) instead of "this trace id has a row in my project".

Existing rows get their project by a backfill (a copy with the project, then the row without it
removed) where it can be known:

* ``otel_traces_trace_id_ts``: rebuilt from ``otel_traces`` (it is derived from it);
* ``attachments``: the project of the span the collector lifted the blob from (the row's own
  TraceId and SpanId, hot), else of its trace in the archive index when that is one project.
  Never from span attributes naming a blob: a client can write those. Rows left without a project
  are readable by admins only;
* ``archive_attachments``: the project of the archived trace of the same run;
* ``retention_pins`` and ``retention_targets``: a copy for every project holding the trace (hot or
  archived), which keeps what a pin kept and what a request targeted.
"""
from __future__ import annotations

_ADD = "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS Project LowCardinality(String), MODIFY ORDER BY ({key})"

# Every project holding a trace, hot or archived.
_TRACE_PROJECTS = ("(SELECT DISTINCT Project, TraceId FROM trace_summary UNION DISTINCT "
                   "SELECT DISTINCT Project, TraceId FROM trace_summary_archive)")


def _drop_unresolved(table: str, key: str) -> str:
    """Remove a row without a project once a copy with one exists (same ``key`` columns)."""
    return (f"DELETE FROM {table} WHERE Project = '' AND ({key}) IN "
            f"(SELECT {key} FROM {table} WHERE Project != '')")


TRACE_ID_TS = (
    _ADD.format(table="otel_traces_trace_id_ts", key="TraceId, Project"),
    """CREATE OR REPLACE MATERIALIZED VIEW otel_traces_trace_id_ts_mv TO otel_traces_trace_id_ts AS
SELECT Project, TraceId, min(toDateTime(Timestamp)) AS Start, max(toDateTime(Timestamp)) AS End
FROM otel_traces WHERE TraceId != '' GROUP BY Project, TraceId""",
    """INSERT INTO otel_traces_trace_id_ts (Project, TraceId, Start, End)
SELECT Project, TraceId, min(toDateTime(Timestamp)), max(toDateTime(Timestamp))
FROM otel_traces WHERE TraceId != '' GROUP BY Project, TraceId""",
    _drop_unresolved("otel_traces_trace_id_ts", "TraceId"),
)

# The span a blob was lifted from, else its trace in the archive index when only one project has it.
_BLOB_PROJECT = """
SELECT a.Sha256 AS Sha, if(h.Project != '', h.Project, ar.P) AS P
FROM (SELECT Sha256, any(TraceId) AS T, any(SpanId) AS S FROM attachments WHERE Project = '' GROUP BY Sha256) AS a
LEFT JOIN (SELECT TraceId, SpanId, any(Project) AS Project FROM otel_traces GROUP BY TraceId, SpanId) AS h
       ON h.TraceId = a.T AND h.SpanId = a.S
LEFT JOIN (SELECT TraceId, any(Project) AS P FROM trace_summary_archive GROUP BY TraceId HAVING uniqExact(Project) = 1) AS ar
       ON ar.TraceId = a.T
"""

ATTACHMENTS = (
    _ADD.format(table="attachments", key="Sha256, Project"),
    f"""INSERT INTO attachments (Sha256, Project, MimeType, Size, ObjectKey, FirstSeen, LastSeen, TraceId, SpanId)
SELECT Sha256, P, any(MimeType), max(Size), any(ObjectKey), min(FirstSeen), max(LastSeen), any(TraceId), any(SpanId)
FROM attachments AS x INNER JOIN ({_BLOB_PROJECT}) AS r ON r.Sha = x.Sha256
WHERE x.Project = '' AND r.P != '' GROUP BY Sha256, P""",
    _drop_unresolved("attachments", "Sha256"),
)

ARCHIVE_ATTACHMENTS = (
    _ADD.format(table="archive_attachments", key="Sha256, TraceId, RunId, Project"),
    """INSERT INTO archive_attachments (Sha256, TraceId, RunId, Project)
SELECT a.Sha256, a.TraceId, a.RunId, i.Project
FROM archive_attachments AS a
INNER JOIN (SELECT DISTINCT Project, TraceId, RunId FROM trace_summary_archive) AS i
        ON i.TraceId = a.TraceId AND i.RunId = a.RunId
WHERE a.Project = ''""",
    _drop_unresolved("archive_attachments", "Sha256, TraceId, RunId"),
)

PINS = (
    _ADD.format(table="retention_pins", key="TraceId, Version, Project"),
    f"""INSERT INTO retention_pins (Project, TraceId, Version, Pinned, Until, Actor, Reason, Time)
SELECT t.Project, p.TraceId, p.Version, p.Pinned, p.Until, p.Actor, p.Reason, p.Time
FROM retention_pins AS p INNER JOIN {_TRACE_PROJECTS} AS t ON t.TraceId = p.TraceId
WHERE p.Project = ''""",
    _drop_unresolved("retention_pins", "TraceId, Version"),
    # A pin is a project's: its current state per (Project, TraceId).
    """CREATE OR REPLACE VIEW retention_pins_current AS
SELECT Project, TraceId, max(Version) AS LastVersion, argMax(Pinned, Version) AS Pinned,
       argMax(Until, Version) AS Until, argMax(Actor, Version) AS Actor, argMax(Reason, Version) AS Reason,
       argMax(Time, Version) AS Time
FROM retention_pins GROUP BY Project, TraceId""",
)

TARGETS = (
    _ADD.format(table="retention_targets", key="RequestId, TraceId, Tier, Day, Project"),
    f"""INSERT INTO retention_targets (RequestId, TraceId, Tier, Day, Project)
SELECT r.RequestId, r.TraceId, r.Tier, r.Day, t.Project
FROM retention_targets AS r INNER JOIN {_TRACE_PROJECTS} AS t ON t.TraceId = r.TraceId
WHERE r.Project = ''""",
    _drop_unresolved("retention_targets", "RequestId, TraceId, Tier, Day"),
)

STATEMENTS: tuple[str, ...] = TRACE_ID_TS + ATTACHMENTS + ARCHIVE_ATTACHMENTS + PINS + TARGETS
