"""Erasure and restore through the running server's API, with the archive and blobs on moto's S3:
after the receipt, nothing of the user is left in ClickHouse (SQL), in any S3 object (raw bytes,
every Parquet file decoded by pyarrow) — and the API refuses bad input with nothing changed."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from arx_helpers import POLICY
from ers_helpers import (CONTENT_MARK, SHARED_IMAGE, USER_MARK, VICTIM_ARCHIVED_IMAGE, VICTIM_IMAGE, cli,
                         make_world, parquet_values_holding, seed_world, sha)
from server_process import start_server


def _objects(endpoint: str, bucket: str) -> dict[str, bytes]:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


def _count(server, sql: str) -> int:
    return int(server.sql(sql)[0][0])


@pytest.fixture()
def s3_world(tmp_path: Path, moto_endpoint: str, s3_bucket: str) -> dict[str, Any]:
    w = make_world()
    policy = tmp_path / "retention.yaml"
    policy.write_text(POLICY)
    # No wait for ClickHouse to drop replaced parts (~40 s): this test reads through SQL and S3, and
    # test_erase.py checks the parts' bytes.
    flags = {"object_store": f"s3://{s3_bucket}/tl", "env": {"TRACELAKE_S3_ENDPOINT_URL": moto_endpoint,
                                                             "TRACELAKE_ERASE_SPOOL_WAIT_S": "60",
                                                             "TRACELAKE_ERASE_PARTS_WAIT_S": "0"}}
    seed_world(tmp_path / "data", w, policy, **flags)
    return {"w": w, "data": tmp_path / "data", "policy": policy, "flags": flags, "endpoint": moto_endpoint,
            "bucket": s3_bucket}


def test_erase_and_restore_through_the_api_on_s3(s3_world):
    w, endpoint, bucket = s3_world["w"], s3_world["endpoint"], s3_world["bucket"]
    with start_server(s3_world["data"], retention=str(s3_world["policy"]), archive_every="1d",
                      **s3_world["flags"]) as server:
        api = server.ui_url
        archived_before = _count(server, "SELECT count() FROM otel_traces_archive")
        # Wrong input: clear errors, nothing changed.
        bad = httpx.post(f"{api}/api/erase", json={"filter": "nosuchfield:1"}, timeout=120)
        assert bad.status_code == 400 and "filter does not parse" in bad.json()["error"]
        none = httpx.post(f"{api}/api/erase", json={"user": "nobody"}, timeout=120)
        assert none.status_code == 404 and "nothing matched" in none.json()["error"]
        # The CLI goes through the running server: its refusal is the server's.
        out = cli("erase", "--user", "nobody", "--url", api)
        assert out.returncode == 1 and "nothing matched" in out.stderr, (out.returncode, out.stderr)
        hold = httpx.post(f"{api}/api/holds", json={"name": "case-7", "filter": "session:victim-s1", "reason": "x"},
                          timeout=60)
        assert hold.status_code in (200, 201), hold.text
        held = httpx.post(f"{api}/api/erase", json={"user": USER_MARK}, timeout=120)
        assert held.status_code == 409 and held.json()["holds"]["case-7"]
        assert _count(server, "SELECT count() FROM otel_traces_archive") == archived_before
        assert _count(server, f"SELECT count() FROM otel_traces WHERE UserId = '{USER_MARK}'") > 0
        assert httpx.post(f"{api}/api/holds/case-7/release", timeout=60).status_code == 200
        # The erasure.
        r = httpx.post(f"{api}/api/erase", json={"user": USER_MARK}, timeout=600)
        assert r.status_code == 200, r.text
        receipt = r.json()
        assert set(receipt["matched_trace_ids"]) == w.victim
        assert receipt["spans"]["after"] == {"hot": 0, "archive": 0}
        assert receipt["spans"]["before"]["archive"] == sum(w.spans[t] for t in w.victim_archived)
        assert receipt["spool"]["checked"] and receipt["spool"]["drained"]
        assert receipt["delta"]["affected_files_left"] == [] and receipt["delta"]["files_rewritten"] >= 1
        assert set(receipt["blobs_removed"]) == {sha(VICTIM_IMAGE), sha(VICTIM_ARCHIVED_IMAGE)}
        # Receipts: listed, downloadable.
        listed = httpx.get(f"{api}/api/erasure", timeout=60).json()["receipts"]
        assert listed[0]["request_id"] == receipt["request_id"]
        dl = httpx.get(f"{api}/api/erasure/{receipt['request_id']}?download=1", timeout=60)
        assert dl.status_code == 200 and "attachment" in dl.headers["content-disposition"]
        assert dl.json() == receipt
        assert httpx.get(f"{api}/api/erasure/erase-20000101T000000Z-deadbeef", timeout=60).status_code == 404
        again = httpx.post(f"{api}/api/erase", json={"user": USER_MARK}, timeout=120)
        assert again.status_code == 404 and "nothing matched" in again.json()["error"]
        # From outside: ClickHouse by SQL...
        for table in ("otel_traces", "otel_traces_archive", "archived_traces"):
            assert _count(server, f"SELECT count() FROM {table} WHERE UserId = '{USER_MARK}'") == 0
        assert _count(server, f"SELECT count() FROM otel_traces WHERE position(toString(SpanAttributes), "
                              f"'{CONTENT_MARK}') > 0") == 0
        # ...and every object in the bucket: raw bytes and decoded Parquet.
        objects = _objects(endpoint, bucket)
        assert any(k.endswith(".parquet") for k in objects) and any("_delta_log" in k for k in objects)
        needles = [CONTENT_MARK, USER_MARK]
        assert [k for k, v in objects.items() if any(n.encode() in v for n in needles)] == []
        assert parquet_values_holding(objects, needles) == []
        blob_keys = [k for k in objects if "/blobs/" in k and not k.endswith(".json")]
        assert [k.rsplit("/", 1)[-1] for k in blob_keys] == [sha(SHARED_IMAGE)]
        assert not [k for k, v in objects.items() if VICTIM_IMAGE[-64:] in v or VICTIM_ARCHIVED_IMAGE[-64:] in v]
        # Another engine over the table format: delta-rs reads what is left.
        from deltalake import DeltaTable

        rows = DeltaTable(f"s3://{bucket}/tl/archive/otel_traces", storage_options={
            "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}).to_pyarrow_table().to_pylist()
        assert {x["TraceId"] for x in rows} == w.others_archived
        # Restore an archived trace through the API: hot, pinned, once.
        tid = sorted(w.others_archived)[0]
        res = httpx.post(f"{api}/api/traces/{tid}/restore", json={"pin_for": "2d"}, timeout=600)
        assert res.status_code == 200, res.text
        assert res.json()["spans_restored"] == w.spans[tid]
        assert _count(server, f"SELECT count() FROM otel_traces WHERE TraceId = '{tid}'") == w.spans[tid]
        assert _count(server, f"SELECT count() FROM otel_traces_archive WHERE TraceId = '{tid}'") == 0
        doc = httpx.get(f"{api}/api/traces/{tid}", timeout=60).json()
        assert doc.get("tier", "hot") == "hot"
        second = sorted(w.others_archived)[1]
        out = cli("archiver", "restore", second, "--pin-for", "1d", "--url", api, "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["spans_restored"] == w.spans[second]
        missing = httpx.post(f"{api}/api/traces/{tid}/restore", json={}, timeout=60)
        assert missing.status_code == 404
        bad_filter = httpx.post(f"{api}/api/restore", json={"filter": "status:"}, timeout=60)
        assert bad_filter.status_code == 400
