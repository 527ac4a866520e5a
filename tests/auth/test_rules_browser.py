"""The rule editor signed in through the login form (session cookie: every htmx change carries the
CSRF token): ops preview but see no Apply; an admin previews and applies, and the version is
recorded under the admin's key id."""
from __future__ import annotations

import re

import pytest
from auth_stack import ADMIN_KEY, Client, create_key, start_auth_server
from test_hostile import ARGS, CHROMIUM, needs_chromium

RULES = "rules:\n  - name: default\n    hot: 7d\n    archive: 90d\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_auth_server(tmp_path_factory.mktemp("auth-rules-browser") / "data")
    try:
        srv.ops_key = create_key(srv, "A", "ops")  # type: ignore[attr-defined]
        yield srv
    finally:
        srv.terminate()


def _signed_in(browser, base: str, key: str):
    page = browser.new_context().new_page()
    page.goto(f"{base}/retention?tab=rules")
    assert "/login" in page.url
    page.fill("input[name=key]", key)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"^[^?#]*/retention([?#].*)?$"))
    return page


@needs_chromium
def test_ops_preview_and_admin_applies_through_the_session(server):
    from playwright.sync_api import sync_playwright

    base = server.ui_url
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            ops = _signed_in(browser, base, server.ops_key)
            ops.fill("#rules-yaml", RULES)
            ops.click("#rules-preview-btn")
            ops.locator("#rules-diff").wait_for()
            assert ops.locator("#rules-apply").count() == 0
            assert "needs an admin" in ops.locator("#rules-no-apply").inner_text()

            admin = _signed_in(browser, base, ADMIN_KEY)
            admin.fill("#rules-yaml", RULES)
            admin.click("#rules-preview-btn")
            admin.locator("#rules-diff").wait_for()
            admin.fill("#rules-comment", "signed in")
            admin.click("#rules-apply-btn")
            admin.locator("#rules-applied").wait_for()
            assert "Applied version 1" in admin.locator("#rules-applied").inner_text()
            row = admin.locator("#rules-versions tbody tr").first.inner_text()
            assert "signed in" in row and "admin" in row
        finally:
            browser.close()
    versions = Client(server, ADMIN_KEY).get("/api/retention/versions").json()["versions"]
    assert [(v["version"], v["role"], v["comment"]) for v in versions] == [(1, "admin", "signed in")]
    assert versions[0]["actor"] != "local"
