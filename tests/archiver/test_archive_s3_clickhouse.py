"""The archiver on its own against a ClickHouse server (the clickhouse-connect path, served by
tests/chhttp.py) with the archive on S3 (moto's server): a run, the table read by delta-rs
without tracelake, and the object store or ClickHouse going down in the middle of a run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from arx_helpers import POLICY, make_dataset, send, trace_ids
from arx_tool import snapshot_store
from arx_proxy import TcpProxy
from server_process import start_clickhouse_endpoint, start_server

from tracelake.store import open_store


def _wait(path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


class World:
    def __init__(self, tmp: Path, endpoint_url: str, s3: str, bucket: str) -> None:
        self.tmp, self.s3, self.bucket = tmp, s3, bucket
        self.db_url = f"{endpoint_url}/arx_{uuid.uuid4().hex[:8]}"
        self.ds = make_dataset()
        self.policy = tmp / "retention.yaml"
        self.policy.write_text(POLICY)
        self.pause = tmp / "pause"
        self.pause.mkdir()

    def seed(self) -> None:
        """Old spans through a real collector writing to the ClickHouse server."""
        collector = start_server(self.tmp / "collector", command="collector", clickhouse_url=self.db_url)
        try:
            send(collector, self.ds.requests)
            store = open_store(clickhouse_url=self.db_url, migrate=False)
            deadline = time.monotonic() + 60
            want = sum(self.ds.spans.values())
            while store.query_arrow("SELECT count() AS n FROM otel_traces").to_pylist()[0]["n"] < want:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            store.close()
        finally:
            assert collector.terminate() == 0, collector.output

    def archiver(self, *extra_env: tuple[str, str], s3_endpoint: str | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, "TRACELAKE_S3_ENDPOINT_URL": s3_endpoint or self.s3, "TRACELAKE_ARCHIVE_CHUNK_SPANS": "20",
               "TRACELAKE_ARCHIVER_PAUSE_DIR": str(self.pause), **dict(extra_env)}
        argv = [sys.executable, "-m", "tracelake.cli", "archiver", "run", "--clickhouse-url", self.db_url,
                "--object-store", f"s3://{self.bucket}/tl", "--retention", str(self.policy), "--json"]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def snapshot(self) -> dict[str, Any]:
        from tracelake.archiver.delta import ArchiveLocation
        from tracelake.store.archive_schema import archive_table_sql, archive_view_sql, empty_archive_view_sql

        # No delta-rs in this process: moto serves S3 from a thread here, and delta-rs holds the
        # GIL while it waits for S3. The view only needs ClickHouse (the archiver made the table).
        store = open_store(clickhouse_url=self.db_url)
        try:
            source = ArchiveLocation.for_url(f"s3://{self.bucket}/tl", endpoint_url=self.s3).clickhouse_source
            ran = store.query_arrow("SELECT count() AS n FROM archive_runs").to_pylist()[0]["n"]
            if ran:
                store.execute(archive_table_sql(source))
                store.execute(archive_view_sql(store.database))
            else:
                store.execute(empty_archive_view_sql())
            return snapshot_store(store)
        finally:
            store.close()

    def check_one_tier(self, snap: dict[str, Any], before: set[str]) -> None:
        hot, archive = set(snap["hot_visible"]), set(snap["archive_visible"])
        assert not hot & archive
        kept = {p for p in before if p.split(":")[0] in self.ds.stay_hot | self.ds.archive}
        assert kept <= hot | archive <= before

    def check_final(self, snap: dict[str, Any], before: set[str]) -> None:
        assert trace_ids(snap["hot"]) == self.ds.stay_hot
        assert set(snap["archive_visible"]) == {p for p in before if p.split(":")[0] in self.ds.archive}
        assert snap["archive_rows"] == len(snap["archive_visible"])
        assert snap["summary_traces"] == len(self.ds.stay_hot)


# With S3 cut, each S3 request of the archiver's statements is retried with backoff (8 attempts,
# ~6 s; reads retry that again): a run took ~75 s to fail. Two attempts fail it in well under a
# second and still ride out a hiccup of moto's.
CLICKHOUSE_SETTINGS = {"s3_retry_attempts": 2}


@pytest.fixture()
def endpoint(tmp_path: Path):
    ep = start_clickhouse_endpoint(tmp_path / "ch", settings=CLICKHOUSE_SETTINGS)
    yield ep
    ep.stop()


@pytest.fixture()
def world(tmp_path: Path, endpoint, moto_endpoint: str, s3_bucket: str) -> World:
    w = World(tmp_path, endpoint.url, moto_endpoint, s3_bucket)
    w.seed()
    return w


def _finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_run_on_clickhouse_server_with_s3_archive(world: World, aws_env):
    before = set(world.snapshot()["hot"])
    code, out, err = _finish(world.archiver())
    assert code == 0, err
    assert json.loads(out)["runs"][-1]["state"] == "done"
    snap = world.snapshot()
    world.check_final(snap, before)
    # Any Delta reader sees the archive without tracelake: delta-rs straight from S3 (in a
    # subprocess: moto runs on a thread of this one).
    script = (
        "import deltalake, json, os, sys\n"
        f"t = deltalake.DeltaTable('s3://{world.bucket}/tl/archive/otel_traces', storage_options={{"
        f"'AWS_ENDPOINT_URL': '{world.s3}', 'AWS_ALLOW_HTTP': 'true', 'AWS_REGION': 'us-east-1', "
        "'AWS_ACCESS_KEY_ID': 'testing', 'AWS_SECRET_ACCESS_KEY': 'testing'}).to_pyarrow_table("
        "columns=['TraceId', 'SpanId', 'Project', 'Events'])\n"
        "json.dump({'ids': [f'{a}:{b}' for a, b in zip(t.column('TraceId').to_pylist(), t.column('SpanId').to_pylist())],"
        " 'projects': sorted(set(t.column('Project').to_pylist())),"
        " 'events': sum(len(e) for e in t.column('Events').to_pylist())}, sys.stdout)\n"
        # delta-rs' runtime sometimes aborts while the interpreter tears down ("terminate called
        # without an active exception"), after the answer is written: leave without the teardown.
        "sys.stdout.flush(); os._exit(0)\n")
    read = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert read.returncode == 0, read.stderr
    doc = json.loads(read.stdout)
    # The raw table holds exactly the committed archive (no run left uncommitted rows here).
    assert set(doc["ids"]) == set(snap["archive_visible"]) and len(doc["ids"]) == len(set(doc["ids"]))
    assert doc["projects"] == ["default"] and doc["events"] > 0


def test_object_store_down_mid_write_then_rerun(world: World, aws_env):
    before = set(world.snapshot()["hot"])
    proxy = TcpProxy(int(world.s3.rsplit(":", 1)[1])).start()
    proc = world.archiver(("TRACELAKE_ARCHIVER_FAIL_AT", "mid_write:pause"), s3_endpoint=proxy.url)
    _wait(world.pause / "mid_write.paused")
    proxy.cut()  # S3 goes away while the Delta writer is streaming
    (world.pause / "mid_write.go").touch()
    code, _, err = _finish(proc)
    assert code == 1 and "archive object store" in err, err
    snap = world.snapshot()
    world.check_one_tier(snap, before)
    assert [r["State"] for r in snap["runs"]] == ["planned"]
    assert set(snap["hot"]) == before  # nothing left the hot tier
    code, _, err = _finish(world.archiver())  # S3 is back (direct): the run resumes and completes
    assert code == 0, err
    world.check_final(world.snapshot(), before)


def test_clickhouse_down_between_archive_commit_and_hot_delete(world: World, endpoint, aws_env, tmp_path):
    before = set(world.snapshot()["hot"])
    proc = world.archiver(("TRACELAKE_ARCHIVER_FAIL_AT", "after_delta_commit:pause"))
    _wait(world.pause / "after_delta_commit.paused")
    port = int(endpoint.url.rsplit(":", 1)[1])
    endpoint.stop()  # ClickHouse goes away after the Delta commit, before the flip and the delete
    (world.pause / "after_delta_commit.go").touch()
    code, _, err = _finish(proc)
    assert code == 1, err
    restarted = start_clickhouse_endpoint(tmp_path / "ch", port=port, settings=CLICKHOUSE_SETTINGS)
    try:
        snap = world.snapshot()
        world.check_one_tier(snap, before)
        assert set(snap["hot_visible"]) == before  # the archive copy stays invisible until the flip
        code, _, err = _finish(world.archiver())
        assert code == 0, err
        world.check_final(world.snapshot(), before)
    finally:
        restarted.stop()
