"""Look at an embedded store from a subprocess (chdb holds one data directory per process).

    python arx_tool.py snapshot DATA_DIR [--sample TRACE_ID ...]
    python arx_tool.py lookup DATA_DIR --sample TRACE_ID ...   # trace by id: files vs view

prints JSON: every (TraceId, SpanId) in the hot tier, the ones hot readers see (not in
archive_moving), the ones archive readers see (otel_traces_archive), per-table counts, run
states, and the full rows of the sampled traces from each tier (normalised for comparison).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

ROW_SQL = """
SELECT toUnixTimestamp64Nano(Timestamp) AS ts, TraceId, SpanId, ParentSpanId, TraceState, toString(SpanName) AS SpanName,
       toString(SpanKind) AS SpanKind, toString(ServiceName) AS ServiceName, ResourceAttributes, ScopeName, ScopeVersion,
       SpanAttributes, Duration, toString(StatusCode) AS StatusCode, StatusMessage,
       arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS ev_ts, Events.Name AS ev_name,
       Events.Attributes AS ev_attrs, Links.TraceId AS lk_trace, Links.SpanId AS lk_span,
       Links.TraceState AS lk_state, Links.Attributes AS lk_attrs, toString(Project) AS Project,
       toString(LlmOperation) AS LlmOperation, toString(LlmProvider) AS LlmProvider, toString(LlmModel) AS LlmModel,
       InputTokens, OutputTokens, CostUsd, SessionId, UserId
FROM {table} WHERE has(splitByChar(',', {{ids:String}}), TraceId)
ORDER BY TraceId, SpanId LIMIT 1 BY TraceId, SpanId
"""


def _norm(value: Any) -> Any:
    if isinstance(value, list):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return sorted([list(v) for v in value])
        return [_norm(v) for v in value]
    return value


def _ids(store, sql: str) -> list[str]:
    return sorted(f"{r['TraceId']}:{r['SpanId']}" for r in store.query_arrow(sql).to_pylist())


def snapshot(data_dir: str, sample: list[str]) -> dict[str, Any]:
    from tracelake.archiver.delta import ArchiveLocation
    from tracelake.archiver.service import ensure_archive_view
    from tracelake.objectstore import default_url
    from tracelake.store import open_store

    store = open_store(data_dir)
    try:
        ensure_archive_view(store, ArchiveLocation.for_url(default_url(data_dir)))
        return snapshot_store(store, sample)
    finally:
        store.close()


def snapshot_store(store, sample: list[str] = ()) -> dict[str, Any]:
    """The same, from an open store (a ClickHouse server's, in-process)."""
    out: dict[str, Any] = {
        "hot": _ids(store, "SELECT DISTINCT TraceId, SpanId FROM otel_traces"),
        "hot_visible": _ids(store, "SELECT DISTINCT TraceId, SpanId FROM otel_traces "
                                   "WHERE TraceId NOT IN (SELECT TraceId FROM archive_moving)"),
        "archive_visible": _ids(store, "SELECT TraceId, SpanId FROM otel_traces_archive"),
        "archive_rows": store.query_arrow("SELECT count() AS n FROM otel_traces_archive").to_pylist()[0]["n"],
        "summary_traces": store.query_arrow("SELECT uniqExact(TraceId) AS n FROM trace_summary").to_pylist()[0]["n"],
        "trace_id_ts": store.query_arrow("SELECT uniqExact(TraceId) AS n FROM otel_traces_trace_id_ts").to_pylist()[0]["n"],
        "archived_traces": sorted(store.query_arrow("SELECT TraceId FROM archived_traces").column("TraceId").to_pylist()),
        "index_rows": store.query_arrow("SELECT count() AS n FROM trace_summary_archive").to_pylist()[0]["n"],
        "runs": store.query_arrow("SELECT RunId, State FROM archive_run_state ORDER BY RunId").to_pylist(),
        "hot_partitions": sorted(store.query_arrow(
            "SELECT DISTINCT toString(partition) AS p FROM system.parts WHERE database = currentDatabase() "
            "AND table = 'otel_traces' AND active").column("p").to_pylist()),
        "attachments": sorted(store.query_arrow("SELECT DISTINCT Sha256 FROM attachments").column("Sha256").to_pylist()),
        "columns": {t: [[r["name"], r["type"]] for r in store.query_arrow(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = {t:String} "
            "AND default_kind != 'ALIAS' ORDER BY position", {"t": t}).to_pylist()]
            for t in ("otel_traces", "otel_traces_archive")},
    }
    for tier, table in (("hot_rows", "otel_traces"), ("archive_rows_sample", "otel_traces_archive")):
        rows = store.query_arrow(ROW_SQL.format(table=table), {"ids": ",".join(sample)}).to_pylist() if sample else []
        out[tier] = [{k: _norm(v) for k, v in r.items()} for r in rows]
    return out


DIGEST = "SELECT count() AS n, sum(cityHash64(TraceId, SpanId)) AS h FROM ({})"


def digest(data_dir: str, sample: list[str]) -> dict[str, Any]:
    """Counts and an order-independent hash of (TraceId, SpanId) per tier, for big stores."""
    from tracelake.archiver.delta import ArchiveLocation
    from tracelake.archiver.service import ensure_archive_view
    from tracelake.objectstore import default_url
    from tracelake.store import open_store

    store = open_store(data_dir)
    try:
        ensure_archive_view(store, ArchiveLocation.for_url(default_url(data_dir)))
        parts = {
            "hot": "SELECT DISTINCT TraceId, SpanId FROM otel_traces",
            "hot_visible": "SELECT DISTINCT TraceId, SpanId FROM otel_traces "
                           "WHERE TraceId NOT IN (SELECT TraceId FROM archive_moving)",
            "archive": "SELECT TraceId, SpanId FROM otel_traces_archive",
        }
        out: dict[str, Any] = {k: {kk: str(vv) for kk, vv in store.query_arrow(DIGEST.format(sql)).to_pylist()[0].items()}
                               for k, sql in parts.items()}
        out["traces_hot"] = store.query_arrow("SELECT uniqExact(TraceId) AS n FROM trace_summary").to_pylist()[0]["n"]
        out["traces_archived"] = store.query_arrow("SELECT count() AS n FROM archived_traces").to_pylist()[0]["n"]
        for tier, table in (("hot_rows", "otel_traces"), ("archive_rows_sample", "otel_traces_archive")):
            rows = store.query_arrow(ROW_SQL.format(table=table), {"ids": ",".join(sample)}).to_pylist() if sample else []
            out[tier] = [{k: _norm(v) for k, v in r.items()} for r in rows]
        return out
    finally:
        store.close()


def lookup(data_dir: str, sample: list[str]) -> dict[str, Any]:
    """Each sampled archived trace read by id as the trace page does (its Parquet files, straight)
    and through the engine view, before and after another writer deletes the first one from Delta
    and vacuums (as expiry or erasure do): the cached file list must see that change."""
    from tracelake.archiver.delta import ArchiveLocation, DeltaArchive
    from tracelake.archiver.service import ensure_archive_view
    from tracelake.objectstore import default_url
    from tracelake.query.params import Params
    from tracelake.store import open_store, tiers
    from tracelake.ui.queries import trace

    def read(store) -> dict[str, Any]:
        from deltalake import DeltaTable

        adds = DeltaTable(location.uri).get_add_actions(flatten=True)
        live = set(adds.column("path").to_pylist())
        days = [str(d) for d in adds.column("partition.Day").to_pylist()]
        out: dict[str, Any] = {}
        for tid in sample:
            loc = tiers.archive_location(store, tid)
            if loc is None:
                out[tid] = None
                continue
            direct = trace._source(Params(), loc, store)
            spans = [s.as_json() for s in trace._read_spans(store, loc)]
            view = tiers.Location(loc.trace_id, loc.tier, days=loc.days, projects=loc.projects)  # no runs: the view
            detail = trace.get_span(store, tid, spans[0]["span_id"], loc) if spans else None
            used = re.findall(r"file\('[^']*/archive/otel_traces/([^']+)'", direct)
            out[tid] = {"direct": bool(used) and "otel_traces_archive" not in direct, "spans": spans,
                        "files_live": bool(used) and set(used) <= live, "files_used": len(used),
                        "partition_files": sum(1 for d in days if d in {x.isoformat() for x in loc.days}),
                        "view_spans": [s.as_json() for s in trace._read_spans(store, view)],
                        "detail": None if detail is None else [detail.attributes, detail.resource, detail.events]}
        return out

    location = ArchiveLocation.for_url(default_url(data_dir))
    store = open_store(data_dir)
    try:
        ensure_archive_view(store, location)
        before = read(store)
        delta = DeltaArchive(location)  # another writer: its own table object
        delta.delete(f"TraceId = '{sample[0]}'")
        delta.vacuum()
        return {"before": before, "after": read(store)}
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["snapshot", "digest", "lookup"])
    parser.add_argument("data_dir")
    parser.add_argument("--sample", nargs="*", default=[])
    args = parser.parse_args()
    fn = {"snapshot": snapshot, "digest": digest, "lookup": lookup}[args.command]
    json.dump(fn(args.data_dir, args.sample), sys.stdout, default=str)


if __name__ == "__main__":
    main()
