"""The side-by-side comparison of two plans (tracelake.archiver.rules.compare), on plans built by
hand: every status a rule can have, the counts per action and their differences."""
from __future__ import annotations

from datetime import datetime, timezone

from tracelake.archiver.plan import Plan, PlanRow
from tracelake.archiver.policy import PolicyError, parse_policy
from tracelake.archiver.rules import EditError, compare

TODAY = parse_policy("""\
rules:
  - name: errors
    match: 'status:error'
    hot: 30d
    archive: forever
  - name: slow
    match: 'duration>10s'
    hot: 7d
    archive: 30d
  - name: gone
    match: 'service:old'
    hot: 1d
    archive: 1d
  - name: default
    hot: 7d
    archive: 90d
""")
EDITED = parse_policy("""\
rules:
  - name: slow
    match: 'duration>10s'
    hot: 7d
    archive: 30d
  - name: errors
    match: 'status:error'
    hot: 14d
    archive: forever
  - name: new
    match: 'model:gpt-4*'
    hot: 2d
    archive: 10d
  - name: default
    hot: 7d
    archive: 90d
""")
NOW = datetime(2026, 11, 30, tzinfo=timezone.utc)


def test_statuses_counts_and_differences():
    today = Plan(NOW, [PlanRow("errors", "2026-10-01", "archive", 2, 10, 1000),
                       PlanRow("default", "2026-11-01", "archive", 5, 20, 2000),
                       PlanRow("default", "2026-08-01", "delete", 1, 4, 400),
                       PlanRow("ancient", "2025-01-01", "delete", 3, 9, 900)])
    edited = Plan(NOW, [PlanRow("errors", "2026-10-01", "archive", 2, 10, 1000),
                        PlanRow("errors", "2026-11-10", "archive", 1, 5, 500),
                        PlanRow("new", "2026-11-20", "archive", 4, 8, 800),
                        PlanRow("default", "2026-11-01", "archive", 5, 20, 2000),
                        PlanRow("ancient", "2025-01-01", "delete", 3, 9, 900)])
    rows = {r["rule"]: r for r in compare(TODAY, today, EDITED, edited)}
    assert [r for r in rows] == ["slow", "errors", "new", "default", "gone", "ancient"]  # edited order, then the rest
    assert rows["slow"]["status"] == "changed" and rows["slow"]["changed"] == ["position"]
    assert rows["errors"]["status"] == "changed" and rows["errors"]["changed"] == ["hot", "position"]
    assert rows["errors"]["diff"]["archive"] == {"traces": 1, "spans": 5, "bytes": 500} and rows["errors"]["differs"]
    assert rows["new"]["status"] == "added" and rows["new"]["today_rule"] is None
    assert rows["new"]["edited"]["archive"]["traces"] == 4
    assert rows["gone"]["status"] == "removed" and rows["gone"]["edited_rule"] is None and not rows["gone"]["differs"]
    assert rows["default"]["status"] == "same"
    assert rows["default"]["diff"]["delete"] == {"traces": -1, "spans": -4, "bytes": -400}
    assert rows["ancient"]["status"] == "earlier" and not rows["ancient"]["differs"]


def test_no_rules_today():
    rows = compare(None, None, EDITED, Plan(NOW, [PlanRow("new", "2026-11-20", "archive", 4, 8, 800)]))
    assert {r["status"] for r in rows} == {"added"}
    assert next(r for r in rows if r["rule"] == "new")["diff"]["archive"]["traces"] == 4


def test_edit_errors_give_line_and_field():
    try:
        parse_policy("rules:\n  - name: x\n    hot: 1d\n    archive: 1y\n", "YAML")
    except PolicyError as exc:
        err = EditError.of(exc)
    assert (err.line, err.field) == (4, "rules[0] (x).archive") and err.detail.startswith("bad duration '1y'")
    whole = EditError.of(PolicyError("YAML: the file is empty; it needs a 'rules:' list"))
    assert whole.line is None and whole.detail == whole.message


def test_other_actions_a_plan_carries_are_compared_too():
    """A plan may carry more actions than archive and delete (e.g. traces kept by a pin): shown, not lost."""
    today = Plan(NOW, [PlanRow("default", "2026-11-01", "archive", 5, 20, 2000)])
    edited = Plan(NOW, [PlanRow("default", "2026-11-01", "archive", 3, 12, 1200),
                        PlanRow("default", "2026-11-01", "kept", 2, 8, 800)])
    row = next(r for r in compare(TODAY, today, EDITED, edited) if r["rule"] == "default")
    assert row["today"]["kept"] == {"traces": 0, "spans": 0, "bytes": 0}
    assert row["diff"]["kept"]["traces"] == 2 and row["diff"]["archive"]["traces"] == -2
