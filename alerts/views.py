"""What the pages and the API show: the rules a caller may see with their states and a sparkline
of the value against the threshold, and one rule's history with links to its traces."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tracelake.alerts import delivery, history, query, silences
from tracelake.alerts.engine import ns
from tracelake.alerts.messages import format_value, traces_link
from tracelake.alerts.model import Rule
from tracelake.alerts.state import AlertState
from tracelake.store.base import Store

SPARK_POINTS = 36
SPARK_STEP = timedelta(minutes=10)  # at least: a long window is sampled at a sixth of it


def spark_points(end: datetime, window: timedelta) -> list[int]:
    step = max(SPARK_STEP, window / 6)
    step_ns = int(step.total_seconds()) * 10**9
    end_ns = ns(end)
    return [end_ns - (SPARK_POINTS - 1 - k) * step_ns for k in range(SPARK_POINTS)]


def sparklines(store: Store, rules: list[Rule], trace_rows: query.TraceRows, end: datetime) -> dict[str, dict[str, Any]]:
    """Per rule key: the instants and values (ungrouped: the value; grouped: the largest group's)."""
    out: dict[str, dict[str, Any]] = {}
    by_window: dict[timedelta, list[Rule]] = {}
    for r in rules:
        by_window.setdefault(r.window, []).append(r)
    for window, group in by_window.items():
        points = spark_points(end, window)
        values, errors = query.values(store, group, points, trace_rows)
        for r in group:
            series = values.get(r.key, {})
            if r.group_by:
                merged = [max((s[k] for s in series.values() if s[k] is not None), default=None) for k in range(len(points))]
            else:
                merged = series.get("", [None] * len(points))
            out[r.key] = {"t": [p // 10**9 for p in points], "v": merged, "error": errors.get(r.key)}
    return out


def svg_path(values: list[float | None], threshold: float, width: int = 160, height: int = 32) -> dict[str, Any]:
    """Coordinates of a sparkline and its threshold line (numbers only: nothing untrusted in the SVG)."""
    known = [v for v in values if v is not None]
    top = max(known + [threshold]) * 1.1 or 1.0
    n = max(len(values) - 1, 1)

    def y(v: float) -> float:
        return round(height - (v / top) * height, 1) if top else float(height)

    points = " ".join(f"{round(i * width / n, 1)},{y(v)}" for i, v in enumerate(values) if v is not None)
    return {"points": points, "threshold_y": y(threshold), "width": width, "height": height}


def state_row(rule: Rule, s: AlertState | None) -> dict[str, Any]:
    if s is None:
        return {"group": None, "state": "ok", "value": None, "value_text": "not evaluated yet", "since": None,
                "error": None, "notified": "ok"}
    return {"group": s.group if rule.group_by else None, "state": s.state, "value": s.value,
            "value_text": format_value(rule, s.value), "since": s.since.isoformat() if s.since else None,
            "evaluated_at": s.evaluated_at.isoformat() if s.evaluated_at else None, "error": s.error or None,
            "notified": s.notified}


def overview(store: Store, rules: list[Rule], projects: frozenset[str] | None, trace_rows: query.TraceRows | None,
             now: datetime) -> list[dict[str, Any]]:
    states = history.load_states(store, projects)
    active = silences.active(store, now)
    lines = sparklines(store, rules, trace_rows, now) if trace_rows is not None and rules else {}
    out = []
    for r in rules:
        mine = sorted((s for (p, n, _), s in states.items() if (p, n) == (r.project, r.name)), key=lambda s: s.group)
        rows = [state_row(r, s) for s in mine if not r.group_by or s.active or s.state == "pending"] or (
            [state_row(r, mine[0] if mine and not r.group_by else None)])
        firing = [x for x in rows if x["state"] in ("firing", "resolving")]
        line = lines.get(r.key)
        out.append({"rule": r.describe(), "key": r.key, "states": rows,
                    "state": "firing" if firing else ("pending" if any(x["state"] == "pending" for x in rows) else "ok"),
                    "firing_groups": len(firing), "error": next((x["error"] for x in rows if x["error"]), None),
                    "silenced": silences.silenced(active, r.name, "", r.project),
                    "spark": line, "svg": svg_path(line["v"], r.threshold) if line else None})
    return out


def rule_detail(store: Store, rule: Rule, trace_rows: query.TraceRows | None, base_url: str, now: datetime) -> dict[str, Any]:
    states = history.load_states(store, frozenset({rule.project}))
    mine = sorted((s for (p, n, _), s in states.items() if (p, n) == (rule.project, rule.name)), key=lambda s: s.group)
    events = history.events(store, rule=rule.name, project=rule.project, limit=200)
    for e in events:
        e["value_text"] = format_value(rule, e["value"])
        e["traces"] = traces_link(base_url, rule, e["group"], e["window_start"], e["window_end"])
    line = sparklines(store, [rule], trace_rows, now).get(rule.key) if trace_rows is not None else None
    log = delivery.delivery_log(store, projects=frozenset({rule.project}), rule=rule.name, limit=100)
    return {"rule": rule.describe(), "key": rule.key, "states": [state_row(rule, s) for s in mine], "events": events,
            "deliveries": log, "spark": line, "svg": svg_path(line["v"], rule.threshold) if line else None,
            "traces_now": traces_link(base_url, rule, "", now - rule.window, now),
            "silences": [s.to_dict(now) for s in silences.all_silences(store, frozenset({rule.project}))
                         if s.rule in (rule.name, "*")]}


__all__ = ["overview", "rule_detail", "sparklines", "svg_path"]
