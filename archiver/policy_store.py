"""Retention rules kept in the store: every applied version with its YAML, who, when and why.

Without ``--retention FILE`` the rules edited on the Retention page live here (migration 23,
``retention_policy_versions``). Versions are numbered 1, 2, ...; the current one is the highest.
Nothing is ever updated in place: a new version is a new row, so the history is the table.

Saving names the version it replaces (``expected``, 0 for "none yet"): when another apply came
first the save is refused (:class:`StaleVersion`) instead of silently overwriting it. Two processes
saving at the same instant may both pick the same number; each checks after its insert and the
later row (by ClickHouse's clock, then id) withdraws itself, so exactly one wins.
"""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tracelake.archiver.errors import Conflict
from tracelake.store.base import Store

TABLE = "retention_policy_versions"
MAX_YAML_BYTES = 64 * 1024  # a policy is a handful of rules; anything bigger is a mistake


_COLUMNS = "Version, Id, Yaml, Sha256, Actor, ActorRole, AppliedAt, Comment"
# Among rows of one version (a race between processes), the earliest insert is the real one.
_ORDER = "Version DESC, AppliedAt ASC, Id ASC"


@dataclass(frozen=True)
class PolicyVersion:
    version: int
    yaml: str
    sha256: str
    actor: str
    role: str
    applied_at: datetime
    comment: str

    def to_dict(self, with_yaml: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"version": self.version, "actor": self.actor, "role": self.role,
                               "applied_at": self.applied_at.isoformat(), "comment": self.comment,
                               "sha256": self.sha256}
        if with_yaml:
            out["yaml"] = self.yaml
        return out


class StaleVersion(Conflict):
    """The rules changed since the version the caller started from."""

    def __init__(self, expected: int, current: PolicyVersion | None) -> None:
        self.expected = expected
        self.current = current
        if current is None:
            what = "there is no stored version any more"
        else:
            what = (f"version {current.version} was applied by {current.actor} at "
                    f"{current.applied_at.strftime('%Y-%m-%d %H:%M:%S')} UTC")
        super().__init__(f"the rules changed after your preview (it was based on version {expected}; {what}): "
                         "preview again before applying",
                         detail={"reason": "stale", "current": current.to_dict(with_yaml=False) if current else None})


def _bind(store: Store, params: dict[str, Any]) -> dict[str, Any]:
    from tracelake.auth.binding import bind

    return bind(store, params)


def _row(r: dict[str, Any]) -> PolicyVersion:
    return PolicyVersion(int(r["Version"]), r["Yaml"], r["Sha256"], r["Actor"], r["ActorRole"], r["AppliedAt"],
                         r["Comment"])


def _select(store: Store, where: str = "", params: dict[str, Any] | None = None, limit: int = 1) -> list[PolicyVersion]:
    sql = f"SELECT {_COLUMNS} FROM {TABLE} {where} ORDER BY {_ORDER} LIMIT 1 BY Version LIMIT {{n:UInt32}}"
    rows = store.query_arrow(sql, _bind(store, {**(params or {}), "n": int(limit)})).to_pylist()
    return [_row(r) for r in rows]


def current(store: Store) -> PolicyVersion | None:
    """The version in force (the highest), or None when the rules were never edited here."""
    found = _select(store)
    return found[0] if found else None


def get(store: Store, version: int) -> PolicyVersion | None:
    found = _select(store, "WHERE Version = {v:UInt64}", {"v": int(version)})
    return found[0] if found else None


def history(store: Store, limit: int = 100) -> list[PolicyVersion]:
    """Applied versions, newest first."""
    return _select(store, limit=max(1, min(int(limit), 10_000)))


def save(store: Store, yaml_text: str, *, actor: str, role: str, comment: str = "", expected: int) -> PolicyVersion:
    """Store ``yaml_text`` as the next version, if the current one is still ``expected`` (0: none).

    The text is validated first (:class:`~tracelake.archiver.policy.PolicyError` names line and
    field); :class:`StaleVersion` when another version was applied meanwhile; nothing is stored then."""
    from tracelake.archiver.policy import PolicyError, parse_policy

    if len(yaml_text.encode("utf-8")) > MAX_YAML_BYTES:
        raise PolicyError(f"the rules are larger than {MAX_YAML_BYTES // 1024} KiB")
    parse_policy(yaml_text, "YAML")
    now = current(store)
    if (now.version if now else 0) != expected:
        raise StaleVersion(expected, now)
    version, row_id = expected + 1, uuid.uuid4().hex
    store.execute(
        f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES ({{v:UInt64}}, {{id:String}}, {{y:String}}, {{sha:String}}, "
        "{a:String}, {r:String}, now64(9, 'UTC'), {c:String})",
        _bind(store, {"v": version, "id": row_id, "y": yaml_text, "sha": hashlib.sha256(yaml_text.encode()).hexdigest(),
                      "a": actor[:200], "r": role[:50], "c": comment[:2000]}))
    winner = get(store, version)
    if winner is None or _id_of(store, version) != row_id:
        # Another process saved the same number first: withdraw ours, say who won.
        store.execute(f"DELETE FROM {TABLE} WHERE Id = {{id:String}}", _bind(store, {"id": row_id}))
        raise StaleVersion(expected, winner)
    return winner


def _id_of(store: Store, version: int) -> str:
    rows = store.query_arrow(f"SELECT Id FROM {TABLE} WHERE Version = {{v:UInt64}} ORDER BY AppliedAt, Id LIMIT 1",
                             {"v": int(version)}).to_pylist()
    return rows[0]["Id"] if rows else ""
