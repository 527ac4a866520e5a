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
    # (Other tests pin traces of B in this shared server: only which project's pins show matters.)
    assert all(p["project"] == "B" and p["trace_id"] != a for p in stack.client("B:viewer").get("/api/pins").json()["pins"])
    assert a in [p["trace_id"] for p in eng.get("/api/pins").json()["pins"]]
    assert all(p["project"] == "A" for p in eng.get("/api/pins").json()["pins"])
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


def test_holds_are_scoped_to_the_callers_project(stack):
    """A's ops key makes, sees and releases A's holds only; of an admin's global hold it sees that
    it exists, never its filter or reason; B's holds are as if there were none."""
    admin, ops_a = stack.admin, stack.client("A:ops")
    made = []

    def create(client, name: str, filter_text: str, reason: str, project: str | None = None):
        body = {"name": name, "filter": filter_text, "reason": reason, **({"project": project} if project else {})}
        r = client.post("/api/holds", json=body)
        if r.status_code == 201:
            made.append(name)
        return r

    try:
        assert create(admin, "scope-b", "user:user-B", "secret reason of B", "B").json()["hold"]["project"] == "B"
        assert create(admin, "scope-all", "user:user-A", "secret global reason").json()["hold"]["project"] is None
        own = create(ops_a, "scope-a", "user:user-A", "reason of A")
        assert own.status_code == 201 and own.json()["hold"]["project"] == "A"  # forced to the key's project
        assert create(ops_a, "scope-a2", "user:x", "r", "A").status_code == 201  # its own project, said outright
        other = create(ops_a, "scope-a-for-b", "user:user-B", "r", "B")
        assert other.status_code == 403 and "project 'A'" in other.json()["error"]
        # A used name: refused without naming the project that holds it.
        taken = create(ops_a, "scope-b", "user:x", "r")
        assert taken.status_code == 409 and "across all projects" in taken.json()["error"]
        assert "B" not in taken.json()["error"].replace("scope-b", "")

        listed = ops_a.get("/api/holds")
        holds = {h["name"]: h for h in listed.json()["holds"]}
        assert "scope-b" not in holds and {"scope-a", "scope-all"} <= set(holds)
        assert holds["scope-a"]["filter"] == "user:user-A" and holds["scope-a"]["reason"] == "reason of A"
        assert holds["scope-all"]["filter"] is None and holds["scope-all"]["reason"] is None
        assert holds["scope-all"]["details"] == "global hold (details visible to admins)"
        assert "secret" not in listed.text and "user:user-B" not in listed.text
        assert {"scope-a", "scope-b", "scope-all"} <= {h["name"] for h in admin.get("/api/holds").json()["holds"]}

        # The Retention page's section says the same; the project field is an admin's.
        page = ops_a.get("/retention/keep").text
        assert "global hold (details visible to admins)" in page and "secret" not in page
        assert 'id="hold-project"' not in page and "scope-b" not in page
        assert 'id="hold-project"' in admin.get("/retention/keep").text

        # Release: B's hold is not found, the global one is an admin's; nothing changed.
        gone = ops_a.http.delete("/api/holds/scope-b")
        assert gone.status_code == 404 and "secret" not in gone.text and "user:" not in gone.text
        assert ops_a.post("/api/holds/scope-all/release").status_code == 403
        assert ops_a.post("/retention/holds/scope-b/release").status_code == 200  # the page: nothing happens
        active = {h["name"] for h in admin.get("/api/holds").json()["holds"] if h["active"]}
        assert {"scope-b", "scope-all", "scope-a"} <= active

        # Erasure by A refused: its own hold by name, the admin's global one unnamed.
        refused = ops_a.post("/api/erase", json={"user": "user-A"})
        assert refused.status_code == 409, refused.text
        assert refused.json()["holds"] == {"a hold made by an admin": [stack.traces["A"]],
                                           "scope-a": [stack.traces["A"]]}
        assert "scope-all" not in refused.text
        by_admin = admin.post("/api/erase", json={"user": "user-A", "dry_run": True}).json()["holds"]
        assert set(by_admin) == {"scope-a", "scope-all"}

        assert ops_a.http.delete("/api/holds/scope-a").status_code == 200
        rows = admin.get("/api/audit").json()
        rows = rows["entries"] if isinstance(rows, dict) else rows
        detail = {(r["action"], r["target"]): r.get("detail", "") for r in rows}
        assert detail[("retention.hold.create", "scope-a")].startswith("project A;")
        assert detail[("retention.hold.create", "scope-all")].startswith("project all projects;")
        assert detail[("retention.hold.release", "scope-a")] == "project A"
    finally:
        for name in made:  # the stack is shared: leave no hold behind
            admin.http.delete(f"/api/holds/{name}")
