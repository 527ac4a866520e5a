"""Erasure and restore run on their own (``--clickhouse-url``) against a ClickHouse server over HTTP
(the clickhouse-connect path), archive and blobs on moto's S3; checked from outside."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from arx_helpers import POLICY, send
from ers_helpers import (CONTENT_MARK, SHARED_IMAGE, USER_MARK, VICTIM_ARCHIVED_IMAGE, VICTIM_IMAGE, make_world,
                         parquet_values_holding, sha)
from server_process import start_clickhouse_endpoint, start_server
from test_erase_server import _objects

from tracelake.store import open_store


@pytest.fixture()
def endpoint(tmp_path: Path):
    ep = start_clickhouse_endpoint(tmp_path / "ch")
    yield ep
    ep.stop()


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tracelake.cli", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})


def test_erase_and_restore_on_a_clickhouse_server(tmp_path: Path, endpoint, moto_endpoint: str, s3_bucket: str):
    w = make_world()
    db = f"{endpoint.url}/ers_{uuid.uuid4().hex[:8]}"
    obj = f"s3://{s3_bucket}/tl"
    env = {"TRACELAKE_S3_ENDPOINT_URL": moto_endpoint, "TRACELAKE_ERASE_PARTS_WAIT_S": "0"}
    policy = tmp_path / "retention.yaml"
    policy.write_text(POLICY)
    collector = start_server(tmp_path / "collector", command="collector", clickhouse_url=db, object_store=obj, env=env)
    try:
        send(collector, w.requests)
        store = open_store(clickhouse_url=db, migrate=False)
        deadline = time.monotonic() + 60
        while store.query_arrow("SELECT count() AS n FROM otel_traces").to_pylist()[0]["n"] < sum(w.spans.values()):
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        assert collector.terminate() == 0, collector.output
    common = ["--clickhouse-url", db, "--object-store", obj, "--json"]
    run = _cli("archiver", "run", *common, "--retention", str(policy), env=env)
    assert run.returncode == 0, run.stderr
    out = _cli("erase", "--user", USER_MARK, *common, env=env)
    assert out.returncode == 0, out.stderr
    receipt = json.loads(out.stdout)
    assert set(receipt["matched_trace_ids"]) == w.victim
    assert receipt["spans"]["after"] == {"hot": 0, "archive": 0}
    assert receipt["spans"]["before"]["hot"] == sum(w.spans[t] for t in w.victim_hot)
    assert set(receipt["blobs_removed"]) == {sha(VICTIM_IMAGE), sha(VICTIM_ARCHIVED_IMAGE)}
    assert receipt["spool"]["checked"] is False  # no spool visible from here: the receipt says so
    for table in ("otel_traces", "trace_summary_archive"):
        n = store.query_arrow(f"SELECT count() AS n FROM {table} WHERE UserId = {{u:String}}", {"u": USER_MARK}).to_pylist()[0]["n"]
        assert n == 0, table
    assert store.query_arrow("SELECT count() AS n FROM otel_traces WHERE position(toString(SpanAttributes), {m:String}) > 0",
                             {"m": CONTENT_MARK}).to_pylist()[0]["n"] == 0
    objects = _objects(moto_endpoint, s3_bucket)
    needles = [CONTENT_MARK, USER_MARK]
    assert [k for k, v in objects.items() if any(n.encode() in v for n in needles)] == []
    assert parquet_values_holding(objects, needles) == []
    assert sorted(k.rsplit("/", 1)[-1] for k in objects if "/blobs/" in k and not k.endswith(".json")) == [sha(SHARED_IMAGE)]
    again = _cli("erase", "--user", USER_MARK, *common, env=env)
    assert again.returncode == 1 and "nothing matched" in again.stderr
    # Restore one archived trace of another user: hot once, archive copy gone.
    tid = sorted(w.others_archived)[0]
    res = _cli("archiver", "restore", tid, *common, env=env)
    assert res.returncode == 0, res.stderr
    n = store.query_arrow("SELECT count() AS n, uniqExact(SpanId) AS u FROM otel_traces WHERE TraceId = {t:String}",
                          {"t": tid}).to_pylist()[0]
    assert (n["n"], n["u"]) == (w.spans[tid], w.spans[tid])
    assert store.query_arrow("SELECT count() AS n FROM trace_summary_archive WHERE TraceId = {t:String}",
                             {"t": tid}).to_pylist()[0]["n"] == 0
    store.close()
