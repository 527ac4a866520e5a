"""``tracelake demo`` against a real server: the sample covers several days, sessions, errors, an
attachment and a big trace, it is readable when the command returns, and the example retention
rules archive its older traces, which stay findable.

The module has its own server (module scope): the last test runs the archiver, which rewrites the
store, so no other file may share it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from server_process import start_server
from tracelake.demo_sample import DAY, build_sample, chart_png

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "examples" / "retention-demo.yaml"


def tracelake(server, *args: str) -> subprocess.CompletedProcess:
    """The real entry point, pointed at ``server`` through the variables a user would set."""
    env = {k: v for k, v in os.environ.items() if k not in ("TRACELAKE_KEY", "OTEL_EXPORTER_OTLP_ENDPOINT")}
    env.update({"TRACELAKE_URL": server.ui_url, "OTEL_EXPORTER_OTLP_ENDPOINT": server.otlp_http_url})
    return subprocess.run([sys.executable, "-m", "tracelake.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300, cwd=ROOT)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # A spool segment is loaded once it is 5 s old (default 0.5 s), counted from its creation at the
    # start: the sample waits in the spool for a few seconds, so a demo that returned at its last
    # ack, without waiting until its spans are loaded, would be caught with most of them unreadable.
    with start_server(tmp_path_factory.mktemp("demo") / "data", env={"TRACELAKE_SPOOL_SEGMENT_MS": "5000"}) as srv:
        yield srv


@pytest.fixture(scope="module")
def demo(server):
    """One `tracelake demo` with the defaults; what it printed, and the moment it returned."""
    done = tracelake(server, "demo")
    returned_ns = time.time_ns()
    assert done.returncode == 0, done.stderr
    visible = server.sql("SELECT uniqExact(TraceId), count() FROM otel_traces")[0]  # at once: no waiting here
    links = dict(re.findall(r"^  (traces|a session|big trace|an image|errors|dashboard)\s+(\S+)", done.stdout, re.M))
    return {"out": done.stdout, "links": links, "returned_ns": returned_ns, "visible": visible}


def api(server, path: str, **params) -> dict:
    response = httpx.get(f"{server.ui_url}{path}", params=params, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def all_traces(server, q: str = "") -> list[dict]:
    rows, cursor = [], None
    while True:
        page = api(server, "/api/traces", range="7d", limit=200, q=q, **({"cursor": cursor} if cursor else {}))
        rows += page["traces"]
        cursor = page["next_cursor"]
        if not cursor:
            return rows


def test_summary_says_what_was_sent_and_where_to_look(server, demo):
    out = demo["out"]
    assert re.search(r"^tracelake demo: 400 traces, [\d,]+ spans, \d+ sessions, \d+ with errors; readable after [\d.]+ s$",
                     out, re.M), out
    assert set(demo["links"]) == {"traces", "a session", "big trace", "an image", "errors", "dashboard"}
    for name, link in demo["links"].items():  # every link opens a page of this server
        assert link.startswith(server.ui_url), link
        assert httpx.get(link, timeout=60).status_code == 200, name
    assert "tracelake archiver plan --retention examples/retention-demo.yaml" in out
    assert len(out.strip().splitlines()) <= 10


def test_traces_are_readable_when_the_command_returns_and_span_the_days(server, demo):
    spans = int(re.search(r"400 traces, ([\d,]+) spans", demo["out"]).group(1).replace(",", ""))
    assert demo["visible"] == [400, spans]  # read the moment the command returned
    rows = all_traces(server)
    assert len(rows) == 400
    now = demo["returned_ns"]
    ages = {(now - r["start_ns"]) // DAY for r in rows}
    assert ages == set(range(7)), ages  # each of the last 7 days has traces
    assert {r["root_service"] for r in rows} == {"support-agent", "research-agent", "ticket-worker", "code-review-agent"}
    assert sum(r["cost_usd"] for r in rows) > 0 and {m for r in rows for m in r["models"]} >= {
        "gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022", "gpt-4o-mini-2024-07-18"}  # all three conventions derived


def test_sessions_have_several_turns_with_users(server, demo):
    sessions = api(server, "/api/sessions", range="7d")["sessions"]
    assert len(sessions) >= 20 and all(s["user_id"] for s in sessions)
    assert max(s["traces"] for s in sessions) >= 3
    session_id = demo["links"]["a session"].rsplit("/", 1)[1]
    doc = api(server, f"/api/sessions/{session_id}")
    turns = doc["turns"]
    assert len(turns) == 4 and turns[1]["user"].startswith("My bill jumped"), turns
    assert all(t["assistant"] for t in turns)


def test_errors_carry_exception_events(server, demo):
    errors = all_traces(server, "status:error")
    assert 5 <= len(errors) < 100
    assert {r["root_service"] for r in errors} >= {"support-agent", "research-agent", "ticket-worker"}
    trace = api(server, f"/api/traces/{errors[0]['trace_id']}")
    failed = [s for s in trace["spans"] if s["status"] == "error"]
    span = api(server, f"/api/traces/{trace['trace_id']}/spans/{failed[0]['span_id']}")
    assert [e["name"] for e in span["events"]] == ["exception"]
    assert span["events"][0]["attributes"]["exception.type"]


def test_the_image_was_lifted_into_an_attachment(server, demo):
    trace_id, span_id = re.search(r"/traces/([0-9a-f]{32})\?span=([0-9a-f]{16})$", demo["links"]["an image"]).groups()
    span = api(server, f"/api/traces/{trace_id}/spans/{span_id}")
    sha = hashlib.sha256(chart_png(7)).hexdigest()
    media = [p["media"] for m in span["io"]["input"] for p in m["parts"] if p["type"] == "media"]
    assert [(m["sha256"], m["mime_type"]) for m in media] == [(sha, "image/png")]
    assert "base64" not in span["attributes"]["gen_ai.input.messages"]
    blob = httpx.get(f"{server.ui_url}/api/attachments/{sha}", timeout=60)
    assert blob.status_code == 200 and blob.content == chart_png(7)


def test_big_trace_is_windowed(server, demo):
    trace_id = demo["links"]["big trace"].rsplit("/", 1)[1]
    doc = api(server, f"/api/traces/{trace_id}", limit=10)
    assert doc["span_count"] == 3000 and not doc["complete"]
    page = httpx.get(demo["links"]["big trace"], timeout=60).text
    assert "3,000 spans: the tree loads a window at a time" in page


def test_sample_is_deterministic_per_seed_and_new_ids_per_run():
    now = 1_800_000_000 * 10**9
    a, b = build_sample(seed=3, run="r1", now_ns=now), build_sample(seed=3, run="r1", now_ns=now)
    assert a.spans == b.spans
    c = build_sample(seed=3, run="r2", now_ns=now)
    assert not {s.trace_id for s in a.spans} & {s.trace_id for s in c.spans}
    assert [(s.name, s.start, s.status) for s in a.spans] == [(s.name, s.start, s.status) for s in c.spans]
    d = build_sample(seed=4, run="r1", now_ns=now)
    assert [(s.name, s.start) for s in a.spans] != [(s.name, s.start) for s in d.spans]
    assert max(s.end for s in a.spans) < now


def test_retention_example_archives_the_older_traces_which_stay_findable(server, demo):
    """Last in this file: it moves traces to the archive."""
    before = {r["trace_id"]: r for r in all_traces(server)}
    now = time.time_ns()
    # The example's rules: errors stay hot 3 days, the rest 1 day (the sample keeps 15 min from day edges).
    expected = {t for t, r in before.items() if r["end_ns"] < now - (3 if r["status"] == "error" else 1) * DAY}
    assert 150 < len(expected) < len(before)
    plan = tracelake(server, "archiver", "plan", "--retention", str(RULES), "--json")
    assert plan.returncode == 0, plan.stderr
    totals = json.loads(plan.stdout)["totals"]
    assert totals["archive"]["traces"] == len(expected)
    run = tracelake(server, "archiver", "run", "--retention", str(RULES), "--json")
    assert run.returncode == 0, run.stderr
    after = {r["trace_id"]: r for r in all_traces(server)}
    assert set(after) == set(before)  # all still in the list, across both tiers
    assert {t for t, r in after.items() if r["tier"] == "archive"} == expected
    archived = next(iter(expected))
    doc = api(server, f"/api/traces/{archived}")
    assert doc["tier"] == "archive" and doc["span_count"] == before[archived]["spans"]
