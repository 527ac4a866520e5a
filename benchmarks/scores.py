#!/usr/bin/env python3
"""Score filters on the trace list (issue 25), on the embedded store, in-process (FastAPI TestClient).

Seeds ``--spans`` spans of 8-span agent traces (benchmarks/ui.py's seeder) over the last ~day,
then ``--scores`` scores on random traces: 70 % ``correctness`` 1-5 (some with a second, newer
score: history), 30 % ``thumbs`` up/down, and a hundred ``tone`` scores on spans. Times the list
unfiltered (the baseline, same run) and with score filters, and prints p50/p95 and their ratio to
the baseline; then the time from ``POST /api/scores`` to the trace being listed by a filter.

    python benchmarks/scores.py --spans 1000000 --scores 100000      # the shared 2-core machine
    python benchmarks/scores.py --spans 10000000 --scores 1000000 --data-dir /tmp/tl-scores --keep

``--otlp-latency``: also starts a ``tracelake server`` on a small store and times an SDK score
(another process, through the collector's spool) until a filter lists its trace.

Targets: a filter on a score over 10M spans with 1M scores answers p95 < 300 ms; a new score is
visible in the list and filters within 2 s.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ui import pct, seed  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

FILTERS = ("score.correctness<2", "score.thumbs:down", "has:score.tone", "score.correctness>=4 score.thumbs:up",
           "-has:score.thumbs", "score.correctness<2 status:error")


def seed_scores(store, n: int) -> dict[str, int]:
    """``n`` scores on random traces, written by INSERT ... SELECT (ids from the summary)."""
    traces = int(store.query_arrow("SELECT uniqExact(TraceId) AS n FROM trace_summary").to_pylist()[0]["n"])
    correctness, thumbs = int(n * 0.7), n - int(n * 0.7) - 100
    base = ("INSERT INTO scores (Project, TraceId, SpanId, Name, Value, StringValue, DataType, Comment, Source, Author, "
            "AuthorVersion, ScoreId, CreatedAt) ")
    picks = "(SELECT Project, TraceId FROM (SELECT DISTINCT Project, TraceId FROM trace_summary) ORDER BY cityHash64(TraceId, {salt}) LIMIT {n})"
    store.execute(base + "SELECT Project, TraceId, '', 'correctness', toFloat64(1 + cityHash64(TraceId, 1) % 5), '', 'numeric', "
                  "'', 'code', 'judge', 'v1', hex(cityHash64(TraceId, 'c')), now64(3) - toIntervalMinute(30) "
                  f"FROM {picks.format(salt=1, n=correctness)}")
    # A tenth of them judged again later: the newest one is current.
    store.execute(base + "SELECT Project, TraceId, '', 'correctness', toFloat64(1 + cityHash64(TraceId, 2) % 5), '', 'numeric', "
                  "'second look', 'human', 'reviewer', '', hex(cityHash64(TraceId, 'c2')), now64(3) - toIntervalMinute(5) "
                  f"FROM {picks.format(salt=1, n=correctness // 10)}")
    store.execute(base + "SELECT Project, TraceId, '', 'thumbs', if(cityHash64(TraceId, 3) % 3 = 0, 0., 1.), "
                  "if(cityHash64(TraceId, 3) % 3 = 0, 'down', 'up'), 'categorical', '', 'app', 'user', '', "
                  f"hex(cityHash64(TraceId, 't')), now64(3) - toIntervalMinute(20) FROM {picks.format(salt=3, n=thumbs)}")
    store.execute(base + "SELECT Project, TraceId, 'aaaaaaaaaaaaaaaa', 'tone', nan, 'rude', 'categorical', '', 'human', 'r', '', "
                  f"hex(cityHash64(TraceId, 'o')), now64(3) FROM {picks.format(salt=4, n=100)}")
    total = int(store.query_arrow("SELECT count() AS n FROM scores").to_pylist()[0]["n"])
    return {"traces": traces, "scores": total}


def timed(client, params: dict, runs: int) -> tuple[list[float], int]:
    out, rows = [], 0
    for _ in range(runs):
        t = time.perf_counter()
        r = client.get("/api/traces", params=params)
        out.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, r.text
        rows = len(r.json()["traces"])
    return out, rows


def api_latency(client, store, runs: int = 5) -> list[float]:
    """POST a score on an unscored trace, then poll a filter until it lists the trace (ms)."""
    ids = [r["TraceId"] for r in store.query_arrow(
        "SELECT TraceId FROM trace_summary WHERE TraceId NOT IN (SELECT TraceId FROM scores) "
        "AND Start > now64() - toIntervalHour(1) LIMIT {n:UInt32}", {"n": runs}).to_pylist()]
    out = []
    for i, tid in enumerate(ids):
        t = time.perf_counter()
        assert client.post("/api/scores", json={"trace_id": tid, "name": f"fresh{i}", "value": 1}).status_code == 201
        while tid not in {x["trace_id"] for x in client.get("/api/traces", params={"q": f"has:score.fresh{i}", "range": "24h"}).json()["traces"]}:
            time.sleep(0.01)
        out.append((time.perf_counter() - t) * 1000)
    return out


SDK_SCORE = """
import sys, tracelake
tracelake.autotrace(endpoint=sys.argv[1], service_name="bench")
with tracelake.span("bench answer"):
    tid = tracelake.current_trace_id()
assert tracelake.flush()
import time; t = time.time()
tracelake.score("bench_thumbs", "down", trace_id=tid)
assert tracelake.flush()
print(tid, t)
"""


def otlp_latency(runs: int) -> list[float]:
    """SDK score from another process -> collector spool -> store -> listed by a filter (ms)."""
    import httpx

    sys.path.insert(0, str(REPO / "tests"))
    from server_process import start_server  # type: ignore[import-not-found]

    root = Path(tempfile.mkdtemp(prefix="tl-scores-otlp-"))
    out = []
    try:
        with start_server(root / "data") as srv:
            for _ in range(runs):
                done = subprocess.run([sys.executable, "-c", SDK_SCORE, srv.otlp_http_url], capture_output=True,
                                      text=True, check=True)
                tid, sent = done.stdout.split()
                while tid not in {x["trace_id"] for x in httpx.get(f"{srv.ui_url}/api/traces", params={
                        "q": "score.bench_thumbs:down", "range": "1h", "limit": 200}).json()["traces"]}:
                    time.sleep(0.01)
                out.append((time.time() - float(sent)) * 1000)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--scores", type=int, default=None, help="default: spans / 10")
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--no-seed", action="store_true")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--otlp-latency", action="store_true")
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from tracelake.config import Settings
    from tracelake.store import open_store
    from tracelake.web import create_app

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="tl-scores-"))
    store = open_store(data_dir=data_dir)
    try:
        if not args.no_seed:
            spans, secs = seed(store, args.spans)
            print(f"seeded {spans:,} spans in {secs:.0f} s", file=sys.stderr)
            t = time.perf_counter()
            info = seed_scores(store, args.scores or args.spans // 10)
            print(f"seeded {info['scores']:,} scores on {info['traces']:,} traces in {time.perf_counter() - t:.1f} s",
                  file=sys.stderr)
        client = TestClient(create_app(store, Settings(data_dir=data_dir)))
        for q in ("", *FILTERS):  # warm up: first queries pay for marks and caches
            timed(client, {"q": q, "range": "24h"}, 2)
        base, _ = timed(client, {"range": "24h"}, args.runs)
        b50, b95 = pct(base, 50), pct(base, 95)
        results = {"spans": args.spans, "baseline_ms": {"p50": round(b50, 1), "p95": round(b95, 1)}, "filters": {}}
        print(f"{'filter':45s} {'rows':>5s} {'p50 ms':>8s} {'p95 ms':>8s} {'p50/base':>9s} {'p95/base':>9s}")
        print(f"{'(none: unfiltered list, baseline)':45s} {50:5d} {b50:8.1f} {b95:8.1f} {1:9.2f} {1:9.2f}")
        for q in FILTERS:
            xs, rows = timed(client, {"q": q, "range": "24h"}, args.runs)
            p50, p95 = pct(xs, 50), pct(xs, 95)
            results["filters"][q] = {"rows": rows, "p50": round(p50, 1), "p95": round(p95, 1),
                                     "p50_ratio": round(p50 / b50, 2), "p95_ratio": round(p95 / b95, 2)}
            print(f"{q:45s} {rows:5d} {p50:8.1f} {p95:8.1f} {p50 / b50:9.2f} {p95 / b95:9.2f}")
        lat = api_latency(client, store)
        results["api_score_to_listed_ms"] = [round(x, 1) for x in lat]
        print(f"POST /api/scores -> listed by has:score.<name>: max {max(lat):.0f} ms over {len(lat)} "
              f"(ratio to the baseline p50: {max(lat) / b50:.1f})")
        if args.otlp_latency:
            olat = otlp_latency(5)
            results["sdk_score_to_listed_ms"] = [round(x) for x in olat]
            print(f"SDK score -> spool -> store -> listed: max {max(olat):.0f} ms over {len(olat)}")
        print(json.dumps(results))
    finally:
        store.close()
        if not args.keep and not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
