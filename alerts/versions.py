"""Alert rules edited on the Alerts page, kept as versions (``alert_rule_versions``), as the
retention rules are: every applied version is a row with its YAML, who, when and why; the
current one is the highest; a save names the version it replaces and is refused when another
came first (:class:`StaleVersion`).

Each project has its own file and versions, edited by its ops (``''``: the admins' file, whose rules
may read any project or all of them); the rules in force are all the current files together."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tracelake.alerts import db
from tracelake.alerts.errors import Conflict
from tracelake.alerts.rulefile import parse_rules
from tracelake.store.base import Store

SOURCE = "YAML"  # how errors name the edited text: "YAML line 4, rules[1] (slow).window: ..."
_COLUMNS = "Version, Id, Yaml, Sha256, Actor, ActorRole, AppliedAt, Comment"


@dataclass(frozen=True)
class RulesVersion:
    project: str
    version: int
    yaml: str
    sha256: str
    actor: str
    role: str
    applied_at: datetime | None
    comment: str

    def to_dict(self, with_yaml: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"project": self.project or None, "version": self.version, "actor": self.actor, "role": self.role,
                               "applied_at": self.applied_at.isoformat() if self.applied_at else None,
                               "comment": self.comment, "sha256": self.sha256}
        if with_yaml:
            out["yaml"] = self.yaml
        return out


class StaleVersion(Conflict):
    def __init__(self, expected: int, current: RulesVersion | None) -> None:
        what = "there is none" if current is None else f"version {current.version} was applied by {current.actor}"
        super().__init__(f"the rules changed after your preview (it was based on version {expected}; {what}): "
                         "preview again before applying", {"reason": "stale",
                                                           "current": current.version if current else 0})


def _select(store: Store, project: str, where: str = "", params: dict[str, Any] | None = None,
            limit: int = 1) -> list[RulesVersion]:
    found = db.rows(store, f"SELECT Project, {_COLUMNS} FROM alert_rule_versions WHERE Project = {{project:String}} "
                           f"{where} ORDER BY Version DESC, AppliedAt, Id LIMIT 1 BY Version LIMIT {{n:UInt32}}",
                    {**(params or {}), "project": project, "n": int(limit)})
    return [RulesVersion(r["Project"], int(r["Version"]), r["Yaml"], r["Sha256"], r["Actor"], r["ActorRole"], db.utc(r["AppliedAt"]),
                         r["Comment"]) for r in found]


def current(store: Store, project: str = "") -> RulesVersion | None:
    found = _select(store, project)
    return found[0] if found else None


def all_current(store: Store) -> list[RulesVersion]:
    """The current version of every project's file (the rules in force, together)."""
    found = db.rows(store, f"SELECT Project, {_COLUMNS} FROM alert_rule_versions "
                           "ORDER BY Project, Version DESC, AppliedAt, Id LIMIT 1 BY Project")
    return [RulesVersion(r["Project"], int(r["Version"]), r["Yaml"], r["Sha256"], r["Actor"], r["ActorRole"],
                         db.utc(r["AppliedAt"]), r["Comment"]) for r in found]


def get(store: Store, version: int, project: str = "") -> RulesVersion | None:
    found = _select(store, project, "AND Version = {v:UInt64}", {"v": int(version)})
    return found[0] if found else None


def history(store: Store, project: str = "", limit: int = 100) -> list[RulesVersion]:
    return _select(store, project, limit=max(1, min(int(limit), 10_000)))


def save(store: Store, yaml_text: str, *, project: str = "", actor: str, role: str, comment: str = "",
         expected: int) -> RulesVersion:
    """Store ``yaml_text`` as the project's next version if its current one is still ``expected`` (0: none)."""
    parse_rules(yaml_text, SOURCE, project)  # RuleFileError names line and field
    now = current(store, project)
    if (now.version if now else 0) != expected:
        raise StaleVersion(expected, now)
    version, row_id = expected + 1, db.new_id()
    store.execute("INSERT INTO alert_rule_versions (Project, Version, Id, Yaml, Sha256, Actor, ActorRole, AppliedAt, "
                  "Comment) VALUES ({p:String}, {v:UInt64}, {id:String}, {y:String}, {sha:String}, {a:String}, "
                  "{r:String}, now64(9, 'UTC'), {c:String})",
                  db.bind(store, {"p": project, "v": version, "id": row_id, "y": yaml_text,
                                  "sha": hashlib.sha256(yaml_text.encode()).hexdigest(), "a": actor[:200],
                                  "r": role[:50], "c": comment[:2000]}))
    first = db.rows(store, "SELECT Id FROM alert_rule_versions WHERE Project = {p:String} AND Version = {v:UInt64} "
                           "ORDER BY AppliedAt, Id LIMIT 1", {"p": project, "v": version})
    if not first or first[0]["Id"] != row_id:  # another process saved the same number first
        store.execute("DELETE FROM alert_rule_versions WHERE Id = {id:String}", db.bind(store, {"id": row_id}))
        raise StaleVersion(expected, get(store, version, project))
    found = get(store, version, project)
    assert found is not None
    return found


__all__ = ["RulesVersion", "SOURCE", "StaleVersion", "all_current", "current", "get", "history", "save"]
