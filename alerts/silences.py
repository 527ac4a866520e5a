"""Silences: no message for a rule (or one of its groups) until an end time, with a reason.

States and history go on while silenced (the page shows them); only messages stop. A change
that still holds when the silence ends is told then (:func:`tracelake.alerts.state.message_kind`).
A silence is lifted early by a new row of the same id (``Lifted``); nothing is deleted.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tracelake.alerts import db
from tracelake.alerts.errors import BadRequest, NotFound
from tracelake.store.base import Store

_UTC = "DateTime64(3, 'UTC')"
COLUMNS = {"Id": "String", "Rule": "String", "GroupKey": "String", "Project": "String", "StartsAt": _UTC,
           "EndsAt": _UTC, "Reason": "String", "Actor": "String", "Lifted": "Bool", "Version": "UInt64"}
MAX_SILENCE = timedelta(days=90)


@dataclass(frozen=True)
class Silence:
    id: str
    rule: str  # '*' silences every rule of the project
    group: str  # '' silences every group
    project: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    actor: str
    lifted: bool = False

    def active(self, now: datetime) -> bool:
        return not self.lifted and self.starts_at <= now < self.ends_at

    def covers(self, rule: str, group: str, project: str) -> bool:
        """A rule of the silence's project (two projects may both have a rule "errors")."""
        return self.project == project and self.rule in ("*", rule) and (not self.group or self.group == group)

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {"id": self.id, "rule": self.rule, "group": self.group or None, "project": self.project or None,
                "starts_at": self.starts_at.isoformat(), "ends_at": self.ends_at.isoformat(), "reason": self.reason,
                "actor": self.actor, "lifted": self.lifted, "active": self.active(now)}


def _write(store: Store, s: Silence) -> None:
    db.insert(store, "alert_silences", COLUMNS, [{
        "Id": s.id, "Rule": s.rule, "GroupKey": s.group, "Project": s.project, "StartsAt": db.ts(s.starts_at),
        "EndsAt": db.ts(s.ends_at), "Reason": s.reason, "Actor": s.actor, "Lifted": s.lifted, "Version": db.version()}])


def create(store: Store, *, rule: str, group: str, project: str, ends_at: datetime, reason: str, actor: str,
           now: datetime) -> Silence:
    if not reason.strip():
        raise BadRequest("a silence needs a reason (why nobody needs to hear about it)", {"field": "reason"})
    if ends_at <= now:
        raise BadRequest("the silence must end in the future", {"field": "ends_at"})
    if ends_at - now > MAX_SILENCE:
        raise BadRequest("a silence lasts at most 90 days", {"field": "ends_at"})
    s = Silence(db.new_id(), rule, group, project, now, ends_at, reason.strip()[:1000], actor[:200])
    _write(store, s)
    return s


def all_silences(store: Store, projects: frozenset[str] | None = None) -> list[Silence]:
    found = db.rows(store, f"SELECT {', '.join(COLUMNS)} FROM alert_silences ORDER BY Version DESC LIMIT 1 BY Id")
    out = [Silence(r["Id"], r["Rule"], r["GroupKey"], r["Project"], db.utc(r["StartsAt"]) or datetime.min,
                   db.utc(r["EndsAt"]) or datetime.min, r["Reason"], r["Actor"], bool(r["Lifted"])) for r in found]
    if projects is not None:
        out = [s for s in out if s.project in projects]
    return sorted(out, key=lambda s: s.ends_at, reverse=True)


def active(store: Store, now: datetime) -> list[Silence]:
    return [s for s in all_silences(store) if s.active(now)]


def lift(store: Store, silence_id: str, projects: frozenset[str] | None) -> Silence:
    found = next((s for s in all_silences(store, projects) if s.id == silence_id), None)
    if found is None:
        raise NotFound(f"no silence {silence_id[:40]!r}")
    lifted = Silence(**{**found.__dict__, "lifted": True})
    _write(store, lifted)
    return lifted


def silenced(silences: list[Silence], rule: str, group: str, project: str) -> bool:
    return any(s.covers(rule, group, project) for s in silences)


__all__ = ["Silence", "active", "all_silences", "create", "lift", "silenced"]
