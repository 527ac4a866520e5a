"""Roles and what each may do. Permissions are cumulative: every role has those of the roles below it.

``ingest`` is a separate line: an ingest key only sends spans (it cannot read), and only ``admin``
has both. Scope: every role but ``admin`` acts on the key's one project; ``admin`` keys carry the
project ``*`` and act everywhere.
"""
from __future__ import annotations

import re
from enum import Enum

ALL_PROJECTS = "*"
# Project names go into ClickHouse filters and URLs: a strict alphabet keeps them inert everywhere.
PROJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class Role(str, Enum):
    INGEST = "ingest"
    VIEWER = "viewer"
    ENGINEER = "engineer"
    OPS = "ops"
    ADMIN = "admin"


class Perm(str, Enum):
    INGEST = "ingest"        # send spans
    READ = "read"            # traces, sessions, dashboard, /api/sql, attachments of its projects
    ANNOTATE = "annotate"    # pins, saved filters
    RETENTION = "retention"  # retention rules, holds, erasure
    ALERTS = "alerts"        # alert rules, destinations, silences of its project
    KEYS = "keys"            # create / list / revoke keys of its projects (not admin keys)
    AUDIT = "audit"          # read the audit log
    PRICES = "prices"        # model prices: its project's (ops), the defaults and aliases (admin)
    ADMIN = "admin"          # everything, every project


_READ_LADDER = {
    Role.VIEWER: {Perm.READ},
    Role.ENGINEER: {Perm.READ, Perm.ANNOTATE},
    Role.OPS: {Perm.READ, Perm.ANNOTATE, Perm.RETENTION, Perm.KEYS, Perm.PRICES, Perm.ALERTS},
}

PERMISSIONS: dict[Role, frozenset[Perm]] = {
    Role.INGEST: frozenset({Perm.INGEST}),
    **{role: frozenset(perms) for role, perms in _READ_LADDER.items()},
    Role.ADMIN: frozenset(Perm),
}

# Which roles a role may hand out through keys (ops: up to its own level, in its project).
GRANTABLE: dict[Role, frozenset[Role]] = {
    Role.OPS: frozenset({Role.INGEST, Role.VIEWER, Role.ENGINEER, Role.OPS}),
    Role.ADMIN: frozenset(Role),
}


def has(role: Role, perm: Perm) -> bool:
    return perm in PERMISSIONS[role]


def valid_project(name: str) -> bool:
    return bool(PROJECT_RE.fullmatch(name))


def parse_role(text: str) -> Role:
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise ValueError(f"unknown role {text!r}: one of {', '.join(r.value for r in Role)}") from None
