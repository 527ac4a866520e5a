"""Issue 19, finding 3: a trace id is not a capability.

Trace ids cross projects (``traceparent`` carries one id between services), so project A's ingest
key may send spans with the id of a trace of project B. Before, every table keyed by TraceId was
filtered by "this id has a summary row in my project": A then read B's attachment index and blob,
saw and removed B's pin, and erased (or had the archiver drop) B's spans of that trace. Now each
such row names the project of its spans, and every act on a trace is on the caller's project's
spans of it only.

Read probes use the shared ``stack`` (new traces of their own, so nothing it asserts elsewhere
changes); erasure, restore and the archive tier need a server with retention rules and without
the erasure's wait for replaced parts (both server-wide settings), so they get one of their own.
"""
from __future__ import annotations

import base64
import hashlib
import time
import uuid

import pytest

from att_media import png
from auth_stack import ADMIN_KEY, DAY_NS, RETENTION, Client, create_key, post_spans, start_auth_server
from otlp_spans import new_trace_id, span
from otlp_spans import request as otlp_request
from server_process import start_clickhouse_endpoint, wait_until

from tracelake.auth.ingest import stamp_body
from tracelake.auth.scope import ScopedStore
from tracelake.store import open_store
from tracelake.store.otlp import length_delimited


def _rows(client: Client, sql: str) -> list[list]:
    r = client.sql(sql)
    assert r.status_code == 200, r.text
    return r.json()["rows"]


# --- the shared stack: B's trace, and A's span with B's trace id ---------------------------------------
@pytest.fixture(scope="module")
def shared(stack):
    tid = new_trace_id()
    image = png(24, 18, 77)
    sha = hashlib.sha256(image).hexdigest()
    post_spans(stack.server, stack.keys["B:ingest"], [span("b-root", tid, attrs={
        "user.id": "shared-user-B", "input.value": "B's secret prompt",
        "image": "data:image/png;base64," + base64.b64encode(image).decode()})])
    post_spans(stack.server, stack.keys["A:ingest"], [span("a-joins-b", tid, attrs={"user.id": "shared-user-A"})])
    stack.server.wait_loaded(ADMIN_KEY)
    hex_id = tid.hex()
    wait_until(lambda: _rows(stack.admin, f"SELECT count() FROM attachments WHERE Sha256 = '{sha}'") == [[1]],
               "B's blob indexed")
    r = stack.client("B:engineer").post(f"/api/traces/{hex_id}/pin", json={"reason": "B's secret reason"})
    assert r.status_code == 200, r.text
    return hex_id, sha


def test_sql_on_trace_keyed_tables_shows_only_the_callers_rows(stack, shared):
    tid, sha = shared
    for role in ("viewer", "engineer", "ops"):
        a = stack.client(f"A:{role}")
        assert _rows(a, f"SELECT Sha256 FROM attachments WHERE Sha256 = '{sha}'") == [], role
        assert _rows(a, f"SELECT Reason FROM retention_pins WHERE TraceId = '{tid}'") == [], role
        assert _rows(a, f"SELECT Reason FROM retention_pins_current WHERE TraceId = '{tid}'") == [], role
        assert _rows(a, f"SELECT DISTINCT Project FROM otel_traces_trace_id_ts WHERE TraceId = '{tid}'") == [["A"]], role
        assert _rows(a, f"SELECT count() FROM archive_attachments WHERE TraceId = '{tid}'") == [[0]], role
    # B sees its own rows; the ingest key reads nothing at all.
    b = stack.client("B:viewer")
    assert _rows(b, f"SELECT Sha256 FROM attachments WHERE Sha256 = '{sha}'") == [[sha]]
    assert _rows(b, f"SELECT Reason FROM retention_pins WHERE TraceId = '{tid}'") == [["B's secret reason"]]
    assert stack.client("A:ingest").sql("SELECT count() FROM attachments").status_code == 403


def test_a_sees_its_own_spans_of_the_trace_and_not_bs_blob(stack, shared):
    tid, sha = shared
    a = stack.client("A:viewer")
    doc = a.get(f"/api/traces/{tid}").json()
    assert [s["name"] for s in doc["spans"]] == ["a-joins-b"], doc
    assert "B's secret prompt" not in a.get(f"/traces/{tid}").text
    assert a.get(f"/api/attachments/{sha}").status_code == 404
    assert stack.client("A:ingest").get(f"/api/attachments/{sha}").status_code in (403, 404)
    assert stack.client("B:viewer").get(f"/api/attachments/{sha}").status_code == 200


def test_pins_belong_to_a_project(stack, shared):
    tid, _ = shared
    eng, b = stack.client("A:engineer"), stack.client("B:viewer")
    assert tid not in [p["trace_id"] for p in eng.get("/api/pins").json()["pins"]]
    panel = eng.get(f"/api/traces/{tid}/retention").json()
    assert panel["pin"] is None and "B's secret reason" not in str(panel)
    # A's unpin finds no pin of A's; B's pin stays.
    assert eng.post(f"/api/traces/{tid}/unpin").json() == {"unpinned": False}
    assert eng.http.delete(f"/api/traces/{tid}/pin").json() == {"unpinned": False}
    assert [p["reason"] for p in b.get("/api/pins").json()["pins"] if p["trace_id"] == tid] == ["B's secret reason"]
    # A's own pin is A's: made and removed without touching B's.
    mine = eng.post(f"/api/traces/{tid}/pin", json={"reason": "A's reason"})
    assert mine.status_code == 200 and mine.json()["pin"]["project"] == "A", mine.text
    assert eng.post(f"/api/traces/{tid}/unpin").json() == {"unpinned": True}
    pins = [p for p in b.get("/api/pins").json()["pins"] if p["trace_id"] == tid]
    assert [(p["project"], p["reason"]) for p in pins] == [("B", "B's secret reason")]
    assert b.get(f"/api/traces/{tid}/retention").json()["pin"]["reason"] == "B's secret reason"


# --- both stores: what ClickHouse itself filters -------------------------------------------------------
@pytest.fixture(scope="module", params=["chdb", "clickhouse"])
def store(request, tmp_path_factory):  # noqa: ANN001
    if request.param == "chdb":
        s, endpoint = open_store(tmp_path_factory.mktemp("shared-id") / "data"), None
    else:
        endpoint = start_clickhouse_endpoint(tmp_path_factory.mktemp("shared-id-ch"))
        s = open_store(clickhouse_url=f"{endpoint.url}/s_{uuid.uuid4().hex[:8]}")
    yield s
    s.close()
    if endpoint is not None:
        endpoint.stop()


def test_both_stores_filter_trace_keyed_rows_by_their_project(store):
    tid = new_trace_id()
    bodies = [stamp_body(otlp_request([span(f"span-{p}", tid)]).SerializeToString(), p) for p in ("A", "B")]
    store.insert_otlp("otel_traces", length_delimited(bodies))
    hex_id = tid.hex()
    store.execute("INSERT INTO attachments (Sha256, Project, MimeType, Size, ObjectKey, FirstSeen, LastSeen, TraceId, "
                  "SpanId) VALUES ('b-blob', 'B', 'image/png', 1, 'k', now64(3), now64(3), {t:String}, 's')", {"t": hex_id})
    store.execute("INSERT INTO retention_pins (Project, TraceId, Version, Pinned, Until, Actor, Reason, Time) VALUES "
                  "('B', {t:String}, 1, 1, 0, 'b', 'B only', now64(3))", {"t": hex_id})
    a = ScopedStore(store, frozenset({"A"}))
    for table in ("attachments", "retention_pins", "retention_pins_current"):
        assert a.query_readonly(f"SELECT count() AS n FROM {table}").column(0).to_pylist() == [0], table
    assert a.query_readonly("SELECT DISTINCT Project FROM otel_traces_trace_id_ts WHERE TraceId = {t:String}",
                            {"t": hex_id}).column(0).to_pylist() == ["A"]
    b = ScopedStore(store, frozenset({"B"}))
    assert b.query_readonly("SELECT Reason FROM retention_pins_current").column(0).to_pylist() == ["B only"]
    assert b.query_readonly("SELECT Sha256 FROM attachments").column(0).to_pylist() == ["b-blob"]


# --- erasure, restore, explain and the archiver, hot and archive tiers ----------------------------------
def _old(server, key: str, tid: bytes, name: str, user: str, days: int = 3) -> None:
    start = time.time_ns() - days * DAY_NS
    post_spans(server, key, [span(name, tid, start_ns=start, duration_ns=5_000_000,
                                  attrs={"user.id": user, "input.value": f"prompt of {name}"})])


@pytest.fixture(scope="module")
def tiers(tmp_path_factory):
    root = tmp_path_factory.mktemp("shared-id-tiers")
    rules = root / "retention.yaml"
    rules.write_text(RETENTION)
    server = start_auth_server(root / "data", retention=str(rules), env={"TRACELAKE_ERASE_PARTS_WAIT_S": "0"})
    try:
        keys = {f"{p}:{r}": create_key(server, p, r) for p in ("A", "B") for r in ("ingest", "viewer", "ops")}
        ids = {name: new_trace_id() for name in ("erase", "restore", "hot")}
        for p in ("B", "A"):  # A's spans carry the ids of B's traces
            _old(server, keys[f"{p}:ingest"], ids["erase"], f"erase-{p}", f"user-{p}")
            _old(server, keys[f"{p}:ingest"], ids["restore"], f"restore-{p}", f"keep-{p}")
            _old(server, keys[f"{p}:ingest"], ids["hot"], f"hot-{p}", f"user-{p}", days=0)
        server.wait_loaded(ADMIN_KEY)
        admin = Client(server, ADMIN_KEY)
        assert admin.post("/api/archiver/run", timeout=300).status_code == 200
        yield server, {k: v.hex() for k, v in ids.items()}, {k: Client(server, v) for k, v in keys.items()}, admin
    finally:
        server.terminate()


def _per_project(admin: Client, table: str, tid: str) -> list[list]:
    return _rows(admin, f"SELECT Project, count() FROM {table} WHERE TraceId = '{tid}' GROUP BY Project ORDER BY Project")


def test_archiver_moves_each_projects_spans_of_a_shared_trace(tiers):
    server, ids, c, admin = tiers
    for name in ("erase", "restore"):
        assert _per_project(admin, "otel_traces_archive", ids[name]) == [["A", 1], ["B", 1]], name
        assert _per_project(admin, "otel_traces", ids[name]) == [], name
        assert _per_project(admin, "archived_traces", ids[name]) == [["A", 1], ["B", 1]], name
    assert _per_project(admin, "otel_traces", ids["hot"]) == [["A", 1], ["B", 1]]


def test_erasing_as_a_leaves_bs_spans_of_the_same_trace_in_both_tiers(tiers):
    server, ids, c, admin = tiers
    r = c["A:ops"].post("/api/erase", json={"user": "user-A"}, timeout=600)
    assert r.status_code == 200, r.text
    assert sorted(r.json()["matched_trace_ids"]) == sorted([ids["erase"], ids["hot"]])
    assert _per_project(admin, "otel_traces_archive", ids["erase"]) == [["B", 1]]
    assert _per_project(admin, "archived_traces", ids["erase"]) == [["B", 1]]
    assert _per_project(admin, "otel_traces", ids["hot"]) == [["B", 1]]
    assert _per_project(admin, "trace_summary", ids["hot"]) == [["B", 1]]
    assert _per_project(admin, "otel_traces_trace_id_ts", ids["hot"]) == [["B", 1]]
    b = c["B:viewer"].get(f"/api/traces/{ids['hot']}").json()
    assert [s["name"] for s in b["spans"]] == ["hot-B"]


def test_restore_and_explain_act_on_the_callers_spans(tiers):
    server, ids, c, admin = tiers
    tid = ids["restore"]
    r = c["A:ops"].post(f"/api/traces/{tid}/restore", json={"pin_for": "1d"}, timeout=300)
    assert r.status_code == 200, r.text
    assert _per_project(admin, "otel_traces", tid) == [["A", 1]]  # A's spans came back
    assert _per_project(admin, "otel_traces_archive", tid) == [["B", 1]]  # B's stay archived
    # The restore's pin is A's: B's explain shows its trace archived and unpinned.
    a_doc = c["A:viewer"].get(f"/api/traces/{tid}/retention").json()
    assert a_doc["tier"] == "hot" and a_doc["pin"]["reason"] == "restored"
    b_doc = c["B:viewer"].get(f"/api/traces/{tid}/retention").json()
    assert b_doc["tier"] == "archive" and b_doc["pin"] is None, b_doc
    assert _rows(c["B:viewer"], f"SELECT count() FROM retention_pins WHERE TraceId = '{tid}'") == [[0]]
