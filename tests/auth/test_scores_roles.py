"""Scores and roles (issue 25): viewers read scores, engineers add them, the app's ingest key sends
them over OTLP (to its own project whatever the span claims), ops delete anyone's, admins define
score configs; a project never scores, reads or filters another project's traces' scores."""
from __future__ import annotations

from auth_stack import emit
from server_process import wait_until


def _scores(client, trace_id: str) -> list[dict]:
    r = client.get(f"/api/traces/{trace_id}/scores")
    assert r.status_code == 200, r.text
    return r.json()["all"]


def test_viewers_read_engineers_add_other_projects_are_not_found(stack):
    a, b = stack.traces["A"], stack.traces["B"]
    body = {"trace_id": a, "name": "roles_correctness", "value": 2, "comment": "A's engineer says so"}
    refused = stack.client("A:viewer").post("/api/scores", json=body)
    assert refused.status_code == 403 and "annotate" in refused.text
    assert stack.client("A:ingest").post("/api/scores", json=body).status_code == 403
    made = stack.client("A:engineer").post("/api/scores", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["scores"][0]["project"] == "A" and made.json()["scores"][0]["source"] == "human"
    # B's engineer cannot score A's trace, nor see its scores.
    assert stack.client("B:engineer").post("/api/scores", json={**body, "comment": "B"}).status_code == 404
    assert [s["comment"] for s in _scores(stack.client("A:viewer"), a)] == ["A's engineer says so"]
    assert _scores(stack.client("B:viewer"), a) == []
    listed = stack.client("A:viewer").get("/api/traces", params={"q": "score.roles_correctness<3", "range": "7d"}).json()
    assert [t["trace_id"] for t in listed["traces"]] == [a]
    assert stack.client("B:viewer").get("/api/traces", params={"q": "has:score.roles_correctness",
                                                                "range": "7d"}).json()["traces"] == []
    # SQL: the scores table is filtered by the caller's project.
    own = stack.client("A:viewer").sql("SELECT Comment FROM scores WHERE Name = 'roles_correctness'").json()["rows"]
    assert own == [["A's engineer says so"]]
    other = stack.client("B:viewer").sql("SELECT count() FROM scores WHERE TraceId = '" + a + "'").json()["rows"]
    assert other == [[0]]
    assert stack.client("B:viewer").sql("SELECT count() FROM score_configs WHERE Project = 'A'").status_code == 200
    assert b != a


def test_the_apps_ingest_key_sends_scores_over_otlp_to_its_own_project(stack):
    a = stack.traces["A"]
    score_span = {"name": "tracelake.score", "attrs": {
        "tracelake.score.trace_id": a, "tracelake.score.name": "roles_thumbs_app", "tracelake.score.value": "down",
        "tracelake.score.source": "app", "tracelake.score.author": "end-user-7", "tracelake.score.comment": "<b>bad</b>",
        "tracelake.project": "A"}}
    assert emit(stack.server, "http", stack.keys["A:ingest"], [score_span]) == ["SUCCESS"]
    # B's ingest key claims project A: the score lands in B (the key's project), not on A's trace.
    assert emit(stack.server, "http", stack.keys["B:ingest"], [{**score_span, "attrs": {
        **score_span["attrs"], "tracelake.score.author": "intruder"}}]) == ["SUCCESS"]
    viewer = stack.client("A:viewer")
    wait_until(lambda: any(s["name"] == "roles_thumbs_app" for s in _scores(viewer, a)), "the OTLP score loaded")
    got = [s for s in _scores(viewer, a) if s["name"] == "roles_thumbs_app"]
    assert [(s["author"], s["source"], s["shown"], s["project"]) for s in got] == [("end-user-7", "app", "down", "A")]
    assert stack.admin.sql("SELECT Project FROM scores WHERE Author = 'intruder'").json()["rows"] == [["B"]]
    # Score spans never become spans of a trace.
    assert stack.admin.sql("SELECT count() FROM otel_traces WHERE SpanName = 'tracelake.score'").json()["rows"] == [[0]]


def test_only_the_author_or_ops_delete_and_only_admins_define_configs(stack):
    a = stack.traces["A"]
    engineer, ops = stack.client("A:engineer"), stack.client("A:ops")
    mine = engineer.post("/api/scores", json={"trace_id": a, "name": "roles_del", "value": "x"}).json()["scores"][0]
    by_app = emit(stack.server, "http", stack.keys["A:ingest"], [{"name": "tracelake.score", "attrs": {
        "tracelake.score.trace_id": a, "tracelake.score.name": "roles_del", "tracelake.score.value": "y"}}])
    assert by_app == ["SUCCESS"]
    wait_until(lambda: len([s for s in _scores(engineer, a) if s["name"] == "roles_del"]) == 2, "both scores")
    theirs = next(s for s in _scores(engineer, a) if s["name"] == "roles_del" and s["score_id"] != mine["score_id"])
    assert stack.client("A:viewer").http.delete(f"/api/traces/{a}/scores/{mine['score_id']}").status_code == 403
    refused = engineer.http.delete(f"/api/traces/{a}/scores/{theirs['score_id']}")
    assert refused.status_code == 403 and "author" in refused.text
    assert engineer.http.delete(f"/api/traces/{a}/scores/{mine['score_id']}").status_code == 200
    assert ops.http.delete(f"/api/traces/{a}/scores/{theirs['score_id']}").status_code == 200
    assert [s for s in _scores(engineer, a) if s["name"] == "roles_del"] == []

    config = {"project": "A", "name": "roles_grade", "data_type": "numeric", "min_value": 1, "max_value": 5}
    assert ops.post("/api/score-configs", json=config).status_code == 403
    assert stack.admin.post("/api/score-configs", json=config).status_code == 201
    names = {c["name"] for c in stack.client("A:viewer").get("/api/score-configs").json()["configs"]}
    assert "roles_grade" in names
    assert "roles_grade" not in {c["name"] for c in stack.client("B:viewer").get("/api/score-configs").json()["configs"]}
    audit = stack.admin.sql("SELECT Action FROM audit_log WHERE Action LIKE 'score.%'").json()["rows"]
    assert {"score.add", "score.delete", "score.config"} <= {r[0] for r in audit}
