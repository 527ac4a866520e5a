"""Where messages go: a generic webhook, a Slack-compatible incoming webhook, or e-mail.

The secret (the webhook URL, which is a credential for Slack and most receivers; the e-mail
addresses) is written once and never shown again: reads return the name, kind, project and a
fingerprint (the first 12 hex of its SHA-256, to tell two apart); only the sender reads the secret
(:func:`secret_of`). /api/sql filters the table to nothing for every caller; nothing here logs it.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tracelake.alerts import db
from tracelake.alerts.errors import BadRequest, NotFound
from tracelake.alerts.model import NAME_RE
from tracelake.store.base import Store

KINDS = ("webhook", "slack", "email")
_UTC = "DateTime64(3, 'UTC')"
COLUMNS = {"Name": "String", "Kind": "String", "Project": "String", "Secret": "String", "Fingerprint": "String",
           "Actor": "String", "UpdatedAt": _UTC, "Deleted": "Bool", "Version": "UInt64"}
_EMAIL = re.compile(r"^[^@\s,;<>]{1,64}@[A-Za-z0-9.\-]{1,255}$")


@dataclass(frozen=True)
class Destination:
    name: str
    kind: str
    project: str  # '' = usable by rules of every project (made by an admin)
    fingerprint: str
    actor: str
    updated_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "project": self.project or None, "fingerprint": self.fingerprint,
                "updated_by": self.actor, "updated_at": self.updated_at.isoformat() if self.updated_at else None}


def check_secret(kind: str, secret: str) -> str:
    """The secret cleaned, or BadRequest saying what is wrong (without repeating it)."""
    secret = secret.strip()
    if kind not in KINDS:
        raise BadRequest(f"unknown kind {kind[:20]!r}: one of {', '.join(KINDS)}", {"field": "kind"})
    if kind == "email":
        addresses = [a.strip() for a in secret.split(",") if a.strip()]
        if not addresses or len(addresses) > 20 or not all(_EMAIL.match(a) for a in addresses):
            raise BadRequest("expected 1-20 e-mail addresses separated by commas", {"field": "secret"})
        return ", ".join(addresses)
    if not re.match(r"^https?://[^\s/]+", secret) or len(secret) > 2000:
        raise BadRequest("expected an http:// or https:// URL (the incoming webhook's address)", {"field": "secret"})
    return secret


def put(store: Store, *, name: str, kind: str, secret: str, project: str, actor: str, now: datetime) -> Destination:
    """Create or replace a destination (a replacement needs its secret again: it is never read back)."""
    if not NAME_RE.match(name):
        raise BadRequest("destination names are 1-64 letters, digits, '_', '-' or '.'", {"field": "name"})
    secret = check_secret(kind, secret)
    existing = get(store, name)
    if existing is not None and existing.project != project:
        raise BadRequest(f"the name {name!r} is taken", {"field": "name"})
    d = Destination(name, kind, project, hashlib.sha256(secret.encode()).hexdigest()[:12], actor[:200], now)
    db.insert(store, "alert_destinations", COLUMNS, [{
        "Name": name, "Kind": kind, "Project": project, "Secret": secret, "Fingerprint": d.fingerprint,
        "Actor": d.actor, "UpdatedAt": db.ts(now), "Deleted": False, "Version": db.version()}])
    return d


def _latest(store: Store, name: str = "") -> list[dict[str, Any]]:
    where, params = ("WHERE Name = {n:String}", {"n": name}) if name else ("", {})
    return db.rows(store, "SELECT Name, Kind, Project, Fingerprint, Actor, UpdatedAt, Deleted FROM alert_destinations "
                          f"{where} ORDER BY Version DESC LIMIT 1 BY Name", params)


def _of(r: dict[str, Any]) -> Destination:
    return Destination(r["Name"], r["Kind"], r["Project"], r["Fingerprint"], r["Actor"], db.utc(r["UpdatedAt"]))


def get(store: Store, name: str) -> Destination | None:
    found = [r for r in _latest(store, name) if not r["Deleted"]]
    return _of(found[0]) if found else None


def all_destinations(store: Store, projects: frozenset[str] | None = None) -> list[Destination]:
    out = [_of(r) for r in _latest(store) if not r["Deleted"]]
    if projects is not None:
        out = [d for d in out if d.project in projects or d.project == ""]
    return sorted(out, key=lambda d: d.name)


def delete(store: Store, name: str, projects: frozenset[str] | None, actor: str, now: datetime) -> None:
    d = get(store, name)
    if d is None or (projects is not None and d.project not in projects):
        raise NotFound(f"no destination {name[:64]!r}")
    db.insert(store, "alert_destinations", COLUMNS, [{
        "Name": name, "Kind": d.kind, "Project": d.project, "Secret": "", "Fingerprint": "", "Actor": actor[:200],
        "UpdatedAt": db.ts(now), "Deleted": True, "Version": db.version()}])


def secret_of(store: Store, name: str) -> tuple[Destination, str] | None:
    """For the sender only: the destination and its secret."""
    found = db.rows(store, "SELECT Name, Kind, Project, Fingerprint, Actor, UpdatedAt, Deleted, Secret "
                           "FROM alert_destinations WHERE Name = {n:String} ORDER BY Version DESC LIMIT 1",
                    {"n": name})
    if not found or found[0]["Deleted"]:
        return None
    return _of(found[0]), found[0]["Secret"]


__all__ = ["Destination", "KINDS", "all_destinations", "check_secret", "delete", "get", "put", "secret_of"]
