"""The audit log: who (key id, never the key), what, when, from where, and the outcome.

Written for key changes, sign-ins (successful and failed), and by other features through
:func:`record` (retention rules, holds, erasure). Rows go to ClickHouse ``audit_log``; a write
that fails is logged (without secrets) and never blocks the action it describes... except that
key changes and erasures call it after they succeeded, so the log never claims what did not happen.
"""
from __future__ import annotations

import logging
from typing import Any

from tracelake.auth.binding import bind
from tracelake.store.base import Store

log = logging.getLogger(__name__)

MAX_FIELD = 2000


def _clip(value: Any) -> str:
    text = "" if value is None else str(value)
    return text[:MAX_FIELD]


def record(store: Store, *, actor: str, role: str, action: str, project: str = "", target: str = "",
           detail: str = "", remote: str = "", outcome: str = "ok") -> None:
    try:
        store.execute(
            "INSERT INTO audit_log (Time, Actor, ActorRole, Action, Project, Target, Detail, Remote, Outcome) "
            "VALUES (now64(3), {a:String}, {r:String}, {act:String}, {p:String}, {t:String}, {d:String}, "
            "{rem:String}, {o:String})",
            bind(store, {"a": _clip(actor), "r": _clip(role), "act": _clip(action), "p": _clip(project), "t": _clip(target),
             "d": _clip(detail), "rem": _clip(remote), "o": _clip(outcome)}))
    except Exception as exc:  # noqa: BLE001 - the audit trail must not take the server down
        log.error("audit log write failed for action %s: %s", action, type(exc).__name__)


def recent(store: Store, limit: int = 200, action: str = "") -> list[dict[str, Any]]:
    sql = ("SELECT toString(Time) AS time, Actor AS actor, ActorRole AS role, Action AS action, Project AS project, "
           "Target AS target, Detail AS detail, Remote AS remote, Outcome AS outcome FROM audit_log")
    params: dict[str, Any] = {"n": max(1, min(int(limit), 5000))}
    if action:
        sql += " WHERE Action = {act:String}"
        params["act"] = action
    return store.query_arrow(sql + " ORDER BY Time DESC LIMIT {n:UInt32}", bind(store, params)).to_pylist()
