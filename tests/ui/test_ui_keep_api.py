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


def test_hold_form_project_for_an_admin(client):
    """Without auth the caller is an admin: the form has a project field; a bad project is shown in
    place and nothing is made; an empty one makes a hold of every project."""
    page = client.get("/retention/keep").text
    assert 'id="hold-project"' in page and "all projects" in page
    bad = client.post("/retention/holds", data={"name": "p1", "filter": "user:a", "reason": "r", "project": "a b"})
    assert bad.status_code == 200 and 'id="hold-error"' in bad.text and "not a project name" in bad.text
    assert 'value="a b"' in bad.text  # kept in the form
    assert all(h["name"] != "p1" for h in client.get("/api/holds").json()["holds"])
    made = client.post("/retention/holds", data={"name": "p1", "filter": "user:a", "reason": "r", "project": "A"})
    assert made.status_code == 200 and 'id="hold-error"' not in made.text
    made = client.post("/api/holds", json={"name": "p2", "filter": "user:a", "reason": "r"})
    assert made.status_code == 201 and made.json()["hold"]["project"] is None
    holds = {h["name"]: h["project"] for h in client.get("/api/holds").json()["holds"]}
    assert holds["p1"] == "A" and holds["p2"] is None
    for name in ("p1", "p2"):
        assert client.delete(f"/api/holds/{name}").status_code == 200
