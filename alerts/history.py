"""Where states and their changes are kept: ``alert_states`` (the latest row per rule and group is
the state; read at start so a restart neither fires again nor forgets a firing alert) and
``alert_events`` (every firing and resolution, for the history page)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from tracelake.alerts import db
from tracelake.alerts.model import Rule
from tracelake.alerts.state import AlertState
from tracelake.store.base import Store

_UTC = "DateTime64(3, 'UTC')"
STATE_COLUMNS = {"Rule": "String", "GroupKey": "String", "Project": "String", "State": "String", "Since": _UTC,
                 "Streak": "UInt32", "Value": "Nullable(Float64)", "Notified": "String", "NotifiedAt": _UTC,
                 "EvaluatedAt": _UTC, "Error": "String", "Version": "UInt64"}
EVENT_COLUMNS = {"Id": "String", "At": _UTC, "Rule": "String", "GroupKey": "String", "Project": "String",
                 "FromState": "String", "ToState": "String", "Value": "Nullable(Float64)", "Threshold": "Float64",
                 "WindowStart": _UTC, "WindowEnd": _UTC, "Filter": "String", "Silenced": "Bool"}


def load_states(store: Store, projects: frozenset[str] | None = None) -> dict[tuple[str, str, str], AlertState]:
    """The latest state of every rule and group: (project, rule, group) -> state."""
    params: dict[str, Any] = {}
    where = f"WHERE {db.in_projects(params, projects)}" if projects is not None else ""
    found = db.rows(store, f"SELECT {', '.join(STATE_COLUMNS)} FROM alert_states {where} "
                           "ORDER BY Version DESC LIMIT 1 BY Project, Rule, GroupKey", params)
    out = {}
    for r in found:
        s = AlertState(r["Rule"], r["GroupKey"], r["Project"], r["State"], db.utc(r["Since"]) or datetime.min,
                       int(r["Streak"]), r["Value"], r["Notified"], db.utc(r["NotifiedAt"]), db.utc(r["EvaluatedAt"]),
                       r["Error"])
        out[(s.project, s.rule, s.group)] = s
    return out


def save_states(store: Store, states: Iterable[AlertState]) -> None:
    db.insert(store, "alert_states", STATE_COLUMNS, [
        {"Rule": s.rule, "GroupKey": s.group, "Project": s.project, "State": s.state, "Since": db.ts(s.since),
         "Streak": s.streak, "Value": s.value, "Notified": s.notified, "NotifiedAt": db.ts(s.notified_at),
         "EvaluatedAt": db.ts(s.evaluated_at), "Error": s.error[:1000], "Version": db.version()} for s in states])


@dataclass(frozen=True)
class Event:
    rule: Rule
    group: str
    at: datetime
    from_state: str
    to_state: str
    value: float | None
    silenced: bool

    @property
    def window(self) -> tuple[datetime, datetime]:
        return self.at - self.rule.window, self.at


def record_events(store: Store, events: list[Event]) -> None:
    db.insert(store, "alert_events", EVENT_COLUMNS, [
        {"Id": db.new_id(), "At": db.ts(e.at), "Rule": e.rule.name, "GroupKey": e.group, "Project": e.rule.project,
         "FromState": e.from_state, "ToState": e.to_state, "Value": e.value, "Threshold": e.rule.threshold,
         "WindowStart": db.ts(e.window[0]), "WindowEnd": db.ts(e.window[1]), "Filter": e.rule.filter,
         "Silenced": e.silenced} for e in events])


def events(store: Store, *, rule: str = "", project: str | None = None, projects: frozenset[str] | None = None, limit: int = 200,
           since: datetime | None = None) -> list[dict[str, Any]]:
    """Changes of state, newest first; ``projects`` None: every project's (admin)."""
    where, params = ["1"], {"n": max(1, min(int(limit), 5000))}
    if rule:
        where.append("Rule = {rule:String}")
        params["rule"] = rule
    if project is not None:
        where.append("Project = {project:String}")
        params["project"] = project
    if projects is not None:
        where.append(db.in_projects(params, projects))
    if since is not None:
        where.append("At >= {since:DateTime64(3, 'UTC')}")
        params["since"] = db.ts(since)
    found = db.rows(store, "SELECT Id, At, Rule, GroupKey, Project, FromState, ToState, Value, Threshold, WindowStart, "
                           f"WindowEnd, Filter, Silenced FROM alert_events WHERE {' AND '.join(where)} "
                           "ORDER BY At DESC, Id LIMIT {n:UInt32}", params)
    return [{"id": r["Id"], "at": db.utc(r["At"]), "rule": r["Rule"], "group": r["GroupKey"], "project": r["Project"],
             "from": r["FromState"], "to": r["ToState"], "value": r["Value"], "threshold": r["Threshold"],
             "window_start": db.utc(r["WindowStart"]), "window_end": db.utc(r["WindowEnd"]), "filter": r["Filter"],
             "silenced": bool(r["Silenced"])} for r in found]


def trace_list_query(rule: Rule, group: str) -> str:
    """The trace list's filter for the traces behind an alert: the rule's filter, its project, its
    group (a service group is the root service: the list's ``service:`` also finds traces that
    merely call it), and for an error rate the failed traces."""
    from tracelake.query.filters import quote

    parts = [f"({rule.filter})"] if rule.filter else []
    if rule.project:
        parts.append(f"project:{quote(rule.project)}")
    if rule.group_by and group:
        parts.append(f"{rule.group_by}:{quote(group)}")
    if rule.aggregate.kind == "error_rate":
        parts.append("status:error")
    return " ".join(parts)


__all__ = ["Event", "events", "load_states", "record_events", "save_states", "trace_list_query"]
