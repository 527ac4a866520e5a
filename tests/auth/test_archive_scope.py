"""Access over the archive tier: archived traces stay inside their project, and retention needs rights.

A real ``tracelake server --auth --retention``: two projects send traces three days old through the
collector with their ingest keys, an admin runs the archiver through the API, then callers of
project A read through every surface (list, trace by id, /api/sql on the archive tables).
"""
from __future__ import annotations

import json
import time

import httpx
import pytest
from auth_stack import ADMIN_KEY, DAY_NS, RETENTION, Client, create_key, post_spans, start_auth_server
from otlp_spans import new_trace_id, span


def _send_old_trace(server, key: str, name: str) -> str:
    trace_id = new_trace_id()
    start = time.time_ns() - 3 * DAY_NS
    root = span(name, trace_id, start_ns=start, duration_ns=5_000_000, attrs={"input.value": f"prompt of {name}"})
    post_spans(server, key, [root, span(f"{name}-child", trace_id, parent=root["span_id"], start_ns=start + 1_000_000)])
    return trace_id.hex()


@pytest.fixture(scope="module")
def archived(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth-archive")
    rules = root / "retention.yaml"
    rules.write_text(RETENTION)
    server = start_auth_server(root / "data", retention=str(rules))
    try:
        traces = {p: _send_old_trace(server, create_key(server, p, "ingest"), f"old-{p}") for p in ("A", "B")}
        server.wait_loaded(ADMIN_KEY)
        keys = {role: create_key(server, "A", role) for role in ("viewer", "ops")}
        yield server, traces, keys
    finally:
        server.terminate()


def _run(client: Client) -> httpx.Response:
    return client.post("/api/archiver/run", timeout=300)


def test_only_admins_run_the_archiver_and_ops_read_retention(archived):
    server, traces, keys = archived
    viewer, ops, admin = Client(server, keys["viewer"]), Client(server, keys["ops"]), Client(server, ADMIN_KEY)
    assert _run(viewer).status_code == 403
    assert _run(ops).status_code == 403  # a run acts on every project's traces
    assert viewer.get("/retention").status_code == 403
    assert viewer.get("/api/archiver/runs").status_code == 403
    assert ops.get("/api/archiver/runs").status_code == 200
    done = _run(admin)
    assert done.status_code == 200, done.text
    events = [json.loads(line) for line in done.text.splitlines() if line.strip()]
    assert events[-1]["event"] == "result" and [r["state"] for r in events[-1]["runs"]] == ["done"], events[-1]
    audit = admin.get("/api/audit").json()
    rows = audit["entries"] if isinstance(audit, dict) else audit
    assert any(row["action"] == "archiver.run" and row["role"] == "admin" for row in rows), rows


def test_archived_traces_stay_in_their_project(archived):
    server, traces, keys = archived
    admin = Client(server, ADMIN_KEY)
    if admin.sql("SELECT count() FROM archived_traces").json()["rows"] != [[2]]:
        assert _run(admin).status_code == 200  # this test alone: archive first
    assert admin.sql("SELECT count() FROM archived_traces").json()["rows"] == [[2]]
    assert admin.sql("SELECT count() FROM otel_traces").json()["rows"] == [[0]]  # both left the hot tier

    viewer = Client(server, keys["viewer"])
    listed = viewer.get("/api/traces", params={"range": "7d"}).json()["traces"]
    assert [(t["trace_id"], t["tier"]) for t in listed] == [(traces["A"], "archive")]
    own = viewer.get(f"/api/traces/{traces['A']}")
    assert own.status_code == 200 and own.json()["tier"] == "archive", "".join(server.output[-40:])
    assert viewer.get(f"/api/traces/{traces['B']}").status_code == 404
    for sql, want in [("SELECT DISTINCT Project FROM otel_traces_archive", [["A"]]),
                      ("SELECT DISTINCT SpanName FROM otel_traces_archive ORDER BY SpanName", [["old-A"], ["old-A-child"]]),
                      ("SELECT count() FROM trace_summary_archive", [[1]]),
                      ("SELECT count() FROM archived_traces", [[1]]),
                      (f"SELECT count() FROM otel_traces_archive WHERE TraceId = '{traces['B']}'", [[0]])]:
        got = viewer.sql(sql)
        assert got.status_code == 200 and got.json()["rows"] == want, (sql, got.text)
