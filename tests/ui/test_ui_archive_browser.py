"""Chromium over a real ``tracelake server --retention``: traces three days old sent through its
collector, one archiver run through its API (spans to the Delta table, hot copy deleted), then the
Retention page and an archived trace opened from the trace list.
"""
from __future__ import annotations

import pytest
from ui_browser import clean, list_7d, needs_chromium, run_archiver, send_recent_and_old, shot

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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from server_process import start_server

    root = tmp_path_factory.mktemp("ui-archive-e2e")
    rules = root / "retention.yaml"
    rules.write_text(RETENTION)
    srv = start_server(root / "data", retention=str(rules))
    try:
        srv.recent, srv.old = send_recent_and_old(srv, (45, 46))  # type: ignore[attr-defined]
        assert len(list_7d(srv.ui_url)) == 10, "".join(srv.output[-30:])
        events = run_archiver(srv.ui_url)
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
    heights = {}
    for tab in ("overview", "rules", "keep", "erase"):
        page.goto(f"{server.ui_url}/retention?tab={tab}")
        page.wait_for_load_state("networkidle")
        heights[tab] = page.evaluate("document.documentElement.scrollHeight")
    assert max(heights.values()) < 1800, heights  # was one page of 2,500 px with everything at once
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
