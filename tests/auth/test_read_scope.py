"""Every page, API and /api/sql see only the caller's projects; ClickHouse enforces it."""
from __future__ import annotations

import pytest

from auth_stack import create_key
from server_process import wait_until

FORBIDDEN_SQL = [
    "SELECT * FROM system.parts",
    "SELECT * FROM system.processes",
    "SELECT * FROM system.tables",
    "SELECT * FROM INFORMATION_SCHEMA.tables",
    "SELECT * FROM remote('127.0.0.1', tracelake.otel_traces)",
    "SELECT * FROM url('http://127.0.0.1:1/x', 'CSV', 'a String')",
    "SELECT * FROM file('/etc/passwd', 'CSV', 'a String')",
    "SELECT * FROM s3('http://127.0.0.1:1/bucket/x.csv', 'CSV', 'a String')",
    "SELECT * FROM merge('tracelake', '^otel_traces$')",
    "SELECT * FROM mergeTreeIndex('tracelake', 'otel_traces', with_marks = true)",
    "SELECT * FROM otel_traces SETTINGS additional_table_filters = {'tracelake.otel_traces': '1'}",
    "SELECT * FROM otel_traces SETTINGS readonly = 0",
    "SET readonly = 0",
    "USE system",
    "SELECT * FROM api_keys",
    "SELECT * FROM auth_secrets",
    "SELECT * FROM audit_log",
    "INSERT INTO otel_traces (TraceId) VALUES ('x')",
    "DROP TABLE otel_traces",
    "SELECT * FROM other_db.t",
    "SELECT 1; SELECT * FROM merge('tracelake', '^otel_traces$')",
    "SELECT 1 INTO OUTFILE '/tmp/tracelake-outfile-test.txt'",
    "SHOW TABLES INTO OUTFILE '/tmp/tracelake-outfile-test2.txt'",
    "EXPLAIN SELECT * FROM merge('tracelake', '^otel_traces$')",
    "SELECT 1 /* ; */; DROP TABLE otel_traces",
]


def test_viewer_gets_404_for_the_other_projects_trace(stack):
    viewer = stack.client("A:viewer")
    assert viewer.get(f"/api/traces/{stack.traces['A']}").status_code == 200
    assert viewer.get(f"/api/traces/{stack.traces['B']}").status_code == 404
    assert viewer.get(f"/traces/{stack.traces['B']}").status_code == 404
    assert "secret prompt of B" not in viewer.get(f"/traces/{stack.traces['B']}").text


def test_lists_sessions_and_dashboard_hold_only_own_rows(stack):
    viewer = stack.client("B:viewer")
    listed = viewer.get("/api/traces", params={"range": "24h", "limit": 200}).json()["traces"]
    ids = {t["trace_id"] for t in listed}
    assert stack.traces["B"] in ids and stack.traces["A"] not in ids
    assert "root-A" not in viewer.get("/traces", params={"range": "24h"}).text
    sessions = viewer.get("/api/sessions", params={"range": "24h"}).text
    assert "sess-B" in sessions and "sess-A" not in sessions
    assert viewer.get("/api/sessions/sess-A").status_code == 404
    dashboard = viewer.get("/api/dashboard", params={"range": "24h"}).text
    assert "model-B" in dashboard and "model-A" not in dashboard
    assert "model-A" not in viewer.get("/dashboard", params={"range": "24h"}).text


def test_sql_reads_only_own_rows_through_every_table(stack):
    viewer = stack.client("A:viewer")
    everything = viewer.sql("SELECT * FROM otel_traces")
    assert everything.status_code == 200, everything.text
    assert "secret prompt of A" in everything.text and "secret prompt of B" not in everything.text
    for sql in ("SELECT DISTINCT Project FROM otel_traces", "SELECT DISTINCT Project FROM trace_summary",
                "SELECT DISTINCT Project FROM view(SELECT Project FROM tracelake.otel_traces)",
                "SELECT DISTINCT Project FROM (SELECT Project FROM otel_traces UNION ALL SELECT Project FROM trace_summary_mv)",
                "WITH t AS (SELECT Project FROM otel_traces) SELECT DISTINCT Project FROM t"):
        response = viewer.sql(sql)
        assert response.status_code == 200, (sql, response.text)
        assert response.json()["rows"] == [["A"]], sql
    lookup = viewer.sql("SELECT TraceId FROM otel_traces_trace_id_ts").json()["rows"]
    assert [stack.traces["B"]] not in lookup and [stack.traces["A"]] in lookup
    blobs = viewer.sql("SELECT Sha256 FROM attachments").json()["rows"]
    assert [stack.attachments["B"]] not in blobs and [stack.attachments["A"]] in blobs
    joined = viewer.sql("SELECT count() FROM otel_traces AS a JOIN trace_summary AS s ON a.TraceId = s.TraceId "
                        f"WHERE s.TraceId = '{stack.traces['B']}'").json()["rows"]
    assert joined == [[0]]


@pytest.mark.parametrize("sql", FORBIDDEN_SQL)
def test_sql_escapes_are_refused(stack, sql):
    import os

    response = stack.client("A:viewer").sql(sql)
    assert response.status_code == 400, response.text
    assert "secret prompt" not in response.text
    assert not os.path.exists("/tmp/tracelake-outfile-test.txt") and not os.path.exists("/tmp/tracelake-outfile-test2.txt")


def test_sql_with_parameters_comments_and_newlines_still_works(stack):
    response = stack.client("A:viewer").http.post("/api/sql", data={
        "q": "SELECT count() AS n -- a comment; with a semicolon\nFROM otel_traces\nWHERE Project = {p:String} /* ; */",
        "param_p": "A"})
    assert response.status_code == 200, response.text
    assert response.json()["rows"][0][0] >= 1


def test_admin_sql_reads_every_project_but_not_the_session_secret(stack):
    rows = stack.admin.sql("SELECT DISTINCT Project FROM otel_traces ORDER BY Project").json()["rows"]
    assert ["A"] in rows and ["B"] in rows
    secret = stack.admin.sql("SELECT * FROM auth_secrets")
    assert secret.status_code == 400 or secret.json()["rows"] == []  # filtered to no rows by ClickHouse


def test_attachments_only_for_readers_of_a_trace_that_refers_to_them(stack):
    viewer = stack.client("A:viewer")
    assert viewer.get(f"/api/attachments/{stack.attachments['A']}").status_code == 200
    assert viewer.get(f"/api/attachments/{stack.attachments['B']}").status_code == 404
    assert stack.client("B:viewer").get(f"/api/attachments/{stack.attachments['B']}").status_code == 200
    assert stack.admin.get(f"/api/attachments/{stack.attachments['B']}").status_code == 200


def test_a_shared_attachment_is_readable_by_each_project_that_refers_to_it(stack):
    import base64

    from auth_stack import emit

    shared = stack.images["A"]  # first seen in A's trace; now project C refers to it too
    key = create_key(stack.server, "C", "ingest")
    spans = [{"name": "root-C", "attrs": {"image": "data:image/png;base64," + base64.b64encode(shared).decode()}}]
    viewer_c = create_key(stack.server, "C", "viewer")
    from auth_stack import Client

    before = Client(stack.server, viewer_c).get(f"/api/attachments/{stack.attachments['A']}")
    assert before.status_code == 404
    assert emit(stack.server, "http", key, spans) == ["SUCCESS"]
    # C's access is C's own index row of the blob, written about a second after the spans.
    wait_until(lambda: Client(stack.server, viewer_c).get(f"/api/attachments/{stack.attachments['A']}").status_code
               == 200, "C's index row of the blob")
    after = Client(stack.server, viewer_c).get(f"/api/attachments/{stack.attachments['A']}")
    assert after.status_code == 200 and after.content == shared
    assert Client(stack.server, viewer_c).get(f"/api/attachments/{stack.attachments['B']}").status_code == 404


def test_ingest_keys_cannot_read(stack):
    ingest = stack.client("A:ingest")
    for path in ("/api/traces", f"/api/traces/{stack.traces['A']}", "/api/sessions", "/api/dashboard",
                 f"/api/attachments/{stack.attachments['A']}", "/traces"):
        assert ingest.get(path).status_code == 403, path
    assert ingest.sql("SELECT 1").status_code == 403


def test_unauthenticated_callers_get_nothing(stack):
    import httpx

    for path in ("/api/traces", "/api/sql?q=SELECT%201", f"/api/attachments/{stack.attachments['A']}", "/api/keys"):
        assert httpx.get(stack.server.ui_url + path, timeout=30).status_code == 401, path
    page = httpx.get(stack.server.ui_url + "/traces", timeout=30)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert httpx.get(stack.server.ui_url + "/healthz", timeout=30).status_code == 200


def test_roles_for_changes(stack):
    for name in ("A:viewer", "A:engineer"):
        for path in ("/api/retention", "/api/holds", "/api/erase", "/api/keys"):
            assert stack.client(name).post(path, json={}).status_code == 403, (name, path)
    assert stack.client("A:engineer").post("/api/pins", json={}).status_code != 403
    assert stack.client("A:ops").post("/api/retention", json={}).status_code != 403
    assert stack.client("A:viewer").post("/api/unknown-change", json={}).status_code == 403  # fail closed


def test_ops_manage_keys_of_their_project_only(stack):
    ops = stack.client("A:ops")
    made = ops.post("/api/keys", json={"project": "A", "role": "viewer"})
    assert made.status_code == 201 and made.json()["project"] == "A"
    assert ops.post("/api/keys", json={"project": "B", "role": "viewer"}).status_code == 403
    assert ops.post("/api/keys", json={"project": "A", "role": "admin"}).status_code == 403
    listed = ops.get("/api/keys").json()["keys"]
    assert listed and {k["project"] for k in listed} == {"A"}
    b_key = stack.keys["B:viewer"].split("_")[1]
    assert ops.http.delete(f"/api/keys/{b_key}").status_code == 404
    assert stack.client("A:engineer").get("/api/keys").status_code == 403
    assert ops.post("/api/keys", json={"project": "../B", "role": "viewer"}).status_code == 400


def test_revoked_viewer_stops_at_once(stack):
    key = create_key(stack.server, "A", "viewer")
    from auth_stack import Client

    client = Client(stack.server, key)
    assert client.get("/api/traces").status_code == 200
    assert stack.admin.http.delete(f"/api/keys/{key.split('_')[1]}").status_code == 200
    assert client.get("/api/traces").status_code == 401
    assert client.sql("SELECT 1").status_code == 401


def test_audit_log_records_key_changes_for_admins_only(stack):
    entries = stack.admin.get("/api/audit").json()["entries"]
    actions = {e["action"] for e in entries}
    assert {"key.create", "key.revoke"} <= actions
    assert all(e["actor"] for e in entries)
    text = stack.admin.get("/api/audit").text
    for key in stack.keys.values():
        assert key not in text and key.split("_", 2)[2] not in text
    assert stack.client("A:ops").get("/api/audit").status_code == 403
    assert stack.client("A:viewer").get("/audit").status_code == 403
    page = stack.admin.get("/audit")
    assert page.status_code == 200 and "key.create" in page.text
