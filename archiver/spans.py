"""Write a run's spans from the hot tier into Parquet files of the Delta table — by ClickHouse itself.

The run's traces are cut per (Day, Project) partition into consecutive ranges of trace start time
of about ``chunk_spans`` spans (:func:`slices`). For each slice ClickHouse reads the spans of its
time window, keeps those of its traces, deduplicates them with ``LIMIT 1 BY`` (otel_traces is a
ReplacingMergeTree that may still hold a retried span twice), sorts them by TraceId then time, and
writes them as ONE Parquet file straight into the table's directory (``INSERT INTO FUNCTION
file(...)`` / ``s3(...)``): no row crosses into Python. The file's footer gives the Delta ``add``
action's row count and statistics; the caller commits every file of the run in ONE Delta commit
(:meth:`DeltaArchive.commit`), so a file written by a run that dies before its commit is never part
of the table (vacuum removes it).

Why slices by time, not by TraceId: otel_traces is ordered by service, span name and time, so a
time window reads only its own granules, while a TraceId range had to read its whole day — a day
of N spans cost N / chunk full reads (a 10M-span day archived at 33k spans/s; by time, the same
work is one read of the day). Each file holds a time range of traces, sorted by TraceId inside in
small row groups: a lookup by id picks the file by its time and TraceId statistics (the trace's
start and end are in the archive's index) and reads one row group of it.

Why ClickHouse writes the Parquet (measured, docs/archive.md "Figures"): converting whole ~1 KB
spans to Arrow for Python cost as much CPU as reading and sorting them, and delta-rs' encoder at
the same ZSTD level needed ~1.5x the CPU of ClickHouse's, which also encodes on both cores.
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tracelake.archiver.delta import ArchiveLocation, DataFile
from tracelake.store.base import Store

# otel_traces -> the Delta table's columns (Day and Project are partition values, not in files).
# Events and links become lists of named structs, times exact Int64 nanoseconds. LowCardinality
# columns and map keys are written as they are: Parquet has one string type, so casting them to
# String first only cost CPU (~6 % of a run, measured; same files byte for byte).
DELTA_COLUMNS = """
    toUnixTimestamp64Nano(Timestamp) AS StartTimeUnixNano,
    TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, ServiceName, ResourceAttributes,
    ScopeName, ScopeVersion, SpanAttributes, toInt64(Duration) AS Duration, StatusCode, StatusMessage,
    CAST(arrayMap((t, n, a) -> (toUnixTimestamp64Nano(t), n, a), Events.Timestamp, Events.Name, Events.Attributes),
         'Array(Tuple(TimeUnixNano Int64, Name String, Attributes Map(String, String)))') AS Events,
    CAST(arrayMap((t, s, st, a) -> (t, s, st, a), Links.TraceId, Links.SpanId, Links.TraceState, Links.Attributes),
         'Array(Tuple(TraceId String, SpanId String, TraceState String, Attributes Map(String, String)))') AS Links,
    LlmOperation, LlmProvider, LlmModel, toInt64(InputTokens) AS InputTokens, toInt64(OutputTokens) AS OutputTokens,
    CostUsd, SessionId, UserId, {run:String} AS RunId
"""

# A slice is the run's traces of one partition from (first_ns, first) to (last_ns, last) in
# (Start, TraceId) order; its spans lie within [lo_ns, hi_ns] (its traces' earliest start and
# latest end), the range the primary key of otel_traces prunes by.
SELECT_SLICE = f"""
SELECT {DELTA_COLUMNS}
FROM otel_traces
WHERE Timestamp >= fromUnixTimestamp64Nano({{lo_ns:Int64}}) AND Timestamp <= fromUnixTimestamp64Nano({{hi_ns:Int64}})
  AND Project = {{project:String}}
  AND TraceId IN (SELECT TraceId FROM trace_summary_archive
                  WHERE RunId = {{run:String}} AND Day = {{day:Date}} AND Project = {{project:String}}
                    AND (toUnixTimestamp64Nano(Start), TraceId) >= ({{first_ns:Int64}}, {{first:String}})
                    AND (toUnixTimestamp64Nano(Start), TraceId) <= ({{last_ns:Int64}}, {{last:String}}))
ORDER BY TraceId, Timestamp, SpanId
LIMIT 1 BY TraceId, SpanId
"""

# ZSTD 3 (was 6 with delta-rs): measured 205 bytes/span against the hot tier's 237 at about half
# the encoding CPU of level 6 (198 bytes/span). Row groups of 8192 spans with min/max statistics;
# no bloom filters (+5 % bytes; sorted TraceIds prune by min/max already). A big slice sorts on
# disk rather than in memory. S3 errors are retried a few times, not ClickHouse's default 500
# (minutes with the object store down): the run fails and the next pass resumes it.
ZSTD_LEVEL = 3
ROW_GROUP_ROWS = 8192
WRITE_SETTINGS = (f"output_format_parquet_row_group_size={ROW_GROUP_ROWS}, "
                  "output_format_parquet_compression_method='zstd', "
                  f"output_format_compression_level={ZSTD_LEVEL}, "
                  "output_format_parquet_write_bloom_filter=0, "
                  "max_bytes_before_external_sort=1073741824, "
                  "s3_truncate_on_insert=0, engine_file_truncate_on_insert=0, s3_retry_attempts=8")

SLICES = """
SELECT toString(Day) AS Day, toString(Project) AS Project, TraceId, SpanCount,
       toUnixTimestamp64Nano(Start) AS S, toUnixTimestamp64Nano(End) AS E
FROM trace_summary_archive WHERE RunId = {run:String}
ORDER BY Day, Project, S, TraceId
"""

# Statistics in each add action (from the file's footer): every engine can skip files by time and
# by trace id. Strings only for the fixed-length hex ids (Parquet min/max of long strings may be
# truncated by the writer, and a truncated max would be wrong).
_STAT_INTS = ("StartTimeUnixNano", "Duration", "InputTokens", "OutputTokens")
_STAT_STRINGS = ("TraceId", "SpanId", "ParentSpanId")
_STAT_FLOATS = ("CostUsd",)


@dataclass
class Slice:
    day: str
    project: str
    first: str  # TraceId of the first trace in (Start, TraceId) order
    first_ns: int  # its Start
    last: str
    last_ns: int
    lo_ns: int  # earliest span start of the slice's traces
    hi_ns: int  # latest end
    spans: int


def slices(store: Store, run_id: str, chunk_spans: int, writers: int = 1) -> list[Slice]:
    """The run's traces cut into ranges of start time of about ``chunk_spans`` spans, per (Day,
    Project); a partition is cut into at least ``writers`` slices (when it has that many traces)
    so that the writers share it."""
    table = store.query_arrow(SLICES, {"run": run_id})
    cols = [table.column(c).to_pylist() for c in ("Day", "Project", "TraceId", "SpanCount", "S", "E")]
    totals: dict[tuple[str, str], int] = {}
    for day, project, n in zip(cols[0], cols[1], cols[3]):
        totals[(day, project)] = totals.get((day, project), 0) + n
    out: list[Slice] = []
    cur: Slice | None = None
    for day, project, tid, n, s, e in zip(*cols):
        size = min(chunk_spans, max(1, -(-totals[(day, project)] // max(1, writers))))
        if cur is None or cur.day != day or cur.project != project or cur.spans >= size:
            cur = Slice(day, project, tid, s, tid, s, s, e, 0)
            out.append(cur)
        cur.last, cur.last_ns = tid, s
        cur.lo_ns = min(cur.lo_ns, s)
        cur.hi_ns = max(cur.hi_ns, e)
        cur.spans += n
    return out


def _stats(rows: int, row_groups: list[dict[str, Any]]) -> str:
    """The add action's statistics JSON from the Parquet footer's row-group statistics."""
    lo: dict[str, Any] = {}
    hi: dict[str, Any] = {}
    kinds = {**{c: int for c in _STAT_INTS}, **{c: str for c in _STAT_STRINGS}, **{c: float for c in _STAT_FLOATS}}
    for rg in row_groups:
        for col in rg["columns"]:
            kind = kinds.get(col["path"])
            st = col["statistics"]
            if kind is None or not col["have_statistics"] or st["min"] is None or st["max"] is None:
                continue
            a, b = kind(st["min"]), kind(st["max"])
            lo[col["path"]] = a if col["path"] not in lo else min(lo[col["path"]], a)
            hi[col["path"]] = b if col["path"] not in hi else max(hi[col["path"]], b)
    names = [c for c in kinds if c in lo and c in hi]
    return json.dumps({"numRecords": rows, "minValues": {c: lo[c] for c in names},
                       "maxValues": {c: hi[c] for c in names}, "nullCount": {c: 0 for c in names}})


def write_slice(store: Store, location: ArchiveLocation, run_id: str, s: Slice, index: int) -> DataFile | None:
    """ClickHouse writes the slice's spans as one Parquet file in the table; None if it had none."""
    name = f"part-{index:05d}-{run_id}-{uuid.uuid4().hex[:12]}.zstd.parquet"
    rel = location.partition_path(s.day, s.project) + name
    params = {"lo_ns": s.lo_ns, "hi_ns": s.hi_ns, "first": s.first, "first_ns": s.first_ns, "last": s.last,
              "last_ns": s.last_ns, "run": run_id, "day": s.day, "project": s.project}
    store.execute(f"INSERT INTO FUNCTION {location.clickhouse_function(rel, 'Parquet')}\n"
                  f"{SELECT_SLICE}SETTINGS {WRITE_SETTINGS}", params)
    meta = store.query_arrow(f"SELECT _size AS size, num_rows AS rows, row_groups "
                             f"FROM {location.clickhouse_function(rel, 'ParquetMetadata')} "
                             f"SETTINGS s3_retry_attempts=8").to_pylist()[0]
    rows = int(meta["rows"])
    if rows == 0:
        return None  # an empty file stays out of the table (vacuum removes it)
    return DataFile(rel, int(meta["size"]), {"Day": s.day, "Project": s.project}, rows,
                    _stats(rows, meta["row_groups"]), int(time.time() * 1000))


def write_run(stores: list[Store], location: ArchiveLocation, run_id: str, chunk_spans: int,
              progress: Callable[[int], None] | None = None,
              on_chunk: Callable[[int], None] | None = None) -> list[DataFile]:
    """Every span of the run's traces in Parquet files of the table (not yet committed: the caller
    commits them all at once). One writer per store connection in ``stores``, each writing one
    slice at a time: a slice's sort, LIMIT BY and encoding keep ClickHouse on about one core, so
    two slices side by side use both of a 2-core machine."""
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    todo = slices(stores[0], run_id, chunk_spans, writers=len(stores))
    files: list[DataFile] = []
    free = list(stores)
    running: dict[Future, Store] = {}

    def collect(done: set[Future]) -> None:
        for fut in done:
            free.append(running.pop(fut))
            f = fut.result()  # a writer's error stops the run here (nothing is committed)
            if f is not None:
                files.append(f)
                if progress is not None:
                    progress(f.rows)

    with ThreadPoolExecutor(max_workers=len(stores), thread_name_prefix="tracelake-archive-writer") as pool:
        try:
            for i, s in enumerate(todo):
                if on_chunk is not None:
                    on_chunk(i)  # failure injection point (tests): mid-write
                while not free:
                    collect(wait(running, return_when=FIRST_COMPLETED).done)
                store = free.pop()
                running[pool.submit(write_slice, store, location, run_id, s, i)] = store
            while running:
                collect(wait(running, return_when=FIRST_COMPLETED).done)
        finally:
            wait(running)  # never leave a writer behind on an error
    files.sort(key=lambda f: f.path)
    return files
