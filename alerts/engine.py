"""One evaluation round: every rule's value now, the state changes, the messages.

:meth:`Engine.evaluate` takes the instant explicitly, so tests move time instead of sleeping,
and the preview replays the same steps over the past (:mod:`tracelake.alerts.preview`). The
schedule (:mod:`tracelake.alerts.service`) calls it with the clock.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from tracelake.alerts import db, history, query, silences
from tracelake.alerts.config import AlertsConfig
from tracelake.alerts.delivery import Message, enqueue
from tracelake.alerts.history import Event
from tracelake.alerts.messages import payload
from tracelake.alerts.model import Rule, RuleSet
from tracelake.alerts.state import OK, AlertState, initial, message_kind, step, told
from tracelake.store.base import Store

log = logging.getLogger(__name__)


def ns(t: datetime) -> int:
    return int(t.timestamp() * 1000) * 10**6  # whole milliseconds: what the tables keep


@dataclass
class Round:
    at: datetime
    changes: list[Event] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    rules: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "rules": self.rules, "changes": len(self.changes),
                "messages": len(self.messages), "errors": self.errors, "cpu_s": round(self.cpu_s, 4),
                "wall_s": round(self.wall_s, 4)}


class Engine:
    """The rules in force, their states (loaded from the store at start), and the evaluation."""

    def __init__(self, store: Store, config: AlertsConfig, trace_rows: query.TraceRows,
                 rules: RuleSet | None = None, refresh: Callable[[Store], RuleSet | None] | None = None) -> None:
        self.store = store
        self.config = config
        self.trace_rows = trace_rows
        self.rules = rules or RuleSet(())
        self.refresh = refresh  # the newest stored rules (None: keep these), read before each round
        self.states: dict[tuple[str, str, str], AlertState] = history.load_states(store)  # (project, rule, group)
        self.errors: dict[str, str] = {}
        self.last: Round | None = None
        self._lock = threading.Lock()  # one round at a time (the schedule, an "evaluate now" from the API)

    def use(self, rules: RuleSet) -> None:
        self.rules = rules

    def evaluate(self, now: datetime) -> Round:
        with self._lock:
            return self._evaluate(now)

    def _evaluate(self, now: datetime) -> Round:
        wall, cpu = time.perf_counter(), time.process_time()
        if self.refresh is not None:
            fresh = self.refresh(self.store)
            if fresh is not None:
                self.rules = fresh
        rules = list(self.rules.rules)
        out = Round(now, rules=len(rules))
        values, out.errors = query.values(self.store, rules, [ns(now)], self.trace_rows, use_cache=True)
        active = silences.active(self.store, now)
        changed: list[AlertState] = []
        for rule in rules:
            if rule.key in out.errors:
                prev = self.states.get((rule.project, rule.name, "")) or initial(rule, "", now)
                s = AlertState(**{**prev.__dict__, "error": out.errors[rule.key], "evaluated_at": now})
                self.states[(rule.project, rule.name, "")] = s
                changed.append(s)
                continue
            groups = values.get(rule.key, {})
            known = {g for (p, r, g) in self.states if (p, r) == (rule.project, rule.name)}
            for group in sorted(set(groups) | known):
                value = groups.get(group, [None])[0]
                prev = self.states.get((rule.project, rule.name, group))
                s = self._one(rule, group, value, now, active, out)
                if not rule.group_by or s.state != OK or prev is None or _moved(prev, s):
                    changed.append(s)  # a quiet group's row is written when it changes, not every round
                if rule.group_by and s.state == OK and s.notified == OK and value is None:
                    self.states.pop((rule.project, rule.name, group), None)  # a quiet group: its last row stays
                else:
                    self.states[(rule.project, rule.name, group)] = s
        names = {(r.project, r.name) for r in rules}
        for key in [k for k in self.states if k[:2] not in names]:
            del self.states[key]  # a rule removed from the file
        history.save_states(self.store, changed)
        history.record_events(self.store, out.changes)
        enqueue(self.store, out.messages)
        self.errors = out.errors
        out.cpu_s, out.wall_s = time.process_time() - cpu, time.perf_counter() - wall
        self.last = out
        for e in out.changes:
            log.info("alert %s%s: %s -> %s (value %s)%s", e.rule.name, f" [{e.group}]" if e.group else "",
                     e.from_state, e.to_state, e.value, " silenced" if e.silenced else "")
        return out

    def _one(self, rule: Rule, group: str, value: float | None, now: datetime, active: list[silences.Silence],
             out: Round) -> AlertState:
        prev = self.states.get((rule.project, rule.name, group)) or initial(rule, group, now)
        s, change = step(prev, rule, value, now)
        muted = silences.silenced(active, rule.name, group, rule.project)
        if change:
            out.changes.append(Event(rule, group, now, prev.state, "firing" if change == "firing" else "ok", value, muted))
        kind = message_kind(s, rule, now, muted)
        if kind:
            s = told(s, kind, now)
            for dest in rule.destinations:
                mid = db.new_id()
                out.messages.append(Message(mid, dest, rule.project, rule.name, group, kind,
                                            payload(kind, rule, s, now, self.config.public_url, mid), now, now))
        return s



def _moved(a: AlertState, b: AlertState) -> bool:
    return (a.state, a.streak, a.notified, a.error) != (b.state, b.streak, b.notified, b.error)


__all__ = ["Engine", "Round", "ns"]
