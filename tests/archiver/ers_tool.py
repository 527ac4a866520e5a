"""Look at an embedded store from a subprocess after an erasure or a restore.

    python ers_tool.py inspect DATA_DIR NEEDLE...   -> rows holding a needle, per table (SQL)
    python ers_tool.py tiers DATA_DIR               -> (TraceId:SpanId) per tier as readers see them
    python ers_tool.py quick-cleanup DATA_DIR       -> tables drop replaced parts within a second
"""
from __future__ import annotations

import argparse
import json
import sys

CONTENT_TABLES = ("otel_traces", "trace_summary", "otel_traces_trace_id_ts", "trace_summary_archive",
                  "archive_attachments", "attachments")


def _open(data_dir: str):
    from tracelake.archiver.delta import ArchiveLocation
    from tracelake.archiver.service import ensure_archive_view
    from tracelake.objectstore import default_url
    from tracelake.store import open_store

    store = open_store(data_dir)
    ensure_archive_view(store, ArchiveLocation.for_url(default_url(data_dir)))
    return store


def inspect(data_dir: str, needles: list[str]) -> dict:
    store = _open(data_dir)
    try:
        out = {}
        for table in CONTENT_TABLES:
            cols = [r["name"] for r in store.query_arrow(
                "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String} "
                "AND type NOT LIKE 'AggregateFunction%'", {"t": table}).to_pylist()]
            expr = "concat(" + ", ".join(f"toString(`{c}`)" for c in cols) + ")"
            n = 0
            for i, needle in enumerate(needles):
                n += store.query_arrow(f"SELECT count() AS n FROM {table} WHERE position({expr}, {{m:String}}) > 0",
                                       {"m": needle}).to_pylist()[0]["n"]
            out[table] = n
        out["otel_traces_archive"] = sum(store.query_arrow(
            "SELECT count() AS n FROM otel_traces_archive WHERE position(concat(toString(SpanAttributes), "
            "toString(`Events.Attributes`), UserId), {m:String}) > 0", {"m": m}).to_pylist()[0]["n"] for m in needles)
        out["outdated_parts"] = store.query_arrow(
            "SELECT count() AS n FROM system.parts WHERE database = currentDatabase() AND NOT active").to_pylist()[0]["n"]
        return out
    finally:
        store.close()


def tiers(data_dir: str) -> dict:
    store = _open(data_dir)
    try:
        def ids(sql: str) -> list[str]:
            return sorted(f"{r['TraceId']}:{r['SpanId']}" for r in store.query_arrow(sql).to_pylist())

        return {
            "hot_rows": store.query_arrow("SELECT count() AS n FROM otel_traces").to_pylist()[0]["n"],
            "hot": ids("SELECT DISTINCT TraceId, SpanId FROM otel_traces"),
            "hot_visible": ids("SELECT DISTINCT TraceId, SpanId FROM otel_traces "
                               "WHERE TraceId NOT IN (SELECT TraceId FROM archive_moving)"),
            "archive_visible": ids("SELECT TraceId, SpanId FROM otel_traces_archive"),
            "archive_rows": store.query_arrow("SELECT count() AS n FROM otel_traces_archive").to_pylist()[0]["n"],
            "archived_traces": sorted(store.query_arrow("SELECT TraceId FROM archived_traces").column("TraceId").to_pylist()),
            "summary_traces": sorted(store.query_arrow("SELECT DISTINCT TraceId FROM trace_summary").column("TraceId").to_pylist()),
            "audit": store.query_arrow("SELECT Action, Outcome, Actor FROM audit_log ORDER BY Time").to_pylist(),
            "requests": store.query_arrow("SELECT RequestId, Kind, State FROM retention_request_state ORDER BY RequestId").to_pylist(),
        }
    finally:
        store.close()


def hold(data_dir: str, name: str, filter_text: str) -> dict:
    from tracelake.archiver.keep import create_hold

    store = _open(data_dir)
    try:
        return create_hold(store, name, filter_text, "litigation", actor="test").to_dict()
    finally:
        store.close()


def pin(data_dir: str, trace_id: str) -> dict:
    from tracelake.archiver.keep import pin as keep_pin

    store = _open(data_dir)
    try:
        return keep_pin(store, trace_id, until=None, actor="test", reason="keep").to_dict()
    finally:
        store.close()


def pins(data_dir: str) -> dict:
    from tracelake.archiver.keep import list_pins

    store = _open(data_dir)
    try:
        return {"pins": [p.to_dict() for p in list_pins(store)]}
    finally:
        store.close()


def quick_cleanup(data_dir: str) -> dict:
    """Every MergeTree table removes replaced parts within a second instead of ClickHouse's 30-40 s
    cleanup cycle (cleanup_delay_period 30 s + up to 10 s): an erasure that waits for them to go
    (TRACELAKE_ERASE_PARTS_WAIT_S) waits a second, not the cycle."""
    store = _open(data_dir)
    try:
        tables = store.query_arrow("SELECT name FROM system.tables WHERE database = currentDatabase() "
                                   "AND engine LIKE '%MergeTree'").column("name").to_pylist()
        for table in tables:
            store.execute(f"ALTER TABLE {table} MODIFY SETTING cleanup_delay_period = 1, "
                          "cleanup_delay_period_random_add = 0, max_cleanup_delay_period = 1")
        return {"tables": tables}
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["inspect", "tiers", "hold", "pin", "pins", "quick-cleanup"])
    parser.add_argument("data_dir")
    parser.add_argument("needles", nargs="*")
    args = parser.parse_args()
    if args.command == "inspect":
        doc = inspect(args.data_dir, args.needles)
    elif args.command == "hold":
        doc = hold(args.data_dir, *args.needles)
    elif args.command == "pin":
        doc = pin(args.data_dir, *args.needles)
    elif args.command == "pins":
        doc = pins(args.data_dir)
    elif args.command == "quick-cleanup":
        doc = quick_cleanup(args.data_dir)
    else:
        doc = tiers(args.data_dir)
    json.dump(doc, sys.stdout, default=str)


if __name__ == "__main__":
    main()
