"""Scores over both tiers (issue 25): the API, filters on scores in the list of hot and archived
traces, the list's scores column, history and deletion, configs, and score filters in retention
(a hold, a rule).

The store holds the known traces twice: recent (hot) and three days old, moved to the Delta archive
by a real archiver run; scores are added after the run, so a score on an archived trace is one made
after it left the hot tier.
"""
from __future__ import annotations

import time

import pytest

import ui_traces

DAY = 86400 * ui_traces.S


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    from fastapi.testclient import TestClient

    from tracelake.archiver.delta import ArchiveLocation
    from tracelake.archiver.policy import parse_policy
    from tracelake.archiver.service import Archiver
    from tracelake.config import Settings
    from tracelake.store import open_store
    from tracelake.web import create_app

    root = tmp_path_factory.mktemp("scores-tiers")
    store = open_store(data_dir=root / "data")
    now = time.time_ns()
    hot = ui_traces.known_traces(now)
    old = ui_traces.known_traces(now - 3 * DAY, seed=7)
    ui_traces.insert(store, hot.requests + old.requests)
    policy = parse_policy("rules:\n  - name: default\n    hot: 1d\n    archive: forever\n")
    location = ArchiveLocation.for_url((root / "objects").as_uri())
    archiver = Archiver(store, policy, location)
    app = create_app(store, Settings())
    app.state.archiver = archiver
    with TestClient(app) as client:
        archiver.run_once()
        client.location = location  # type: ignore[attr-defined]  # for the erasure test
        yield client, store, hot, old
    archiver.release()
    store.close()


def _score(client, **body) -> dict:
    r = client.post("/api/scores", json=body)
    assert r.status_code == 201, r.text
    return r.json()["scores"][0]


def _ids(client, q: str, range_: str = "7d") -> dict[str, str]:
    r = client.get("/api/traces", params={"q": q, "range": range_})
    assert r.status_code == 200, r.text
    return {t["trace_id"]: t["tier"] for t in r.json()["traces"]}


def test_scores_on_hot_and_archived_traces_filter_in_both_tiers(scored):
    client, _, hot, old = scored
    assert _ids(client, "trace:" + old.genai)[old.genai] == "archive"
    _score(client, trace_id=hot.genai, name="correctness", value=2)
    _score(client, trace_id=old.genai, name="correctness", value=5, comment="spot on")
    _score(client, trace_id=old.error, name="thumbs", value="down", comment="wrong refund amount")
    _score(client, trace_id=hot.error, name="thumbs", value="up")
    _score(client, trace_id=hot.xss, span_id=hot.xss_span, name="tone", value="rude")

    assert _ids(client, "score.correctness<3") == {hot.genai: "hot"}
    assert _ids(client, "score.correctness>=3") == {old.genai: "archive"}
    assert _ids(client, "score.thumbs:down") == {old.error: "archive"}
    assert _ids(client, "has:score.thumbs") == {old.error: "archive", hot.error: "hot"}
    assert _ids(client, "has:score.tone") == {hot.xss: "hot"}  # a span's score counts for its trace
    assert _ids(client, "score.tone:ru*") == {hot.xss: "hot"}
    assert _ids(client, "score.thumbs!=down status:error") == {hot.error: "hot"}
    unscored = _ids(client, "-has:score.thumbs -has:score.correctness -has:score.tone")
    assert len(unscored) == 5 and not {hot.genai, old.genai, old.error, hot.error, hot.xss} & set(unscored)
    # Combined with span-level terms and trace-level terms in both tiers.
    assert _ids(client, "score.thumbs:down status:error") == {old.error: "archive"}


def test_latest_score_wins_history_kept_and_deletion(scored):
    client, _, hot, _ = scored
    tid = hot.openinference
    first = _score(client, trace_id=tid, name="helpful", value=False)
    assert _ids(client, "score.helpful:false") == {tid: "hot"}
    second = _score(client, trace_id=tid, name="helpful", value=True, comment="fine on a second look")
    assert _ids(client, "score.helpful:false") == {}
    assert _ids(client, "score.helpful:true") == {tid: "hot"}
    assert _ids(client, "score.helpful=1") == {tid: "hot"}  # true counts 1 in comparisons

    got = client.get(f"/api/traces/{tid}/scores").json()
    assert [s["score_id"] for s in got["all"]] == [second["score_id"], first["score_id"]]
    assert [(s["name"], s["shown"]) for s in got["current"]] == [("helpful", "true")]
    row = next(t for t in client.get("/api/traces", params={"range": "1h"}).json()["traces"] if t["trace_id"] == tid)
    assert row["scores"] == {"helpful": "true"}

    r = client.delete(f"/api/traces/{tid}/scores/{second['score_id']}")
    assert r.status_code == 200, r.text
    assert _ids(client, "score.helpful:false") == {tid: "hot"}  # the older one is current again
    assert client.delete(f"/api/traces/{tid}/scores/{second['score_id']}").status_code == 404


@pytest.mark.parametrize("body,field,status", [
    ({"name": "bad name", "value": 1}, "name", 400),
    ({"name": "thumbs", "value": "sideways"}, "value", 400),
    ({"name": "x", "value": ""}, "value", 400),
    ({"name": "x", "value": 1, "span_id": "zz"}, "span_id", 400),
    ({"name": "x", "value": 1, "comment": "c" * 5001}, "comment", 400),
    ({"name": "x", "value": 1, "source": "robot"}, "source", 400),
    ({"name": "x", "value": 1, "trace_id": "ab" * 16}, "trace_id", 404),
])
def test_bad_scores_are_refused_with_the_field(scored, body, field, status):
    client, store, hot, _ = scored
    before = store.query_arrow("SELECT count() AS n FROM scores").to_pylist()[0]["n"]
    r = client.post("/api/scores", json={"trace_id": hot.openllmetry, **body})
    assert r.status_code == status, r.text
    assert r.json()["field"] == field
    assert store.query_arrow("SELECT count() AS n FROM scores").to_pylist()[0]["n"] == before


def test_configs_type_the_values(scored):
    client, _, hot, _ = scored
    r = client.post("/api/score-configs", json={"project": "default", "name": "grade", "data_type": "numeric",
                                                "min_value": 1, "max_value": 5})
    assert r.status_code == 201, r.text
    bad = client.post("/api/scores", json={"trace_id": hot.openllmetry, "name": "grade", "value": 7})
    assert bad.status_code == 400 and "between 1 and 5" in bad.json()["error"]
    r = client.post("/api/score-configs", json={"project": "default", "name": "mood", "data_type": "categorical",
                                                "categories": "calm, Angry"})
    assert r.status_code == 201, r.text
    assert client.post("/api/scores", json={"trace_id": hot.openllmetry, "name": "mood", "value": "happy"}).status_code == 400
    assert _score(client, trace_id=hot.openllmetry, name="mood", value="ANGRY")["string_value"] == "angry"
    names = [c["name"] for c in client.get("/api/score-configs").json()["configs"]]
    assert names[0] == "thumbs" and {"grade", "mood"} <= set(names)
    refused = client.post("/api/score-configs", json={"project": "default", "name": "m2", "data_type": "categorical",
                                                      "categories": "one"})
    assert refused.status_code == 400 and refused.json()["field"] == "categories"


def test_review_page_defines_and_lists_score_configs(scored):
    client, _, hot, _ = scored
    r = client.post("/review/configs", data={"project": "default", "name": "review_tone", "data_type": "categorical",
                                             "categories": "calm, rude, <b>odd</b>"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/review?name=review_tone"
    page = client.get("/review", params={"name": "review_tone", "range": "1h"}).text
    assert 'data-config="review_tone"' in page and "&lt;b&gt;odd&lt;/b&gt;" in page and "<b>odd" not in page
    assert 'data-key="3"' in page  # one key per category
    bad = client.post("/review/configs", data={"project": "default", "name": "x y", "data_type": "numeric"})
    assert bad.status_code == 400 and 'id="config-error"' in bad.text


def test_retention_holds_and_rules_match_scores(scored):
    from tracelake.archiver import keep
    from tracelake.archiver.explain import explain
    from tracelake.archiver.policy import parse_policy

    client, store, hot, old = scored
    _score(client, trace_id=hot.openllmetry, name="keep_me", value="yes")
    _score(client, trace_id=old.openllmetry, name="keep_me", value="yes")
    keep.create_hold(store, "judged", "has:score.keep_me", "evaluation set", actor="test")
    covered = keep.holds_covering(store, [hot.openllmetry, old.openllmetry, hot.genai, old.genai])
    assert sorted(covered["judged"]) == sorted([hot.openllmetry, old.openllmetry])
    policy = parse_policy("rules:\n  - name: judged\n    match: has:score.keep_me\n    hot: 30d\n    archive: forever\n"
                          "  - name: default\n    hot: 1d\n    archive: 7d\n")
    assert explain(store, hot.openllmetry, policy).rule.name == "judged"
    assert explain(store, hot.genai, policy).rule.name == "default"


def test_dashboard_scores_average_and_count_over_time_by_model_in_both_tiers(scored):
    client, _, hot, old = scored
    _score(client, trace_id=hot.openllmetry, name="dash_grade", value=2)
    _score(client, trace_id=old.openllmetry, name="dash_grade", value=4)
    _score(client, trace_id=old.openllmetry, name="dash_grade", value=5)  # newer: the current one
    r = client.get("/api/dashboard/scores", params={"range": "7d"})
    assert r.status_code == 200, r.text
    grade = next(s for s in r.json()["scores"] if s["name"] == "dash_grade")
    assert grade["count"] == 2 and grade["avg"] == 3.5
    assert sum(p["count"] for p in grade["series"]) == 2
    assert {p["avg"] for p in grade["series"] if p["count"]} == {2.0, 5.0}  # three days apart: two buckets
    assert sum(g["count"] for g in grade["by_model"]) >= 2
    hot_only = client.get("/api/dashboard/scores", params={"range": "1h"}).json()
    assert next(s for s in hot_only["scores"] if s["name"] == "dash_grade")["avg"] == 2.0
    filtered = client.get("/api/dashboard/scores", params={"range": "7d", "q": "score.dash_grade>=3"}).json()
    assert next(s for s in filtered["scores"] if s["name"] == "dash_grade")["count"] == 1
    page = client.get("/dashboard/scores", params={"range": "7d"})
    assert page.status_code == 200 and "dash_grade: average" in page.text and "<svg" in page.text
    assert client.get("/api/dashboard/scores", params={"q": "score.<1"}).status_code == 400


def _count(store, where: str) -> int:
    return store.query_arrow(f"SELECT count() AS n FROM scores WHERE {where}").to_pylist()[0]["n"]


def test_zz_an_erased_users_scores_and_comments_are_erased(scored):
    """Last in the module: it rewrites the store. User u1's traces (hot and archived) are erased;
    their scores go with them, and so do u1's own judgements on other traces."""
    from tracelake.archiver.erase import Criteria, Eraser

    client, store, hot, old = scored
    u1_traces = sorted(_ids(client, "user:u1"))
    other = sorted(_ids(client, "-user:u1"))[0]
    _score(client, trace_id=other, name="thumbs", value="down", source="app", author="u1", comment="u1 said so")
    _score(client, trace_id=other, name="thumbs", value="up", source="app", author="u2", comment="u2 liked it")
    assert {"hot", "archive"} == set(_ids(client, "user:u1").values())
    for tid in u1_traces:  # a judgement with a comment on each of u1's traces, hot and archived
        _score(client, trace_id=tid, name="erase_probe", value=1, comment=f"about {tid}")
    on_u1 = _count(store, "TraceId IN ('" + "', '".join(u1_traces) + "')")
    assert on_u1 >= len(u1_traces)
    eraser = Eraser(store, client.location, parts_wait_s=0)
    receipt = eraser.erase(Criteria(user="u1"))
    assert set(u1_traces) == set(receipt["matched_trace_ids"])
    assert receipt["rows"]["before"]["scores"] == on_u1 and receipt["rows"]["after"]["scores"] == 0
    assert _count(store, "TraceId IN ('" + "', '".join(u1_traces) + "')") == 0
    assert _count(store, "Author = 'u1'") == 0 and _count(store, "Comment LIKE '%u1 said so%'") == 0
    assert _count(store, "Author = 'u2'") == 1  # another user's judgement stays
    assert _count(store, "Name != 'erase_probe'") > 0  # scores of other users' traces stay
