"""The Alerts page and a rule's page: states, a sparkline, history linking to the traces behind a
change, the editor's errors with line and field; untrusted values (a user id) escaped."""
from __future__ import annotations

import html
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from markupsafe import escape

from alerts_helpers import T0, engine, insert, traces

EVIL = '<script>window.__x=1</script>"'
RULES = """rules:
  - name: page-users
    filter: service:page-svc
    aggregate: error_rate
    window: 5m
    threshold: 20%
    group_by: user
"""


@pytest.fixture(scope="module")
def client(store):
    from fastapi.testclient import TestClient

    from tracelake.config import Settings
    from tracelake.web import create_app

    app = create_app(store, Settings())
    with TestClient(app) as c:
        yield c, app


def test_the_pages_show_states_history_and_links_to_the_traces(store, client):
    c, app = client
    day = T0 + timedelta(days=40)
    insert(store, traces(day, 30, errors=20, service="page-svc", attrs={"user.id": EVIL}))
    e = engine(store, RULES)
    app.state.alerts = e  # as `tracelake server` sets it
    try:
        done = e.evaluate(day + timedelta(minutes=2))
        assert [(x.group, x.to_state) for x in done.changes] == [(EVIL, "firing")]
        page = c.get("/alerts")
        assert page.status_code == 200
        row = re.search(r'<tr id="rule-\d+" data-rule="page-users" data-state="(\w+)">(.*?)</tr>', page.text, re.S)
        assert row and row.group(1) == "firing"
        assert EVIL not in page.text and str(escape(EVIL)) in row.group(2)  # the user id, escaped
        assert '<svg class="spark"' in row.group(2)
        detail = c.get("/alerts/rules/page-users")
        assert detail.status_code == 200 and EVIL not in detail.text
        link = re.search(r'<a href="([^"]+)">the traces behind it</a>', detail.text).group(1)
        query = parse_qs(urlparse(html.unescape(link)).query)
        assert query["q"] == ['(service:page-svc) user:"<script>window.__x=1</script>\\"" status:error']
        assert int(query["to"][0]) - int(query["from"][0]) == 5 * 60 * 1000
        # The link opens the trace list on exactly the failed traces of that user in the window.
        listed = c.get("/api/traces", params={"q": query["q"][0], "from": query["from"][0], "to": query["to"][0]})
        assert listed.status_code == 200 and len(listed.json()["traces"]) == 20
    finally:
        app.state.alerts = None


def test_the_editor_shows_a_bad_file_with_its_line_and_field(client):
    c, _ = client
    bad = "rules:\n  - name: x\n    aggregate: count\n    window: 5m\n    threshold: lots\n"
    page = c.post("/alerts/preview", data={"yaml": bad})
    assert page.status_code == 400
    assert "<strong>line 5, rules[0] (x).threshold</strong>" in page.text
    assert "threshold: lots" in page.text  # the text is kept as typed
    good = c.post("/alerts/preview", data={"yaml": RULES.replace("page-users", "page-preview")})
    assert good.status_code == 200 and 'id="alerts-preview"' in good.text and 'data-rule="page-preview"' in good.text
