"""Scores end to end on one ``tracelake server`` (issue 25): the SDK scores from inside a span and
from another process that only has the trace id (both through the collector's spool); in
Chromium, thumbs and a comment on the trace page, on the trace and on a span; review mode labels
ten traces by keyboard."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import httpx
import pytest

from server_process import wait_until
from ui_browser import clean, needs_chromium, shot, wait_js

# The agent: twelve traces, the first scored by an evaluator from inside its span.
AGENT = textwrap.dedent("""
    import json, sys
    import tracelake
    tracelake.autotrace(endpoint=sys.argv[1], service_name="support-bot")
    ids = []
    for i in range(12):
        with tracelake.span(f"answer {i}") as s:
            s.set_input(f"question {i} <img src=x onerror=window.__xss=1>")
            s.set_output(f"reply {i}")
            if i == 0:
                tracelake.score("correctness", 4, comment="inside the span", author="judge", author_version="v2")
            ids.append(tracelake.current_trace_id())
    assert tracelake.current_trace_id() is None
    tracelake.flush()
    print(json.dumps(ids))
""")

# A feedback endpoint in another process: only the trace id the browser sent back.
FEEDBACK = textwrap.dedent("""
    import sys
    import tracelake
    tracelake.autotrace(endpoint=sys.argv[1], service_name="feedback")
    try:
        tracelake.score("thumbs", "down")
    except ValueError as exc:
        print("refused:", exc)
    tracelake.score("thumbs", "down", trace_id=sys.argv[2], source="app", author="user-9", comment="wrong answer")
    assert tracelake.flush()
""")


def _run(script: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from server_process import start_server

    srv = start_server(tmp_path_factory.mktemp("scores-e2e") / "data")
    try:
        srv.ids = json.loads(_run(AGENT, srv.otlp_http_url).strip().splitlines()[-1])  # type: ignore[attr-defined]
        srv.wait_loaded()
        yield srv
    finally:
        srv.terminate()


def _traces(srv, q: str) -> list[str]:
    r = httpx.get(f"{srv.ui_url}/api/traces", params={"q": q, "range": "1h", "limit": 50}, timeout=60)
    assert r.status_code == 200, r.text
    return [t["trace_id"] for t in r.json()["traces"]]


def _scores(srv, trace_id: str) -> list[dict]:
    return httpx.get(f"{srv.ui_url}/api/traces/{trace_id}/scores", timeout=60).json()["all"]


def test_sdk_scores_inside_a_span_and_from_another_process_with_the_trace_id(server):
    ids = server.ids
    assert len(set(ids)) == 12 and all(len(t) == 32 for t in ids)
    inside = _scores(server, ids[0])
    assert [(s["name"], s["value"], s["author"], s["author_version"], s["source"], s["span_id"], s["comment"])
            for s in inside] == [("correctness", 4.0, "judge", "v2", "code", "", "inside the span")]
    out = _run(FEEDBACK, server.otlp_http_url, ids[0])
    assert "refused: no current trace" in out
    wait_until(lambda: _traces(server, "score.thumbs:down") == [ids[0]], "the feedback score listed")
    got = {s["name"]: s for s in _scores(server, ids[0])}
    assert (got["thumbs"]["author"], got["thumbs"]["source"], got["thumbs"]["comment"]) == ("user-9", "app", "wrong answer")
    assert _traces(server, "score.correctness>=4 has:score.thumbs") == [ids[0]]
    # Score spans are not spans of the trace: it still has its one span.
    assert server.sql("SELECT count() FROM otel_traces WHERE SpanName = 'tracelake.score'") == [[0]]
    assert server.sql(f"SELECT count() FROM otel_traces WHERE TraceId = '{ids[0]}'") == [[1]]


def _settled(page) -> None:
    """htmx processes swapped-in content when it settles (~20 ms later): clicks wait for it."""
    wait_js(page, "window.htmx !== undefined && !document.querySelector('.htmx-added, .htmx-settling, .htmx-request')")


@needs_chromium
def test_thumbs_and_comment_on_the_trace_page(server, page):
    tid = server.ids[1]
    page.goto(f"{server.ui_url}/traces/{tid}")
    page.wait_for_selector("#thumbs-down")
    _settled(page)
    hostile = "<img src=x onerror=window.__xss=2> wrong total"
    page.fill("#score-comment", hostile)
    page.click("#thumbs-down")
    page.wait_for_selector("#scores-current li.score[data-name='thumbs']")
    item = page.locator("#scores-current li.score[data-name='thumbs']")
    assert item.get_attribute("data-value") == "down" and item.get_attribute("data-span") == ""
    assert item.locator(".score-comment").inner_text() == hostile  # shown as text, never run
    # The same on the span shown in the panel.
    span_id = page.locator("#panel .span-panel").get_attribute("data-span")
    _settled(page)
    page.select_option("#score-target", "span")
    page.click("#thumbs-up")
    page.wait_for_selector(f"#scores-current li.score[data-span='{span_id}']")
    assert page.locator(f"#scores-current li.score[data-span='{span_id}']").get_attribute("data-value") == "up"
    shot(page, "scores-trace-panel")
    clean(page)
    assert tid in _traces(server, "score.thumbs:down") and tid in _traces(server, "score.thumbs:up")
    page.goto(f"{server.ui_url}/traces?range=1h&q=has:score.thumbs")
    page.wait_for_selector(f"tr.trow[data-id='{tid}'] .score-chip[data-score='thumbs']")


@needs_chromium
def test_review_mode_labels_ten_traces_by_keyboard(server, page):
    page.goto(f"{server.ui_url}/review?q=name:answer*&name=thumbs&range=1h")
    page.wait_for_selector("#review-trace")
    wait_js(page, "window.htmx !== undefined && document.readyState === 'complete'")  # keys need htmx
    seen = []
    for n in range(10):
        seen.append(page.locator("#review-trace").get_attribute("data-trace"))
        page.keyboard.press("1" if n % 2 == 0 else "2")  # thumbs: 1 down, 2 up
        wait_js(page, f"document.getElementById('review-progress').textContent.startsWith('{n + 1} labelled')")
    page.wait_for_selector("#review-empty")
    shot(page, "scores-review-done")
    clean(page)
    assert len(set(seen)) == 10 and not {server.ids[0], server.ids[1]} & set(seen)
    labels = {t: _scores(server, t)[0]["shown"] for t in seen}
    assert [labels[t] for t in seen] == ["down", "up"] * 5
    assert all(_scores(server, t)[0]["source"] == "human" for t in seen)
    assert set(_traces(server, "name:answer* has:score.thumbs")) == set(server.ids)


def test_jsonl_export_of_judged_traces_by_api_and_cli(server):
    r = httpx.get(f"{server.ui_url}/api/export/scores.jsonl", params={"q": "name:answer*", "range": "1h"}, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    docs = [json.loads(line) for line in r.text.splitlines()]
    assert {d["trace"]["trace_id"] for d in docs} == set(server.ids)
    first = next(d for d in docs if d["trace"]["trace_id"] == server.ids[0])
    assert "question 0" in first["root_io"]["input.value"] and first["root_io"]["output.value"] == "reply 0"
    assert {s["name"] for s in first["scores"]} >= {"correctness", "thumbs"}
    bad = httpx.get(f"{server.ui_url}/api/export/scores.jsonl", params={"q": "score.x<<1"}, timeout=60)
    assert bad.status_code == 400 and bad.json()["field"] == "q"

    env = {**os.environ, "TRACELAKE_URL": server.ui_url}
    done = subprocess.run([sys.executable, "-m", "tracelake.cli", "export-scores", "--filter", "has:score.correctness",
                           "--range", "1h"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [d["trace"]["trace_id"] for d in lines] == [server.ids[0]]
    assert [s["value"] for s in lines[0]["scores"] if s["name"] == "correctness"] == [4.0]
