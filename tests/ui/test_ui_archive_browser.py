"""Chromium over a real ``tracelake server --retention``: traces three days old sent through its
collector, one archiver run through its API (spans to the Delta table, hot copy deleted), then the
Retention page and an archived trace opened from the trace list.
"""
from __future__ import annotations

import json
import time

import httpx
import pytest

import ui_traces
from ui_browser import clean, needs_chromium, post_otlp, shot

pytestmark = needs_chromium

RETENTION = """\
rules:
  - name: errors
    match: 'status:error'
    hot: 2d
    archive: forever
  - name: default
    hot: 1d
    archive: 90d
"""
DAY = 86400 * ui_traces.S


def _wait_traces(url: str, want: int, output: list[str]) -> None:
    deadline = time.monotonic() + 60
    n = -1
    while time.monotonic() < deadline:
        n = len(httpx.get(f"{url}/api/traces", params={"range": "7d"}, timeout=120).json()["traces"])
        if n >= want:
            break
        time.sleep(0.3)
    assert n == want, "".join(output[-30:])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from server_process import start_server

    root = tmp_path_factory.mktemp("ui-archive-e2e")
    rules = root / "retention.yaml"
    rules.write_text(RETENTION)
    srv = start_server(root / "data", retention=str(rules))
    try:
        now = time.time_ns()
        srv.recent = ui_traces.known_traces(now, seed=45, extracted=False)  # type: ignore[attr-defined]
        srv.old = ui_traces.known_traces(now - 3 * DAY, seed=46, extracted=False)  # type: ignore[attr-defined]
        for body in srv.recent.requests + srv.old.requests:  # type: ignore[attr-defined]
            post_otlp(srv.otlp_http_url, body)
        _wait_traces(srv.ui_url, 10, srv.output)
        with httpx.stream("POST", f"{srv.ui_url}/api/archiver/run", timeout=300) as r:
            assert r.status_code == 200, r.read()
            events = [json.loads(line) for line in r.iter_lines() if line.strip()]
        assert events[-1]["event"] == "result", events[-1]
        assert [run["state"] for run in events[-1]["runs"]] == ["done"]
        yield srv
    finally:
        srv.stop()


def test_retention_page_shows_rules_plan_and_history(server, page):
    page.goto(f"{server.ui_url}/retention")
    rules = page.locator("#rules tbody tr")
    assert rules.count() == 2
    assert "errors" in rules.nth(0).inner_text() and "status:error" in rules.nth(0).inner_text()
    assert "everything else" in rules.nth(1).inner_text()
    assert page.locator("#plan").is_visible() and "If a run started now" in page.locator("#plan-summary").inner_text()
    run = page.locator("#runs tbody tr").first
    cells = run.locator("td")
    assert cells.nth(2).inner_text() == "done" and cells.nth(3).inner_text() == "5"  # 5 traces moved
    assert page.locator(".chart svg").count() == 2
    assert page.locator(".chart rect.s2").count() >= 2  # archive bars, spans and bytes
    assert page.locator("#tier-totals").inner_text().count("spans") == 2
    shot(page, "retention")
    clean(page)


def test_archived_trace_found_in_the_list_and_opened(server, page):
    old = server.old
    page.goto(f"{server.ui_url}/traces?range=7d")
    rows = page.locator("#trace-rows tr.trow")
    assert rows.count() == 10
    archived = page.locator(f"#trace-rows tr.trow[data-id='{old.genai}']")
    assert archived.locator(".tier-archive").is_visible()
    assert page.locator("#trace-rows .tier-archive").count() == 5
    assert page.locator(f"#trace-rows tr.trow[data-id='{server.recent.genai}'] .tier-hot").count() == 1
    shot(page, "traces-tiers")
    archived.locator("a.rname").click()
    page.wait_for_url(f"**/traces/{old.genai}")
    assert page.locator("#trace-tier .tier-archive").is_visible()
    assert page.locator("#span-rows .srow").count() == 3
    page.locator("#span-rows a.sname", has_text="chat gpt-4o").click()
    page.locator("#panel", has_text="Your order 42 has shipped.").wait_for(timeout=15_000)
    shot(page, "trace-archived")
    clean(page)
