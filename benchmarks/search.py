#!/usr/bin/env python3
"""Search benchmark (issue 23): what the text index buys and what it costs, on one embedded store.

Seeds ``--spans`` realistic LLM-agent spans (benchmarks/ui.py's seeding: the shared otlp_load
generator) two days old, then in the same run:

* cost: copies the spans into a table like otel_traces without the text index and one with it
  (INSERT ... SELECT, the store's own insert path minus OTLP decoding) -> insert seconds and the
  ratio; compressed bytes per span of the data and of the index;
* hot queries: free text (frequent word, rare id, no match), a prefix, a phrase, each through the
  trace list's own SQL condition, p50/p95 with the index and with ``use_skip_indexes = 0``
  (the scan the index replaces), query condition cache off;
* archive: runs the archiver (every span moves to the Delta archive), times the run and the term
  indexing after it (spans/s), then the trace list over the archive (API, 30 days) for the same
  terms: p50/p95, and how many files each no-match search opened.

    python benchmarks/search.py --spans 1000000
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ui as ui_bench  # noqa: E402

DAY_NS = 86400 * 10**9
TERMS = {"frequent word": "refund", "rare word (doc id)": None, "no match": "zqxvwk", "prefix": "refun*",
         "phrase": '"refund summary"', "phrase, no match": '"refund zqxvwk"'}


def pct(xs: list[float], p: float) -> float:
    return ui_bench.pct(xs, p)


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--data-dir", type=Path)
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from tracelake.archiver.delta import ArchiveLocation
    from tracelake.archiver.policy import parse_policy
    from tracelake.archiver.service import Archiver
    from tracelake.config import Settings
    from tracelake.query.compile import HOT
    from tracelake.query.filters import parse
    from tracelake.query.params import Params
    from tracelake.query.text_search import term_sql
    from tracelake.store import open_store
    from tracelake.ui.queries import archive_files
    from tracelake.web import create_app

    root = args.data_dir or Path(tempfile.mkdtemp(prefix="tl-search-"))
    store = open_store(root / "data")
    n, secs = ui_bench.seed(store, args.spans, age_ns=2 * DAY_NS)
    print(f"seeded {n:,} spans in {secs:.1f} s ({n / secs:,.0f} spans/s through insert_otlp)")
    # A document id quoted in one prompt: the rarest kind of word the generator writes.
    rare = store.query_arrow("SELECT extract(SpanAttributes['gen_ai.input.messages'], 'doc-[0-9]+') AS v FROM otel_traces "
                             "WHERE v != '' LIMIT 1").column("v")[0].as_py()
    terms = {k: (v if v is not None else rare) for k, v in TERMS.items()}

    # --- cost: the same rows into a table without and with the index --------------------------------
    ddl = store.query_arrow("SHOW CREATE TABLE otel_traces").column(0)[0].as_py()
    cost = {}
    for name, keep in (("without index", False), ("with index", True)):
        table = "bench_with" if keep else "bench_without"
        body = ddl.replace("CREATE TABLE tracelake.otel_traces", f"CREATE TABLE tracelake.{table}")
        store.execute(f"DROP TABLE IF EXISTS {table}")
        store.execute(body)
        if not keep:
            store.execute(f"ALTER TABLE {table} DROP INDEX idx_search_text")
        t = time.perf_counter()
        store.execute(f"INSERT INTO {table} SELECT * FROM otel_traces")
        cost[name] = time.perf_counter() - t
        store.execute(f"OPTIMIZE TABLE {table} FINAL")
        r = store.query_arrow(f"SELECT sum(data_compressed_bytes) AS d, sum(secondary_indices_compressed_bytes) AS i "
                              f"FROM system.parts WHERE database = currentDatabase() AND table = '{table}' AND active").to_pylist()[0]
        print(f"  insert {name}: {cost[name]:.1f} s ({n / cost[name]:,.0f} spans/s); data {r['d'] / n:.1f} B/span, "
              f"all skip indexes {r['i'] / n:.1f} B/span")
        store.execute(f"DROP TABLE {table}")
    print(f"insert cost ratio with/without the text index: {cost['with index'] / cost['without index']:.2f}x")

    # --- hot: the list's span condition, indexed vs scanned -----------------------------------------
    print(f"\nhot tier, {n:,} spans: p50 / p95 ms over {args.runs} runs (index | scan, same run)")
    for label, q in terms.items():
        p = Params()
        cond = term_sql(p, parse(q), HOT.text)
        sql = f"SELECT count() AS c FROM otel_traces WHERE {cond}"
        bound = p.bound(store)
        res = {}
        for mode, extra in (("index", ""), ("scan", ", use_skip_indexes = 0")):
            found = []
            xs = timed(lambda: found.append(store.query_arrow(
                f"{sql} SETTINGS use_query_condition_cache = 0{extra}", bound).column("c")[0].as_py()), args.runs)
            res[mode] = (xs, found[0])
        assert res["index"][1] == res["scan"][1], (label, res["index"][1], res["scan"][1])
        i, s = res["index"][0], res["scan"][0]
        print(f"  {label:18} {res['index'][1]:>9,} spans  {pct(i, 50):7.0f} / {pct(i, 95):7.0f} | {pct(s, 50):7.0f} / "
              f"{pct(s, 95):7.0f}   {statistics.median(s) / max(statistics.median(i), 0.01):6.1f}x")

    # --- archive: run, term indexing, list over the archive ----------------------------------------
    policy = parse_policy("rules:\n  - name: default\n    hot: 1d\n    archive: forever\n")
    archiver = Archiver(store, policy, ArchiveLocation.for_url((root / "objects").as_uri()))
    app = create_app(store, Settings())
    app.state.archiver = archiver
    with TestClient(app) as client:
        t = time.perf_counter()
        archiver.run_once()  # includes the term indexing of the new files
        total = time.perf_counter() - t
        store.execute("TRUNCATE TABLE archive_terms")
        store.execute("TRUNCATE TABLE archive_term_files")
        t = time.perf_counter()
        archiver.index_text()
        index_s = time.perf_counter() - t
        print(f"\narchive run + term indexing: {total:.1f} s; term indexing alone {index_s:.1f} s "
              f"({n / index_s:,.0f} spans/s); archive write without it ~{n / max(total - index_s, 0.01):,.0f} spans/s")
        terms_rows = store.query_arrow("SELECT count() AS c FROM archive_terms").column("c")[0].as_py()
        terms_bytes = store.query_arrow("SELECT sum(data_compressed_bytes) AS b FROM system.parts WHERE database = currentDatabase() "
                                        "AND table = 'archive_terms' AND active").column("b")[0].as_py()
        print(f"term index: {terms_rows:,} (word, row group) rows, {terms_bytes / n:.1f} B per archived span")
        print(f"archive trace list (30d): p50 / p95 ms, files opened per search")
        for label, q in terms.items():
            before = archive_files.OPENED["files"] + archive_files.OPENED["view_scans"]
            xs = timed(lambda: client.get("/api/traces", params={"q": q, "range": "30d"}).raise_for_status(), args.runs)
            opened = (archive_files.OPENED["files"] + archive_files.OPENED["view_scans"] - before) / args.runs
            print(f"  {label:18} {pct(xs, 50):7.0f} / {pct(xs, 95):7.0f}   {opened:.1f} files")
    archiver.release()
    store.close()


if __name__ == "__main__":
    main()
