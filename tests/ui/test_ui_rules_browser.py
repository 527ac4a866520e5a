"""Chromium edits the retention rules of a real ``tracelake server`` started without ``--retention``:
a YAML error is shown in place (line, field, the line selected in the editor) and nothing is saved;
fixed, the preview shows the edited plan beside today's; applied, the version is listed and the
archiver runs with it. Rule filters and the comment carry markup that must stay text."""
from __future__ import annotations

import json

import httpx
import pytest

from ui_browser import clean, needs_chromium, send_recent_and_old, shot

pytestmark = needs_chromium

HOSTILE = "<img src=x onerror=window.__xss=1>"
BAD = f"""\
rules:
  - name: odd
    match: '"{HOSTILE}"'
    hot: 1d
    archive: 90x
  - name: default
    hot: 1d
    archive: 90d
"""
GOOD = BAD.replace("archive: 90x", "archive: 90d")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from server_process import start_server

    srv = start_server(tmp_path_factory.mktemp("ui-rules") / "data", archive_every="1d")
    try:
        send_recent_and_old(srv, (47, 48))
        yield srv
    finally:
        srv.stop()


def test_edit_error_in_place_fix_preview_and_apply(server, page):
    page.goto(f"{server.ui_url}/retention?tab=rules")
    assert "No rules yet" in page.locator("#rules-source").inner_text()
    assert page.locator("#rules-versions tbody tr").first.inner_text().startswith("No version")

    page.fill("#rules-yaml", BAD)
    page.click("#rules-preview-btn")
    error = page.locator("#rules-error")
    error.wait_for()
    assert error.inner_text().startswith("Line 5, rules[0] (odd).archive: bad duration '90x'")
    assert page.locator(".rules-excerpt tr.bad").inner_text().strip().startswith("5")
    assert page.locator("#rules-yaml").get_attribute("aria-invalid") == "true"
    # The editor kept the text and the caret is on the bad line.
    assert page.input_value("#rules-yaml") == BAD
    selected = page.evaluate("(() => { const t = document.getElementById('rules-yaml');"
                             " return t.value.slice(t.selectionStart, t.selectionEnd); })()")
    assert selected == "    archive: 90x"
    assert page.locator("#rules-diff").count() == 0 and page.locator("#rules-apply").count() == 0
    shot(page, "rules-error")

    page.fill("#rules-yaml", GOOD)
    page.click("#rules-preview-btn")
    page.locator("#rules-diff").wait_for()
    assert page.locator("#rules-error").count() == 0
    rows = page.locator("#rules-diff tbody tr")
    assert rows.count() == 2
    odd, default = rows.nth(0), rows.nth(1)
    assert odd.get_attribute("data-rule") == "odd" and HOSTILE in odd.inner_text()  # shown as text
    assert "added" in default.inner_text()
    today, edited = default.locator("td.today").inner_text(), default.locator("td.edited").inner_text()
    assert today.startswith("archive 0 tr")
    assert edited.startswith("archive 5 tr") and "+5 tr" in edited  # the five 3-day-old traces
    assert "rules-differs" in (default.get_attribute("class") or "")
    shot(page, "rules-preview")

    page.fill("#rules-comment", f"first rules {HOSTILE}")
    page.click("#rules-apply-btn")
    page.locator("#rules-applied").wait_for()
    assert "Applied version 1" in page.locator("#rules-applied").inner_text()
    assert "from its next run" in page.locator("#rules-applied").inner_text()
    version_row = page.locator("#rules-versions tbody tr").first
    assert version_row.locator("td").nth(0).inner_text() == "1"
    assert HOSTILE in version_row.inner_text()
    assert page.input_value("#rules-yaml") == GOOD  # the editor now shows the rules in force
    page.click("#tab-overview")  # the overview shows the rules in force and their plan
    page.locator("#rules").wait_for()
    assert page.locator("#not-configured").count() == 0
    assert page.locator("#rules tbody tr").count() == 2 and page.locator("#plan").is_visible()
    clean(page)

    # The version page shows the YAML as text; the archiver runs with the applied rules.
    page.click("#tab-rules")
    page.click("#rules-versions a:has-text('view')")
    page.locator("#version-yaml").wait_for()
    assert page.locator("#version-yaml").inner_text().strip() == GOOD.strip()
    with httpx.stream("POST", f"{server.ui_url}/api/archiver/run", timeout=300) as r:
        events = [json.loads(line) for line in r.iter_lines() if line.strip()]
    assert events[-1]["event"] == "result", events[-1]
    assert events[-1]["runs"][-1]["traces"] == 5 and set(events[-1]["runs"][-1]["rules"]) == {"odd", "default"}
    page.goto(f"{server.ui_url}/retention?tab=rules")
    assert "In force: version 1" in page.locator("#rules-source").inner_text()
    clean(page)
