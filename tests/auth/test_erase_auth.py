"""Erasure and restore under access control, on a real ``tracelake server --auth --retention``: only
ops and up may erase or restore, a project's ops key reaches only its project's traces and
receipts, and every request is audited with the caller."""
from __future__ import annotations

import time

import pytest
from auth_stack import ADMIN_KEY, DAY_NS, RETENTION, Client, create_key, post_spans, start_auth_server
from otlp_spans import new_trace_id, span


def _send(server, key: str, name: str, days_old: int, user: str) -> str:
    trace_id = new_trace_id()
    start = time.time_ns() - days_old * DAY_NS
    post_spans(server, key, [span(name, trace_id, start_ns=start, duration_ns=5_000_000,
                                  attrs={"input.value": f"prompt of {name}", "user.id": user})])
    return trace_id.hex()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth-erase")
    rules = root / "retention.yaml"
    rules.write_text(RETENTION)
    server = start_auth_server(root / "data", retention=str(rules), env={"TRACELAKE_ERASE_PARTS_WAIT_S": "0"})
    try:
        traces = {}
        for p in ("A", "B"):
            ingest = create_key(server, p, "ingest")
            traces[p] = {"old": _send(server, ingest, f"old-{p}", 3, "same-user"),
                         "old2": _send(server, ingest, f"old2-{p}", 3, f"other-{p}"),
                         "new": _send(server, ingest, f"new-{p}", 0, "same-user")}
        server.wait_loaded(ADMIN_KEY)
        admin = Client(server, ADMIN_KEY)
        assert admin.post("/api/archiver/run", timeout=300).status_code == 200
        assert admin.sql("SELECT count() FROM archived_traces").json()["rows"] == [[4]]
        keys = {f"{p}:{r}": create_key(server, p, r) for p in ("A", "B") for r in ("viewer", "engineer", "ops")}
        yield server, traces, keys
    finally:
        server.terminate()


def test_erase_and_restore_need_ops_and_stay_in_the_project(world):
    server, traces, keys = world
    c = {name: Client(server, key) for name, key in keys.items()}
    admin = Client(server, ADMIN_KEY)
    for who in ("A:viewer", "A:engineer"):
        assert c[who].post("/api/erase", json={"user": "same-user"}).status_code == 403
        assert c[who].get("/api/erasure").status_code == 403
        assert c[who].post(f"/api/traces/{traces['A']['old2']}/restore", json={}).status_code == 403
        assert c[who].post("/api/restore", json={"filter": "user:other-A"}).status_code == 403
    # A's ops: the user's traces of project A only (B has a user with the same id).
    r = c["A:ops"].post("/api/erase", json={"user": "same-user"}, timeout=600)
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert set(receipt["matched_trace_ids"]) == {traces["A"]["old"], traces["A"]["new"]}
    assert receipt["request"]["project"] == "A"
    left = admin.sql("SELECT count() FROM otel_traces WHERE UserId = 'same-user'").json()["rows"]
    assert left == [[1]]  # B's hot trace
    assert admin.sql("SELECT TraceId FROM archived_traces WHERE UserId = 'same-user'").json()["rows"] == \
        [[traces["B"]["old"]]]
    # Receipts per project.
    assert [x["request_id"] for x in c["A:ops"].get("/api/erasure").json()["receipts"]] == [receipt["request_id"]]
    assert c["B:ops"].get("/api/erasure").json()["receipts"] == []
    assert c["B:ops"].get(f"/api/erasure/{receipt['request_id']}").status_code == 404
    assert admin.get(f"/api/erasure/{receipt['request_id']}").status_code == 200
    # Receipts name users and traces of every project: SQL from a project key cannot read them.
    for table in ("erasure_receipts", "retention_requests", "retention_targets"):
        r = c["B:ops"].sql(f"SELECT count() FROM {table}")
        assert r.status_code == 400 and f"{table} is not readable here" in r.text, (table, r.status_code, r.text)
    # Restore: A's ops cannot reach B's archived trace; can restore A's.
    assert c["A:ops"].post(f"/api/traces/{traces['B']['old2']}/restore", json={}).status_code == 404
    ok = c["A:ops"].post(f"/api/traces/{traces['A']['old2']}/restore", json={"pin_for": "1d"}, timeout=300)
    assert ok.status_code == 200, ok.text
    # Audited with the caller.
    rows = admin.get("/api/audit").json()
    rows = rows["entries"] if isinstance(rows, dict) else rows
    mine = {(row["action"], row["role"], row["outcome"]) for row in rows if row["action"] in ("erase", "restore")}
    assert ("erase", "ops", "ok") in mine and ("restore", "ops", "ok") in mine and ("restore", "ops", "refused") in mine


def test_trace_page_shows_restore_only_to_ops(world):
    server, traces, keys = world
    tid = traces["B"]["old2"]
    eng = Client(server, keys["B:engineer"]).get(f"/traces/{tid}")
    assert eng.status_code == 200 and 'id="restore-button"' not in eng.text and "restore-not-allowed" in eng.text
    ops = Client(server, keys["B:ops"]).get(f"/traces/{tid}")
    assert ops.status_code == 200 and 'id="restore-button"' in ops.text
