"""Access to pins and holds: engineers and up pin traces of their project; holds need ops; viewers
read the retention panel of their own traces only; every change is audited with the caller."""
from __future__ import annotations

from auth_stack import cli


def test_viewer_cannot_pin_or_create_holds(stack):
    viewer = stack.client("A:viewer")
    tid = stack.traces["A"]
    assert viewer.post(f"/api/traces/{tid}/pin", json={}).status_code == 403
    assert viewer.post(f"/api/traces/{tid}/unpin").status_code == 403
    assert viewer.http.delete(f"/api/traces/{tid}/pin").status_code == 403
    assert viewer.post(f"/traces/{tid}/pin", data={"until": ""}).status_code == 403  # the page's form
    assert viewer.post("/api/holds", json={"name": "v", "filter": "user:x", "reason": "r"}).status_code == 403
    assert viewer.post("/retention/holds", data={"name": "v", "filter": "user:x", "reason": "r"}).status_code == 403
    assert viewer.get("/api/holds").status_code == 403  # hold names and reasons are for ops
    # The panel of its own trace, not of another project's.
    doc = viewer.get(f"/api/traces/{tid}/retention").json()
    assert doc["trace_id"] == tid and doc["pin"] is None
    assert viewer.get(f"/api/traces/{stack.traces['B']}/retention").status_code == 404
    # The CLI says so too.
    done = cli(stack.server, "archiver", "pin", tid, key=stack.keys["A:viewer"])
    assert done.returncode != 0 and "may not" in done.stderr


def test_engineer_pins_in_its_project_only_and_ops_hold(stack):
    eng, ops = stack.client("A:engineer"), stack.client("A:ops")
    a, b = stack.traces["A"], stack.traces["B"]
    r = eng.post(f"/api/traces/{a}/pin", json={"until": "7d", "reason": "keep for review"})
    assert r.status_code == 200, r.text
    pin = r.json()["pin"]
    assert pin["actor"] != "local" and pin["actor"]  # the key's id, never the key
    assert stack.keys["A:engineer"] not in r.text
    assert eng.post(f"/api/traces/{b}/pin", json={}).status_code == 404  # another project's trace
    assert eng.post("/api/holds", json={"name": "e", "filter": "user:x", "reason": "r"}).status_code == 403
    # pinned:true finds it for project A; B's callers do not see A's pin.
    found = eng.get("/api/traces", params={"q": "pinned:true", "range": "7d"}).json()["traces"]
    assert [t["trace_id"] for t in found] == [a]
    assert stack.client("B:viewer").get("/api/pins").json()["pins"] == []
    assert [p["trace_id"] for p in eng.get("/api/pins").json()["pins"]] == [a]
    assert eng.http.delete(f"/api/traces/{a}/pin").json() == {"unpinned": True}

    made = ops.post("/api/holds", json={"name": "ops-hold", "filter": "user:user-A", "reason": "case"})
    assert made.status_code == 201, made.text
    assert ops.get("/api/holds").json()["holds"][0]["name"] == "ops-hold"
    assert ops.http.delete("/api/holds/ops-hold").status_code == 200
    rows = stack.admin.get("/api/audit").json()
    rows = rows["entries"] if isinstance(rows, dict) else rows
    mine = [(r["action"], r["role"]) for r in rows if r["action"].startswith("retention.")]
    for want in (("retention.pin", "engineer"), ("retention.unpin", "engineer"),
                 ("retention.hold.create", "ops"), ("retention.hold.release", "ops")):
        assert want in mine, mine


def test_panel_hides_the_keep_button_from_viewers(stack):
    tid = stack.traces["A"]
    viewer = stack.client("A:viewer").get(f"/traces/{tid}/retention")
    assert viewer.status_code == 200 and 'id="keep-button"' not in viewer.text and "pin-not-allowed" in viewer.text
    eng = stack.client("A:engineer").get(f"/traces/{tid}/retention")
    assert eng.status_code == 200 and 'id="keep-button"' in eng.text
