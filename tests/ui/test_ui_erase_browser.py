"""Chromium over a real ``tracelake server --retention``: press Restore on an archived trace's page
(it comes back hot), then erase a user from the Retention page (untrusted ids shown escaped) and
download the receipt."""
from __future__ import annotations

import json

import httpx
import pytest

import ui_traces
from ui_browser import needs_chromium, run_archiver, send_recent_and_old, shot, wait_js

pytestmark = needs_chromium

RETENTION = """\
rules:
  - name: default
    hot: 1d
    archive: 90d
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from server_process import start_server

    root = tmp_path_factory.mktemp("ui-erase-e2e")
    rules = root / "retention.yaml"
    rules.write_text(RETENTION)
    srv = start_server(root / "data", retention=str(rules), env={"TRACELAKE_ERASE_PARTS_WAIT_S": "0",
                                                                   "TRACELAKE_ERASE_SPOOL_WAIT_S": "30"})
    try:
        srv.recent, srv.old = send_recent_and_old(srv, (55, 56))  # type: ignore[attr-defined]
        run_archiver(srv.ui_url)
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def confirming_page(browser):
    """A page that accepts confirmations (hx-confirm) and records every dialog."""
    ctx = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    pg = ctx.new_page()
    pg.dialogs = []  # type: ignore[attr-defined]
    pg.js_errors = []  # type: ignore[attr-defined]

    def on_dialog(d):
        pg.dialogs.append((d.type, d.message))
        d.accept() if d.type == "confirm" else d.dismiss()

    pg.on("dialog", on_dialog)
    pg.on("pageerror", lambda e: pg.js_errors.append(str(e)))
    yield pg
    ctx.close()


def test_restore_button_brings_an_archived_trace_back(server, confirming_page):
    page, tid = confirming_page, server.old.genai
    page.goto(f"{server.ui_url}/traces/{tid}")
    assert page.locator("#trace-tier .tier-archive").is_visible()
    page.select_option("#restore-pin-for", "30d")
    page.locator("#restore-button").click()
    page.locator("#restore-done").wait_for(timeout=120_000)
    assert "pinned until" in page.locator("#restore-done").inner_text()
    wait_js(page, "(document.querySelector('#ret-tier') || {textContent: ''}).textContent.trim() === 'hot'", 60)
    assert page.locator("#ret-pin").is_visible()  # the retention panel follows the restore without a reload
    shot(page, "trace-restored")
    page.goto(f"{server.ui_url}/traces/{tid}")
    assert page.locator("#trace-tier .tier-hot").is_visible()
    assert page.locator("#restore-button").count() == 0
    assert page.locator("#span-rows .srow").count() == 3
    assert [t for t, _ in page.dialogs] == ["confirm"] and not page.js_errors


def test_erase_from_the_retention_page_and_download_the_receipt(server, confirming_page, tmp_path):
    page = confirming_page
    page.goto(f"{server.ui_url}/retention?tab=erase")
    page.locator("#erase-form").wait_for(timeout=30_000)
    page.fill("#erase-user", ui_traces.XSS_IMG)
    page.check("#erase-dry-run")
    page.locator("#erase-submit").click()
    page.locator("#erase-dry-result").wait_for(timeout=120_000)
    assert "2 trace(s) would be erased (1 hot, 1 archived)" in page.locator("#erase-dry-result").inner_text()
    page.uncheck("#erase-dry-run")
    page.locator("#erase-submit").click()
    page.locator("#erase-result").wait_for(timeout=300_000)
    with page.expect_download() as info:
        page.locator("#erase-result-receipt").click()
    path = tmp_path / "receipt.json"
    info.value.save_as(path)
    receipt = json.loads(path.read_text())
    assert set(receipt["matched_trace_ids"]) == {server.recent.xss, server.old.xss}
    assert receipt["spans"]["after"] == {"hot": 0, "archive": 0}
    assert receipt["request"]["criteria"]["user"] == ui_traces.XSS_IMG
    row = page.locator(f"#receipts tr[data-receipt='{receipt['request_id']}']")
    assert 'user:"<img src=x onerror=' in row.inner_text()  # the criteria shown as text, never run
    assert row.locator("img").count() == 0
    assert page.locator("#receipts .receipt-download").count() == 1
    shot(page, "retention-erased")
    # Bad input: the form says what is wrong.
    page.fill("#erase-user", "")
    page.fill("#erase-filter", "nosuchfield:1")
    page.locator("#erase-submit").click()
    page.locator("#erase-error").wait_for(timeout=60_000)
    assert "filter does not parse" in page.locator("#erase-error").inner_text()
    assert page.evaluate("window.__xss") is None
    assert all(t == "confirm" for t, _ in page.dialogs) and not page.js_errors
    for tid in (server.recent.xss, server.old.xss):
        assert httpx.get(f"{server.ui_url}/api/traces/{tid}", timeout=60).status_code == 404


def test_restore_by_filter_from_the_retention_page(server, confirming_page):
    page = confirming_page
    page.goto(f"{server.ui_url}/retention?tab=erase")
    page.locator("#restore-filter-form").wait_for(timeout=30_000)
    page.fill("#restore-filter", "nosuchfield:1")
    page.locator("#restore-filter-submit").click()
    page.locator("#restore-filter-error").wait_for(timeout=60_000)
    assert "filter does not parse" in page.locator("#restore-filter-error").inner_text()
    page.fill("#restore-filter", "session:sess-2")
    page.select_option("#restore-filter-pin", "1d")
    page.locator("#restore-filter-submit").click()
    page.locator("#restore-filter-result").wait_for(timeout=120_000)
    assert "Restored 1 trace(s)" in page.locator("#restore-filter-result").inner_text()
    doc = httpx.get(f"{server.ui_url}/api/traces", params={"range": "7d", "q": "session:sess-2"}, timeout=60).json()
    assert sorted(t.get("tier") for t in doc["traces"]) == ["hot", "hot"]
    assert not page.js_errors
