"""The state of one rule and group, and how one evaluation moves it (no I/O here).

    ok --over--> pending --over x for--> firing --back under clear--> resolving --x for--> ok

* *over*: the value crosses the threshold; *back under clear*: it has come back past ``clear``
  (the threshold when not given). Between the two nothing changes: a value hovering around the
  threshold neither fires again nor resolves (hysteresis).
* ``for``: that many evaluations in a row before firing, and before resolving: one noisy point
  does not change the state.
* No data (no trace, fewer than ``min_traces``) is not over: a firing alert resolves when its
  traffic stops, and a group that disappears resolves.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from tracelake.alerts.model import Rule

OK, PENDING, FIRING, RESOLVING = "ok", "pending", "firing", "resolving"
STATES = (OK, PENDING, FIRING, RESOLVING)


@dataclass(frozen=True)
class AlertState:
    rule: str
    group: str
    project: str
    state: str
    since: datetime
    streak: int = 0  # evaluations in a row toward the next change
    value: float | None = None
    notified: str = OK  # what destinations were last told: ok (nothing, or resolved) or firing
    notified_at: datetime | None = None
    evaluated_at: datetime | None = None
    error: str = ""

    @property
    def active(self) -> bool:
        """Firing as far as people are concerned (resolving is still firing until it resolves)."""
        return self.state in (FIRING, RESOLVING)


def initial(rule: Rule, group: str, now: datetime) -> AlertState:
    return AlertState(rule.name, group, rule.project, OK, now)


def step(s: AlertState, rule: Rule, value: float | None, now: datetime) -> tuple[AlertState, str]:
    """The state after one evaluation, and the change: 'firing', 'resolved' or ''."""
    s = replace(s, value=value, evaluated_at=now, error="")
    if not s.active:
        if not rule.breaching(value):
            return (replace(s, state=OK, streak=0, since=now if s.state != OK else s.since), "")
        streak = s.streak + 1
        if streak >= rule.for_count:
            return replace(s, state=FIRING, streak=0, since=now), "firing"
        return replace(s, state=PENDING, streak=streak, since=now if s.state != PENDING else s.since), ""
    if rule.still_bad(value):
        return replace(s, state=FIRING, streak=0), ""
    streak = s.streak + 1
    if streak >= rule.for_count:
        return replace(s, state=OK, streak=0, since=now), "resolved"
    return replace(s, state=RESOLVING, streak=streak), ""


def message_kind(s: AlertState, rule: Rule, now: datetime, silenced: bool) -> str:
    """What to tell destinations now: 'firing', 'resolved', 'reminder' or '' (nothing).

    One message per change of what people were told: a change while silenced is told when the
    silence ends, if it still holds (a fire-and-resolve inside a silence is never told)."""
    if silenced:
        return ""
    wanted = FIRING if s.active else OK
    if wanted != s.notified:
        return "firing" if wanted == FIRING else "resolved"
    if (wanted == FIRING and rule.reminder is not None and s.notified_at is not None
            and now - s.notified_at >= rule.reminder):
        return "reminder"
    return ""


def told(s: AlertState, kind: str, now: datetime) -> AlertState:
    return replace(s, notified=OK if kind == "resolved" else FIRING, notified_at=now)


__all__ = ["AlertState", "FIRING", "OK", "PENDING", "RESOLVING", "STATES", "initial", "message_kind", "step", "told"]
