"""Holds scoped to a project in a real ``tracelake server`` (no auth: the caller is an admin):
traces of two projects matching the same filter, a rule of ``hot: 0d archive: 0d``, archiver runs
deleting what no hold covers, in the hot tier and in the archive."""
from __future__ import annotations

import json
import time

import httpx
import pytest
from arx_helpers import DAY_NS
from test_keep_server import _cli, _run, _trace, _where, serve


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("keep-projects")
    old = time.time_ns() - 3 * DAY_NS
    pairs = [(user, project) for user in ("pia", "gus", "lou") for project in ("A", "B")]
    traces = {f"{user}-{project}": _trace(old + i * 10**9, user=user, project=project)
              for i, (user, project) in enumerate(pairs)}
    yield from serve(tmp, traces)


def test_a_project_hold_keeps_only_its_project_and_a_global_hold_keeps_all(world):
    server, t = world
    with httpx.Client(base_url=server.ui_url, timeout=60) as c:
        def hold(name: str, filter_text: str, project: str | None = None) -> dict:
            r = c.post("/api/holds", json={"name": name, "filter": filter_text, "reason": "case",
                                           **({"project": project} if project else {})})
            assert r.status_code == 201, r.text
            return r.json()["hold"]

        assert hold("pia-of-a", "user:pia", "A")["project"] == "A"
        assert hold("gus-everywhere", "user:gus")["project"] is None
        assert hold("lou-for-now", "user:lou")["project"] is None
        bad = c.post("/api/holds", json={"name": "x", "filter": "user:x", "reason": "r", "project": "a b"})
        assert bad.status_code == 400 and bad.json()["field"] == "project"

        plan = c.post("/api/archiver/plan", json={}).json()
        assert plan["kept"]["gone"]["hold: pia-of-a"] == 1  # pia of A only
        assert plan["totals"]["delete"]["traces"] == 1  # pia of B

        _run(server)  # hot tier: pia-B matches pia-of-a's filter but is of project B -> deleted
        assert _where(server, t["pia-A"]) == (0, 2)
        assert _where(server, t["pia-B"]) == (0, 0)
        assert _where(server, t["gus-A"]) == (0, 2) and _where(server, t["gus-B"]) == (0, 2)
        assert _where(server, t["lou-A"]) == (0, 2) and _where(server, t["lou-B"]) == (0, 2)
        e = c.get(f"/api/traces/{t['pia-A']}/retention").json()
        assert e["tier"] == "archive" and e["holds"] == ["pia-of-a"]

        # Archive tier: lou's traces stay only where a hold of their project covers them.
        hold("lou-of-b", "user:lou", "B")
        assert c.delete("/api/holds/lou-for-now").status_code == 200
        e = c.get(f"/api/traces/{t['lou-A']}/retention").json()
        assert e["holds"] == [] and "due to be deleted at the next archive run" in e["notes"]
        assert c.get(f"/api/traces/{t['lou-B']}/retention").json()["holds"] == ["lou-of-b"]
        _run(server)
        assert _where(server, t["lou-A"]) == (0, 0)
        assert _where(server, t["lou-B"]) == (0, 2)
        assert _where(server, t["pia-A"]) == (0, 2)
        assert _where(server, t["gus-A"]) == (0, 2) and _where(server, t["gus-B"]) == (0, 2)

        # Erasure refused by a project's hold names it (an admin is told every name).
        r = c.post("/api/erase", json={"user": "lou"})
        assert r.status_code == 409 and r.json()["holds"] == {"lou-of-b": [t["lou-B"]]}

        holds = {h["name"]: h for h in c.get("/api/holds").json()["holds"]}
        assert holds["pia-of-a"]["project"] == "A" and holds["gus-everywhere"]["project"] is None
        assert holds["pia-of-a"]["filter"] == "user:pia"  # an admin sees every hold in full
        details = dict(server.sql("SELECT Target, Detail FROM audit_log WHERE Action = 'retention.hold.create'"))
        assert details["pia-of-a"].startswith("project A;")
        assert details["gus-everywhere"].startswith("project all projects;")
        released = server.sql("SELECT Detail FROM audit_log WHERE Action = 'retention.hold.release'")
        assert [r[0] for r in released] == ["project all projects"]


def test_cli_hold_create_with_a_project_and_list_shows_it(world):
    server, _ = world
    url = ["--url", server.ui_url]
    made = _cli("archiver", "hold", "create", "cli-of-b", "--filter", "user:nobody", "--reason", "r",
                "--project", "B", *url)
    assert made.returncode == 0, made.stderr
    assert "created, project: B" in made.stdout
    made = _cli("archiver", "hold", "create", "cli-all", "--filter", "user:nobody", "--reason", "r", *url)
    assert made.returncode == 0 and "created, project: all projects" in made.stdout
    listed = json.loads(_cli("archiver", "hold", "list", *url, "--json").stdout)
    projects = {h["name"]: h["project"] for h in listed["holds"]}
    assert projects["cli-of-b"] == "B" and projects["cli-all"] is None
    table = _cli("archiver", "hold", "list", *url)
    assert table.returncode == 0 and "project" in table.stdout
    row = next(line for line in table.stdout.splitlines() if "cli-of-b" in line)
    assert " B " in row
    assert _cli("archiver", "hold", "release", "cli-of-b", *url).returncode == 0
    assert _cli("archiver", "hold", "release", "cli-all", *url).returncode == 0
