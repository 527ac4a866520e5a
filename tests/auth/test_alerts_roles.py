"""Alerts under auth: ops write rules, destinations and silences of their project; readers of a
project see its states; a destination's secret is write-only (never in answers, /api/sql, the
audit log or the server's log); every change is audited."""
from __future__ import annotations

import uuid

RULES = """rules:
  - name: roles-errors
    aggregate: error_rate
    window: 5m
    threshold: 5%
    destinations: [roles-hook]
"""


def test_ops_write_readers_see_and_other_projects_do_not(stack):
    ops_a, viewer_a, viewer_b, ops_b = (stack.client(k) for k in ("A:ops", "A:viewer", "B:viewer", "B:ops"))
    assert viewer_a.post("/api/alerts/apply", json={"yaml": RULES, "base_version": 0}).status_code == 403
    assert stack.client("A:engineer").post("/api/alerts/preview", json={"yaml": RULES}).status_code == 403
    shown = ops_a.post("/api/alerts/preview", json={"yaml": RULES, "days": 1})
    assert shown.status_code == 200, shown.text
    base = shown.json()["base_version"]
    done = ops_a.post("/api/alerts/apply", json={"yaml": RULES, "base_version": base, "comment": "roles test"})
    assert done.status_code == 200, done.text
    assert done.json()["version"]["project"] == "A"
    # Another apply from the same base is stale.
    assert ops_a.post("/api/alerts/apply", json={"yaml": RULES, "base_version": base}).status_code == 409
    # B's ops may not write A's file.
    assert ops_b.post("/api/alerts/apply?project=A", json={"yaml": RULES, "base_version": 1}).status_code == 403
    seen_a = viewer_a.get("/api/alerts/rules")
    assert seen_a.status_code == 200
    assert [(r["rule"]["name"], r["rule"]["project"]) for r in seen_a.json()["rules"]] == [("roles-errors", "A")]
    assert all(r["rule"]["project"] != "A" for r in viewer_b.get("/api/alerts/rules").json()["rules"])
    assert viewer_b.get("/api/alerts/rules/roles-errors").status_code == 404
    assert viewer_a.get("/api/alerts/rules/roles-errors").status_code == 200
    assert viewer_a.get("/alerts").status_code == 200 and "roles-errors" in viewer_a.get("/alerts").text
    assert "roles-errors" not in viewer_b.get("/alerts").text
    # Silences: ops of the project, with a reason.
    assert viewer_a.post("/api/alerts/silences", json={"rule": "roles-errors", "for": "1h", "reason": "x"}).status_code == 403
    assert ops_a.post("/api/alerts/silences", json={"rule": "roles-errors", "for": "1h"}).status_code == 400
    made = ops_a.post("/api/alerts/silences", json={"rule": "roles-errors", "for": "1h", "reason": "maintenance"})
    assert made.status_code == 201, made.text
    assert [s["reason"] for s in viewer_a.get("/api/alerts/silences").json()["silences"]] == ["maintenance"]
    assert viewer_b.get("/api/alerts/silences").json()["silences"] == []
    actions = [row for row in stack.admin.get("/api/audit?limit=500").json()["entries"]
               if row["action"].startswith("alerts.")]
    assert {"alerts.apply", "alerts.silence"} <= {r["action"] for r in actions}


def test_a_destination_secret_is_write_only(stack):
    ops_a, viewer_a = stack.client("A:ops"), stack.client("A:viewer")
    secret = f"http://127.0.0.1:9/hooks/T0/B0/{uuid.uuid4().hex}"  # port 9: nothing answers (the test message fails)
    put = ops_a.http.put("/api/alerts/destinations/roles-hook", json={"kind": "slack", "secret": secret})
    assert put.status_code == 201, put.text
    assert secret not in put.text and put.json()["destination"]["fingerprint"]
    assert viewer_a.get("/api/alerts/destinations").status_code == 403
    listed = ops_a.get("/api/alerts/destinations")
    assert "roles-hook" in listed.text and secret not in listed.text
    assert secret not in ops_a.get("/alerts").text
    tried = ops_a.post("/api/alerts/destinations/roles-hook/test")
    assert tried.status_code == 200 and tried.json()["attempts"][0]["error"] == "ConnectError"
    assert secret not in tried.text
    # Not through SQL, not even for an admin; project keys are refused the table by name.
    for sql in ("SELECT * FROM alert_destinations", "SELECT Secret FROM alert_destinations WHERE Name = 'roles-hook'",
                "SELECT * FROM view(SELECT * FROM alert_destinations)"):
        answer = stack.admin.sql(sql)
        assert answer.status_code == 200 and secret not in answer.text and answer.json()["rows"] == []
        assert secret not in viewer_a.sql(sql).text
    audit = stack.admin.get("/api/audit?limit=500")
    assert "alerts.destination.create" in audit.text and "alerts.destination.test" in audit.text
    assert secret not in audit.text
    assert secret not in "".join(stack.server.output)  # the failed attempt is logged by type only
    # B cannot delete A's destination; A can.
    assert stack.client("B:ops").http.delete("/api/alerts/destinations/roles-hook").status_code == 404
    assert ops_a.http.delete("/api/alerts/destinations/roles-hook").status_code == 200
