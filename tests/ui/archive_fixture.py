"""A stand-in for the archiver, for the read side's tests until the archiver's writer exists:
the archive's ClickHouse objects made with the contract's DDL (ARCHIVE_CONTRACT.md), the index
filled from the hot trace aggregates, the spans copied with their ``Day``, then the run's states
written one by one, as the contract orders them (planned, written, committed, hot_deleted, done).

``otel_traces_archive`` is a plain MergeTree table here (the real one is a view over the Delta
table); its columns are otel_traces' own, plus ``Day``.
"""
from __future__ import annotations

from typing import Any

TRACE_SUMMARY_ARCHIVE = """
CREATE TABLE IF NOT EXISTS trace_summary_archive (
    Project LowCardinality(String), TraceId String, Start DateTime64(9), End DateTime64(9),
    RootName String, RootService LowCardinality(String), SpanCount UInt64, ErrorCount UInt64,
    Services Array(String), Models Array(String), InputTokens UInt64, OutputTokens UInt64, CostUsd Float64,
    SessionId String, UserId String, Day Date, Bytes UInt64, RunId String, Rule LowCardinality(String),
    ArchivedAt DateTime64(3), DeleteAfter DateTime64(3)
) ENGINE = ReplacingMergeTree(ArchivedAt) PARTITION BY toYYYYMM(Day) ORDER BY (Project, TraceId, RunId)
"""
ARCHIVE_RUNS = """
CREATE TABLE IF NOT EXISTS archive_runs (
    RunId String, State LowCardinality(String), Version UInt64, StartedAt DateTime64(3), UpdatedAt DateTime64(3),
    Rules String, Traces UInt64, Spans UInt64, Bytes UInt64, DeletedTraces UInt64, Error String
) ENGINE = ReplacingMergeTree(Version) ORDER BY RunId
"""
RUN_STATE = """
CREATE VIEW IF NOT EXISTS archive_run_state AS
SELECT RunId, argMax(State, Version) AS State FROM archive_runs GROUP BY RunId
"""
ARCHIVED_TRACES = """
CREATE VIEW IF NOT EXISTS archived_traces AS
SELECT * FROM trace_summary_archive FINAL
WHERE RunId IN (SELECT RunId FROM archive_run_state WHERE State IN ('committed', 'hot_deleted', 'done'))
"""
ARCHIVE_MOVING = """
CREATE VIEW IF NOT EXISTS archive_moving AS
SELECT TraceId FROM trace_summary_archive
WHERE RunId IN (SELECT RunId FROM archive_run_state WHERE State = 'committed')
"""
STATES = ("planned", "written", "committed", "hot_deleted", "done")


def _span_columns(store) -> list[tuple[str, str]]:
    rows = store.query_arrow("SELECT name, type FROM system.columns WHERE database = currentDatabase() "
                             "AND table = 'otel_traces' AND default_kind != 'ALIAS' ORDER BY position").to_pylist()
    return [(r["name"], r["type"]) for r in rows]


def create(store) -> None:
    for ddl in (TRACE_SUMMARY_ARCHIVE, ARCHIVE_RUNS, RUN_STATE, ARCHIVED_TRACES, ARCHIVE_MOVING):
        store.execute(ddl)
    cols = ", ".join(f"`{n}` {t}" for n, t in _span_columns(store))
    store.execute(f"CREATE TABLE IF NOT EXISTS otel_traces_archive ({cols}, Day Date) ENGINE = MergeTree "
                  "PARTITION BY Day ORDER BY (Project, TraceId)")


def _state(store, run_id: str, state: str, version: int, **figures: Any) -> None:
    store.execute("INSERT INTO archive_runs (RunId, State, Version, StartedAt, UpdatedAt, Traces, Spans, Bytes, Error) "
                  "VALUES ({r:String}, {s:String}, {v:UInt64}, now64(3), now64(3), {t:UInt64}, {n:UInt64}, {b:UInt64}, '')",
                  {"r": run_id, "s": state, "v": version, "t": figures.get("traces", 0), "n": figures.get("spans", 0),
                   "b": figures.get("bytes", 0)})


def archive(store, trace_ids: list[str], run_id: str, stop_at: str = "done") -> None:
    """Move ``trace_ids`` to the archive as one run, stopping after state ``stop_at``."""
    create(store)
    ids = ", ".join(f"'{t}'" for t in trace_ids)  # hex ids made by the tests
    _state(store, run_id, "planned", 1)
    store.execute(
        "INSERT INTO trace_summary_archive SELECT any(Project), TraceId, min(Start), max(End), "
        "if(max(RootName) != '', max(RootName), argMinMerge(FirstSpanName)), max(RootService), uniqMerge(SpanCount), "
        "length(groupUniqArrayArray(ErrorSpans)), groupUniqArrayArray(Services), groupUniqArrayArray(Models), "
        "arraySum(mapValues(maxMap(InputTokens))), arraySum(mapValues(maxMap(OutputTokens))), "
        "arraySum(mapValues(maxMap(Cost))), max(SessionId), max(UserId), toDate(min(Start)), 1000, "
        f"{{r:String}}, 'test', now64(3), toDateTime64('2100-01-01 00:00:00', 3) "
        f"FROM trace_summary WHERE TraceId IN ({ids}) GROUP BY TraceId", {"r": run_id})
    cols = ", ".join(f"`{n}`" for n, _ in _span_columns(store))
    store.execute(f"INSERT INTO otel_traces_archive ({cols}, Day) SELECT {', '.join(f's.`{n}`' for n, _ in _span_columns(store))}, "
                  f"i.Day FROM otel_traces AS s INNER JOIN (SELECT TraceId, Day FROM trace_summary_archive "
                  f"WHERE RunId = {{r:String}}) AS i ON s.TraceId = i.TraceId WHERE s.TraceId IN ({ids})", {"r": run_id})
    for version, state in enumerate(STATES[1:], start=2):
        if state == "hot_deleted":
            for table in ("otel_traces", "trace_summary", "otel_traces_trace_id_ts"):
                store.execute(f"ALTER TABLE {table} DELETE WHERE TraceId IN ({ids}) SETTINGS mutations_sync = 2")
        _state(store, run_id, state, version, traces=len(trace_ids))
        if state == stop_at:
            return
