"""Who may edit retention rules, on a real ``tracelake server --auth``: ops preview and read the
versions, only admins apply (the rules decide what every project keeps), applies are audited with
the admin's key id, and the versions table is not readable through /api/sql by project callers."""
from __future__ import annotations

import pytest
from auth_stack import ADMIN_KEY, Client, create_key, start_auth_server

RULES = "rules:\n  - name: default\n    hot: 7d\n    archive: 90d\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_auth_server(tmp_path_factory.mktemp("auth-rules") / "data")
    try:
        srv.keys = {role: create_key(srv, "A", role) for role in ("viewer", "engineer", "ops")}  # type: ignore[attr-defined]
        yield srv
    finally:
        srv.terminate()


def test_ops_preview_only_admins_apply(server):
    viewer, engineer, ops = (Client(server, server.keys[r]) for r in ("viewer", "engineer", "ops"))
    admin = Client(server, ADMIN_KEY)
    body = {"yaml": RULES}
    assert viewer.post("/api/retention/preview", json=body).status_code == 403
    assert engineer.post("/api/retention/preview", json=body).status_code == 403
    preview = ops.post("/api/retention/preview", json=body)
    assert preview.status_code == 200, preview.text
    base = preview.json()["base_version"]
    for who in (viewer, engineer, ops):
        refused = who.post("/api/retention/apply", json={**body, "base_version": base})
        assert refused.status_code == 403, refused.text
        assert who.post("/retention/rules/apply", data={"yaml": RULES, "base_version": str(base)}).status_code == 403
    assert viewer.get("/api/retention/versions").status_code == 403
    assert ops.get("/api/retention/versions").json()["versions"] == []  # nothing was applied by them

    applied = admin.post("/api/retention/apply", json={**body, "base_version": base, "comment": "by the admin"})
    assert applied.status_code == 200, applied.text
    version = applied.json()["version"]
    assert version["role"] == "admin" and version["actor"] != "local" and ADMIN_KEY not in version["actor"]
    listed = ops.get("/api/retention/versions").json()
    assert [(v["version"], v["actor"], v["comment"]) for v in listed["versions"]] == [(1, version["actor"], "by the admin")]
    assert ops.get("/api/retention/versions/1").json()["yaml"] == RULES
    entries = admin.get("/api/audit").json()
    rows = entries["entries"] if isinstance(entries, dict) else entries
    assert any(r["action"] == "retention.apply" and r["role"] == "admin" and r["target"] == "version 1" for r in rows), rows
    # The page: ops see the editor and the preview, but no Apply button.
    page = ops.post("/retention/rules/preview", data={"yaml": RULES.replace("7d", "8d"), "base_version": "1"},
                    headers={"HX-Request": "true"})
    assert page.status_code == 200 and 'id="rules-diff"' in page.text
    assert 'id="rules-apply"' not in page.text and "needs an admin" in page.text


def test_project_callers_cannot_read_the_versions_table_with_sql(server):
    ops = Client(server, server.keys["ops"])
    r = ops.sql("SELECT count() FROM retention_policy_versions")
    assert r.status_code == 400 and "not readable" in r.text
