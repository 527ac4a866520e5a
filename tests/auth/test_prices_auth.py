"""Who may change prices (issue 24): ops change their own project's prices, only an admin the
defaults every project shares; every change is audited; a project reads its own prices and the
defaults in SQL, never another project's negotiated rates."""
from __future__ import annotations

import json


def _price_file(*prices: dict) -> bytes:
    return json.dumps({"prices": list(prices)}).encode()


def test_viewers_and_engineers_do_not_see_the_prices_page(stack):
    for role in ("viewer", "engineer"):
        client = stack.client(f"A:{role}")
        assert client.get("/prices").status_code == 403
        assert client.get("/api/prices").status_code == 403
        assert client.post("/api/prices", content=_price_file({"model": "auth-m", "input": 1, "output": 1})).status_code == 403


def test_ops_change_their_project_prices_only_and_every_change_is_audited(stack):
    ops = stack.client("A:ops")
    assert ops.get("/prices").status_code == 200
    default = ops.post("/api/prices", content=_price_file({"model": "auth-m", "input": 1, "output": 1}))
    assert default.status_code == 403 and "admin" in default.json()["error"]
    other = ops.post("/api/prices", content=_price_file({"model": "auth-m", "project": "B", "input": 1, "output": 1}))
    assert other.status_code == 403
    own = ops.post("/api/prices", content=_price_file({"model": "auth-m", "project": "A", "input": 7, "output": 1}))
    assert own.status_code == 200, own.text
    assert stack.admin.post("/api/prices", content=_price_file(
        {"model": "auth-m", "input": 2, "output": 2}, {"model": "auth-m", "project": "B", "input": 0.5, "output": 0.5})).status_code == 200
    audit = stack.admin.get("/api/audit", params={"action": "prices.import"}).json()
    rows = audit["entries"] if isinstance(audit, dict) else audit
    assert any(r["target"] == "A" and "auth-m" in r["detail"] for r in rows)
    assert any("(default)" in r["target"] for r in rows)


def test_a_project_reads_its_own_and_the_default_prices_in_sql(stack):
    stack.admin.post("/api/prices", content=_price_file({"model": "auth-sql", "project": "B", "input": 9, "output": 9},
                                                        {"model": "auth-sql", "input": 3, "output": 3}))
    seen = stack.client("A:viewer").sql("SELECT DISTINCT Project FROM model_price_history WHERE Model = 'auth-sql'").json()
    assert seen["rows"] == [[""]]
    assert stack.admin.sql("SELECT count(DISTINCT Project) FROM model_price_history WHERE Model = 'auth-sql'").json()["rows"] == [[2]]
    refused = stack.client("A:viewer").sql("SELECT * FROM model_price_ranges_dict")
    assert refused.status_code == 400
