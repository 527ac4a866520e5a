"""ClickHouse side of the archive tier (docs/archive.md, ARCHIVE_CONTRACT.md).

Static DDL (migration 20, registered in :mod:`tracelake.store.schema`):

* ``trace_summary_archive``: the archive's trace index, one row per archived trace and run, with
  finalized values. Rows are inserted *before* the spans are written, tagged with the run's id,
  and stay invisible until that run's state says ``committed``;
* ``archive_runs``: one row per state change of a run (ReplacingMergeTree(Version)); the state
  of a run is the row with the highest Version;
* ``archive_attachments``: blob digests referenced by archived spans, so attachment GC does not
  have to scan the archive;
* the visibility views: ``archive_run_state`` (current state per run), ``archived_traces``
  (index rows of committed runs) and ``archive_moving`` (traces whose archive copy is visible while
  their hot copy is not deleted yet: hot readers exclude these).

Dynamic DDL (depends on where the archive lives, so the archiver creates it at start):
``otel_traces_archive_delta``, a table with the DeltaLakeLocal / DeltaLake engine (a table, not a
table function, so read-only connections — ``readonly=1``, as /api/sql uses — may read it; it
re-reads the Delta log on every query), and ``otel_traces_archive``, a VIEW over it with
otel_traces' exact column names and types, showing only rows of committed runs.
"""
from __future__ import annotations

# States in which a run's archive copy is visible (the 'committed' insert is the atomic flip).
VISIBLE_STATES = ("committed", "hot_deleted", "done")

TRACE_SUMMARY_ARCHIVE = """
CREATE TABLE IF NOT EXISTS trace_summary_archive (
    Project LowCardinality(String),
    TraceId String,
    Start DateTime64(9),
    End DateTime64(9),
    RootName String,
    RootService LowCardinality(String),
    SpanCount UInt64,
    ErrorCount UInt64,
    Services Array(String),
    Models Array(String),
    InputTokens UInt64,
    OutputTokens UInt64,
    CostUsd Float64,
    SessionId String,
    UserId String,
    Day Date,
    Bytes UInt64,
    RunId String,
    Rule LowCardinality(String),
    ArchivedAt DateTime64(3),
    DeleteAfter DateTime64(3),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_session SessionId TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_start Start TYPE minmax GRANULARITY 1
) ENGINE = ReplacingMergeTree(ArchivedAt)
PARTITION BY toYYYYMM(Day)
ORDER BY (Project, TraceId, RunId)
"""

ARCHIVE_RUNS = """
CREATE TABLE IF NOT EXISTS archive_runs (
    RunId String,
    Seq UInt64,
    State LowCardinality(String),
    Version UInt64,
    StartedAt DateTime64(3),
    UpdatedAt DateTime64(3),
    Now DateTime64(3),
    Rules String,
    Traces UInt64,
    Spans UInt64,
    Bytes UInt64,
    ArchiveBytes UInt64,
    DeletedTraces UInt64,
    DeletedSpans UInt64,
    DroppedPartitions UInt64,
    Error String
) ENGINE = ReplacingMergeTree(Version)
ORDER BY RunId
"""

ARCHIVE_ATTACHMENTS = """
CREATE TABLE IF NOT EXISTS archive_attachments (
    Sha256 String,
    TraceId String,
    RunId String
) ENGINE = ReplacingMergeTree
ORDER BY (Sha256, TraceId, RunId)
"""

ARCHIVE_RUN_STATE = """
CREATE VIEW IF NOT EXISTS archive_run_state AS
SELECT RunId, argMax(State, Version) AS State, max(Version) AS LastVersion
FROM archive_runs GROUP BY RunId
"""

_VISIBLE = ", ".join(f"'{s}'" for s in VISIBLE_STATES)

ARCHIVED_TRACES = f"""
CREATE VIEW IF NOT EXISTS archived_traces AS
SELECT * FROM trace_summary_archive FINAL
WHERE RunId IN (SELECT RunId FROM archive_run_state WHERE State IN ({_VISIBLE}))
"""

# Migration 24 (perf): the view as migration 22 (erase) left it — committed runs, minus traces a
# restore has flipped back to hot — without FINAL. Index rows are unique per (Project, TraceId,
# RunId) by construction (one insert per run; a run killed before 'planned' has its rows deleted),
# and readers keep one row per trace anyway; FINAL cost every lookup a merge of the index.
ARCHIVED_TRACES_NO_FINAL = f"""
CREATE OR REPLACE VIEW archived_traces AS
SELECT * FROM trace_summary_archive
WHERE RunId IN (SELECT RunId FROM archive_run_state WHERE State IN ({_VISIBLE}))
  AND TraceId NOT IN (SELECT TraceId FROM restore_flipped)
"""

ARCHIVE_MOVING = """
CREATE VIEW IF NOT EXISTS archive_moving AS
SELECT TraceId FROM trace_summary_archive
WHERE RunId IN (SELECT RunId FROM archive_run_state WHERE State = 'committed')
"""

STATEMENTS: tuple[str, ...] = (TRACE_SUMMARY_ARCHIVE, ARCHIVE_RUNS, ARCHIVE_ATTACHMENTS, ARCHIVE_RUN_STATE,
                               ARCHIVED_TRACES, ARCHIVE_MOVING)

# otel_traces' columns and types, and how each is read from the Delta table (whose columns are
# named for other engines: Events/Links as lists of structs, exact nanosecond times as Int64).
_LC = "LowCardinality(String)"
_MAP = "Map(LowCardinality(String), String)"
VIEW_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("Timestamp", "DateTime64(9)", "fromUnixTimestamp64Nano(assumeNotNull(StartTimeUnixNano))"),
    ("TraceId", "String", "TraceId"),
    ("SpanId", "String", "SpanId"),
    ("ParentSpanId", "String", "ParentSpanId"),
    ("TraceState", "String", "TraceState"),
    ("SpanName", _LC, "SpanName"),
    ("SpanKind", _LC, "SpanKind"),
    ("ServiceName", _LC, "ServiceName"),
    ("ResourceAttributes", _MAP, "ResourceAttributes"),
    ("ScopeName", "String", "ScopeName"),
    ("ScopeVersion", "String", "ScopeVersion"),
    ("SpanAttributes", _MAP, "SpanAttributes"),
    ("Duration", "UInt64", "Duration"),
    ("StatusCode", _LC, "StatusCode"),
    ("StatusMessage", "String", "StatusMessage"),
    ("Events.Timestamp", "Array(DateTime64(9))",
     "arrayMap(e -> fromUnixTimestamp64Nano(assumeNotNull(tupleElement(e, 'TimeUnixNano'))), Events)"),
    ("Events.Name", f"Array({_LC})", "arrayMap(e -> tupleElement(e, 'Name'), Events)"),
    ("Events.Attributes", f"Array({_MAP})", "arrayMap(e -> tupleElement(e, 'Attributes'), Events)"),
    ("Links.TraceId", "Array(String)", "arrayMap(e -> tupleElement(e, 'TraceId'), Links)"),
    ("Links.SpanId", "Array(String)", "arrayMap(e -> tupleElement(e, 'SpanId'), Links)"),
    ("Links.TraceState", "Array(String)", "arrayMap(e -> tupleElement(e, 'TraceState'), Links)"),
    ("Links.Attributes", f"Array({_MAP})", "arrayMap(e -> tupleElement(e, 'Attributes'), Links)"),
    ("Project", _LC, "Project"),
    ("LlmOperation", _LC, "LlmOperation"),
    ("LlmProvider", _LC, "LlmProvider"),
    ("LlmModel", _LC, "LlmModel"),
    ("InputTokens", "UInt64", "InputTokens"),
    ("OutputTokens", "UInt64", "OutputTokens"),
    ("CostUsd", "Float64", "CostUsd"),
    ("SessionId", "String", "SessionId"),
    ("UserId", "String", "UserId"),
    ("Day", "Date", "toDate(Day)"),
)


def archive_table_sql(engine: str) -> str:
    """The Delta table as a ClickHouse table; ``engine`` (DeltaLakeLocal(...) / DeltaLake(...)) is
    built by the archiver from configuration, never from user input."""
    return f"CREATE OR REPLACE TABLE otel_traces_archive_delta ENGINE = {engine}"


def _priced_columns(database: str, project: str) -> tuple[tuple[tuple[str, str, str], ...], ...]:
    """Token kinds from the spans' attributes and cost priced when read, as otel_traces has them
    (the expressions name the view's own columns: ClickHouse resolves them to the aliases above)."""
    from tracelake.store import cost_schema as c

    def fill(expr: str) -> str:
        return expr.replace("{database}", database).replace("toString(Project)", project)

    kinds = (*((k, "UInt64", c.kind_expr(k)) for k in c.KINDS), ("ReportedCostUsd", "Float64", c.REPORTED_COST))
    priced = (("CostUsd", "Float64", fill(c.SPAN_COST)), ("Unpriced", "UInt8", fill(c.SPAN_UNPRICED)),
              ("PriceModel", "String", fill(c.PRICE_MODEL)))
    return kinds, priced


def _columns(database: str, project: str) -> list[tuple[str, str, str]]:
    """otel_traces' stored columns in its order, Day, then its columns priced when read."""
    kinds, priced = _priced_columns(database, project)
    stored = [c for c in VIEW_COLUMNS if c[0] not in ("CostUsd", "Day")]
    return stored + list(kinds) + [c for c in VIEW_COLUMNS if c[0] == "Day"] + list(priced)


def archive_columns_sql(skip: tuple[str, ...] = (), database: str = "tracelake", project: str = "toString(Project)") -> str:
    """The select list mapping the Delta table's columns to otel_traces' names and types (the view's;
    also used over the Parquet files themselves, which hold no partition columns: ``skip``, and then
    ``project`` is the SQL of the spans' project, which their price may depend on). The files' own
    CostUsd (priced when archived) is not read: cost is priced when read, from tokens."""
    columns = _columns(database, project)
    return ",\n    ".join(f"CAST(assumeNotNull({expr}), '{ch_type}') AS `{name}`" if "Array" not in ch_type
                           else f"CAST({expr}, '{ch_type}') AS `{name}`"
                           for name, ch_type, expr in columns if name not in skip)


def archive_view_sql(database: str = "tracelake") -> str:
    """``CREATE OR REPLACE VIEW otel_traces_archive`` over ``otel_traces_archive_delta``."""
    cols = archive_columns_sql(database=database)
    return (f"CREATE OR REPLACE VIEW otel_traces_archive AS\nSELECT\n    {cols}\nFROM otel_traces_archive_delta\n"
            f"WHERE RunId IN (SELECT RunId FROM archive_run_state WHERE State IN ({_VISIBLE}))"
            f"\n  AND TraceId NOT IN (SELECT TraceId FROM restore_flipped)")  # restore's flip (migration 22)


def empty_archive_view_sql() -> str:
    """The view when no archive table can be reached yet: same columns, no rows."""
    columns = _columns("", "''")
    cols = ",\n    ".join(f"CAST(defaultValueOfTypeName('{t}'), '{t}') AS `{n}`" for n, _, t in
                          ((n, e, t) for n, t, e in columns))
    return f"CREATE OR REPLACE VIEW otel_traces_archive AS\nSELECT\n    {cols}\nFROM system.one WHERE 0"
