"""Explain, pins and holds over an app without a retention policy (in-process, embedded store):
explain says there is no policy, the partials escape every user value, bad input changes nothing."""
from __future__ import annotations


def test_explain_without_a_policy_says_so(client, known):
    r = client.get(f"/api/traces/{known.genai}/retention")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["tier"] == "hot" and doc["policy"] is False and doc["rule"] is None
    assert doc["leaves_hot"] is None and doc["deleted"] is None
    assert any("no retention policy" in n for n in doc["notes"])
    page = client.get(f"/traces/{known.genai}/retention")
    assert page.status_code == 200 and "no retention policy" in page.text and 'id="keep-button"' in page.text
    missing = client.get("/traces/" + "0" * 32 + "/retention")
    assert missing.status_code == 404 and "no trace" in missing.text
    # The trace page loads the panel after itself.
    assert 'hx-get="/traces/' + known.genai + '/retention"' in client.get(f"/traces/{known.genai}").text


def test_pin_form_and_unpin_through_the_partial(client, known):
    tid = known.openinference
    bad = client.post(f"/traces/{tid}/pin", data={"until": "soon", "reason": ""})
    assert bad.status_code == 200 and 'id="ret-error"' in bad.text and "&#39;until&#39;" in bad.text
    assert client.get(f"/api/traces/{tid}/retention").json()["pin"] is None  # nothing pinned
    done = client.post(f"/traces/{tid}/pin", data={"until": "7d", "reason": "<script>x()</script>"})
    assert done.status_code == 200 and 'id="ret-pin"' in done.text
    assert "<script>x()" not in done.text and "&lt;script&gt;x()&lt;/script&gt;" in done.text
    assert client.post(f"/traces/{tid}/unpin").status_code == 200
    assert client.get(f"/api/traces/{tid}/retention").json()["pin"] is None


def test_hold_section_escapes_and_keeps_the_form_on_error(client):
    r = client.post("/retention/holds", data={"name": "x1", "filter": "(user:a", "reason": "<i>r</i>"})
    assert r.status_code == 200 and 'id="hold-error"' in r.text and "missing &#39;)&#39;" in r.text
    assert 'value="(user:a"' in r.text and "&lt;i&gt;r&lt;/i&gt;" in r.text  # the form keeps what was typed
    assert client.get("/api/holds").json()["holds"] == []
    r = client.post("/retention/holds", data={"name": "x1", "filter": 'user:"<b>bold</b>"', "reason": "<i>r</i>"})
    assert r.status_code == 200 and 'id="hold-error"' not in r.text
    assert "<b>bold</b>" not in r.text and "&lt;b&gt;bold&lt;/b&gt;" in r.text and "<i>r</i>" not in r.text
    again = client.post("/api/holds", json={"name": "x1", "filter": "user:a", "reason": "r"})
    assert again.status_code == 409 and "never reused" in again.json()["error"]
    assert client.post("/retention/holds/x1/release").status_code == 200
    assert client.get("/api/holds").json()["holds"][0]["released_by"] == "local"
