"""What rules would have done over the past days, before they are saved (as the retention plan).

The rules' values are read at every step over the span with the query evaluation uses
(:func:`tracelake.alerts.query.values`), and the same state machine runs over them from "ok": the
changes, messages and time firing it reports are what evaluation at those instants does
(tests/alerts/test_alerts_preview.py checks it). Silences are not applied: the preview says what
the rule itself would do. A span of days is replayed at most :data:`MAX_POINTS` times: at the
evaluation interval, or coarser (then said in ``step_s``).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tracelake.alerts import query
from tracelake.alerts.engine import ns
from tracelake.alerts.model import Rule, RuleSet
from tracelake.alerts.state import initial, message_kind, step, told
from tracelake.store.base import Store

MAX_POINTS = 2016  # 7 days at 5 minutes
MAX_CHANGES = 200  # changes listed per rule (all are counted)
SERIES_POINTS = 120  # values kept per rule for its chart


def instants(end: datetime, span: timedelta, every: timedelta) -> tuple[list[int], int]:
    """The instants of the replay (ns, ascending, ending at ``end``) and the step in seconds."""
    step_s = max(int(every.total_seconds()), -(-int(span.total_seconds()) // MAX_POINTS), 1)
    n = max(1, int(span.total_seconds()) // step_s)
    end_ns = ns(end)
    return [end_ns - (n - 1 - k) * step_s * 10**9 for k in range(n)], step_s


def replay(rule: Rule, groups: dict[str, list[float | None]], points: list[int]) -> dict[str, Any]:
    """The state machine over one rule's values: changes, messages, time firing."""
    from datetime import timezone

    changes: list[dict[str, Any]] = []
    counts = {"firing": 0, "resolved": 0, "reminder": 0}
    firing_s = 0.0
    fired_groups = set()
    step_s = (points[1] - points[0]) / 1e9 if len(points) > 1 else 0
    for group, series in groups.items():
        s = None
        for k, value in enumerate(series):
            at = datetime.fromtimestamp(points[k] / 1e9, tz=timezone.utc)
            s = s or initial(rule, group, at)
            s, change = step(s, rule, value, at)
            if change:
                counts[change] += 1
                if change == "firing":
                    fired_groups.add(group)
                if len(changes) < MAX_CHANGES:
                    changes.append({"at": at.isoformat(), "group": group if rule.group_by else None,
                                    "to": "firing" if change == "firing" else "ok", "value": value})
            kind = message_kind(s, rule, at, False)
            if kind == "reminder":
                counts["reminder"] += 1
            if kind:
                s = told(s, kind, at)
            if s.active:
                firing_s += step_s
    changes.sort(key=lambda c: c["at"])
    series = groups.get("", []) if not rule.group_by else []
    stride = max(1, len(series) // SERIES_POINTS)
    return {"firings": counts["firing"], "resolutions": counts["resolved"], "reminders": counts["reminder"],
            "messages": (counts["firing"] + counts["resolved"] + counts["reminder"]) * len(rule.destinations),
            "firing_seconds": round(firing_s), "groups": len(groups), "groups_fired": len(fired_groups),
            "changes": changes, "series": series[::stride]}


def preview(store: Store, rules: RuleSet, trace_rows: query.TraceRows, *, end: datetime, span: timedelta,
            every: timedelta) -> dict[str, Any]:
    points, step_s = instants(end, span, every)
    values, errors = query.values(store, list(rules.rules), points, trace_rows)
    out = []
    for rule in rules.rules:
        row: dict[str, Any] = {"rule": rule.describe(), "error": errors.get(rule.key)}
        if rule.key not in errors:
            row.update(replay(rule, values.get(rule.key, {}), points))
        out.append(row)
    return {"end": end.isoformat(), "span_s": int(span.total_seconds()), "step_s": step_s, "points": len(points),
            "rules": out}


__all__ = ["MAX_POINTS", "instants", "preview", "replay"]
