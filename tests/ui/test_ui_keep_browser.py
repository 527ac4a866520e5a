"""Chromium over a real ``tracelake server --retention``: the trace page's retention panel and its
Keep button, and the Retention page's pins and holds (a bad filter shows its error in place and
creates nothing; a good one is listed, user text escaped)."""
from __future__ import annotations

import time

import httpx
import pytest

import ui_traces
from ui_browser import clean, needs_chromium, post_otlp, shot

pytestmark = needs_chromium

RETENTION = "rules:\n  - name: default\n    hot: 7d\n    archive: 90d\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from server_process import start_server

    root = tmp_path_factory.mktemp("ui-keep")
    rules = root / "retention.yaml"
    rules.write_text(RETENTION)
    srv = start_server(root / "data", retention=str(rules))
    try:
        srv.known = ui_traces.known_traces(time.time_ns(), seed=71, extracted=False)  # type: ignore[attr-defined]
        for body in srv.known.requests:  # type: ignore[attr-defined]
            post_otlp(srv.otlp_http_url, body)
        deadline = time.monotonic() + 60
        while not httpx.get(f"{srv.ui_url}/api/traces", params={"q": f"trace:{srv.known.genai}"},
                            timeout=60).json()["traces"]:
            assert time.monotonic() < deadline, "".join(srv.output[-30:])
            time.sleep(0.3)
        yield srv
    finally:
        srv.stop()


def test_keep_button_pins_the_trace(server, page):
    tid = server.known.genai
    page.goto(f"{server.ui_url}/traces/{tid}")
    panel = page.locator("#retention-panel")
    panel.locator("#keep-button").wait_for(timeout=15_000)
    assert "default" in panel.locator("#ret-rule").inner_text()
    assert "nothing" in panel.locator("#ret-kept").inner_text()
    assert "hot tier" in panel.locator("#pin-what").inner_text()  # the form says what pinning does
    panel.locator("#pin-until").select_option("30d")
    panel.locator("#pin-reason").fill("<b>incident</b> 7")
    panel.locator("#keep-button").click()
    page.locator("#ret-pin").wait_for(timeout=15_000)
    assert "until" in page.locator("#ret-pin").inner_text()
    assert "<b>incident</b> 7" in page.locator("#ret-kept").inner_text()  # shown as text, not markup
    assert page.locator("#ret-kept b").count() == 0
    assert page.locator("#unpin-button").is_visible()
    shot(page, "trace-keep")
    doc = httpx.get(f"{server.ui_url}/api/traces/{tid}/retention", timeout=60).json()
    assert doc["pin"]["reason"] == "<b>incident</b> 7" and doc["pin"]["until"] is not None
    # Listed on the Retention page.
    page.goto(f"{server.ui_url}/retention?tab=keep")
    page.locator("#pins").wait_for(timeout=15_000)
    assert tid in page.locator("#pins").inner_text()
    clean(page)


def test_hold_form_bad_then_good_filter(server, page):
    page.goto(f"{server.ui_url}/retention?tab=keep")
    form = page.locator("#hold-form")
    form.wait_for(timeout=15_000)
    page.locator("#hold-name").fill("case-42")
    page.locator("#hold-filter").fill("user:alice duration>soon")
    page.locator("#hold-reason").fill("<img src=x onerror=window.__xss=1> litigation")
    page.locator("#hold-create").click()
    page.locator("#hold-error").wait_for(timeout=15_000)
    assert "expected a duration" in page.locator("#hold-error").inner_text()
    # The form keeps what was typed; nothing was created.
    assert page.locator("#hold-name").input_value() == "case-42"
    assert page.locator("#hold-filter").input_value() == "user:alice duration>soon"
    assert httpx.get(f"{server.ui_url}/api/holds", timeout=60).json()["holds"] == []
    shot(page, "retention-hold-error")

    page.locator("#hold-filter").fill('user:"<script>window.__xss=1</script>"')
    page.locator("#hold-project").fill("proj-7")  # without auth the caller is an admin: it may choose
    page.locator("#hold-create").click()
    row = page.locator("#holds tr[data-hold='case-42']")
    row.wait_for(timeout=15_000)
    assert page.locator("#hold-error").count() == 0
    text = row.inner_text()
    assert "<img src=x onerror=window.__xss=1> litigation" in text and "<script>" in text
    assert "by local" in text and "active" in text
    assert row.locator("td.hold-project").inner_text() == "proj-7"
    assert page.locator("#holds img, #holds script").count() == 0
    holds = httpx.get(f"{server.ui_url}/api/holds", timeout=60).json()["holds"]
    assert [h["name"] for h in holds] == ["case-42"] and holds[0]["actor"] == "local"
    assert holds[0]["project"] == "proj-7"
    shot(page, "retention-holds")

    row.locator("button.release-hold").click()
    page.locator("#holds tr[data-hold='case-42'].hold-released").wait_for(timeout=15_000)
    assert "by local" in page.locator("#holds tr[data-hold='case-42'] td").nth(5).inner_text()
    clean(page)
