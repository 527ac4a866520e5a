"""Migration 21: pins and legal holds (tracelake.archiver.keep; docs/archive.md "Pins and holds").
Migration 25: a hold's project (``''``: every project, what every hold made before it stays).
Migration 26 (tracelake.store.project_schema): a pin's project; ``retention_pins_current`` is per
(Project, TraceId).

One row per change (pin, unpin; hold create, release), ReplacingMergeTree ordered by (key,
Version): a change is an insert, an identical retried insert merges away, history stays.
``retention_pins_current`` is each pinned trace's latest row (``Until`` = 0: no end).
"""
from __future__ import annotations

PINS = """
CREATE TABLE IF NOT EXISTS retention_pins (
    TraceId String,
    Version UInt64,
    Pinned UInt8,
    Until DateTime64(3),
    Actor String,
    Reason String,
    Time DateTime64(3)
) ENGINE = ReplacingMergeTree(Version)
ORDER BY (TraceId, Version)
"""

# The current state of every trace that was ever pinned (Until = 0: no end).
PINS_CURRENT = """
CREATE VIEW IF NOT EXISTS retention_pins_current AS
SELECT TraceId, max(Version) AS LastVersion, argMax(Pinned, Version) AS Pinned, argMax(Until, Version) AS Until,
       argMax(Actor, Version) AS Actor, argMax(Reason, Version) AS Reason, argMax(Time, Version) AS Time
FROM retention_pins GROUP BY TraceId
"""

HOLDS = """
CREATE TABLE IF NOT EXISTS retention_holds (
    Name String,
    Version UInt64,
    Active UInt8,
    Filter String,
    Reason String,
    Actor String,
    Time DateTime64(3)
) ENGINE = ReplacingMergeTree(Version)
ORDER BY (Name, Version)
"""

STATEMENTS: tuple[str, ...] = (PINS, PINS_CURRENT, HOLDS)

# Migration 25: the project a hold covers. The default '' (all projects) keeps every existing hold
# global, so nothing already held becomes deletable.
HOLDS_PROJECT = "ALTER TABLE retention_holds ADD COLUMN IF NOT EXISTS Project String DEFAULT ''"

_ACTIVE_PIN = "Pinned = 1 AND (toUnixTimestamp64Milli(Until) = 0 OR toUnixTimestamp64Milli(Until) > {now})"


def pinned_sql(now_ms: str) -> str:
    """``SELECT TraceId`` of the pins active at ``now_ms`` (an SQL Int64 expression, e.g. a bound
    parameter): the archiver passes the run's clock, so a plan and its run agree."""
    return f"SELECT TraceId FROM retention_pins_current WHERE {_ACTIVE_PIN.format(now=now_ms)}"


def pinned_pairs_sql(now_ms: str) -> str:
    """``SELECT Project, TraceId`` of the pins active at ``now_ms``: a pin keeps its project's spans of
    the trace, not another project's spans that share the id (migration 26)."""
    return f"SELECT Project, TraceId FROM retention_pins_current WHERE {_ACTIVE_PIN.format(now=now_ms)}"


def pinned_condition(project: str, now_ms: str) -> str:
    """True for a trace (``project``: its project column or alias; ``TraceId``) pinned at ``now_ms``:
    by its project's pin, or by a pin without a project (an admin's pin of an id no span had yet, or
    one older than migration 26 whose trace had no spans), which covers every project."""
    pins = pinned_pairs_sql(now_ms)
    return f"(({project}, TraceId) IN ({pins}) OR ('', TraceId) IN ({pins}))"


# Active pins now, for ``TraceId IN (...)`` clauses (the filter language's ``pinned:``; callers of a
# project read their project's pins only, tracelake.auth.scope).
PINNED_TRACES_SQL = pinned_sql("toUnixTimestamp64Milli(now64(3))")
