"""Sending messages: an outbox in the store, retries with backoff, and a log of every attempt.

An evaluation puts its messages in ``alert_outbox`` (one per destination) and :func:`deliver_due`
sends those whose time has come: a 2xx answer delivers; anything else (refused connection,
timeout, 5xx, 4xx) is logged in ``alert_deliveries`` and tried again after
:meth:`AlertsConfig.backoff` until ``retry_attempts``, then given up. The outbox survives a
restart, so a receiver that is down gets its messages when it is back, in order of creation.

Errors are logged by type and HTTP status only: an exception's text may carry the URL, which is
the destination's secret.
"""
from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import httpx
import orjson

from tracelake.alerts import db, destinations, messages
from tracelake.alerts.config import AlertsConfig
from tracelake.store.base import Store

log = logging.getLogger(__name__)

_UTC = "DateTime64(3, 'UTC')"
OUTBOX = {"Id": "String", "Destination": "String", "Project": "String", "Rule": "String", "GroupKey": "String",
          "Kind": "String", "Payload": "String", "CreatedAt": _UTC, "NextAt": _UTC, "Attempts": "UInt32",
          "State": "String", "Version": "UInt64"}
LOG = {"MessageId": "String", "Destination": "String", "Project": "String", "Rule": "String", "GroupKey": "String",
       "Kind": "String", "Attempt": "UInt32", "At": _UTC, "Outcome": "String", "HttpStatus": "UInt16",
       "Error": "String", "NextAt": f"Nullable({_UTC})"}
PENDING, DELIVERED, GAVE_UP = "pending", "delivered", "gave_up"


@dataclass(frozen=True)
class Message:
    id: str
    destination: str
    project: str
    rule: str
    group: str
    kind: str
    payload: dict[str, Any]
    created_at: datetime
    next_at: datetime
    attempts: int = 0
    state: str = PENDING

    def row(self) -> dict[str, Any]:
        return {"Id": self.id, "Destination": self.destination, "Project": self.project, "Rule": self.rule,
                "GroupKey": self.group, "Kind": self.kind, "Payload": orjson.dumps(self.payload, default=str).decode(),
                "CreatedAt": db.ts(self.created_at), "NextAt": db.ts(self.next_at), "Attempts": self.attempts,
                "State": self.state, "Version": db.version()}


def enqueue(store: Store, items: list[Message]) -> None:
    db.insert(store, "alert_outbox", OUTBOX, [m.row() for m in items])


def due(store: Store, now: datetime) -> list[Message]:
    found = db.rows(store, f"SELECT {', '.join(OUTBOX)} FROM (SELECT * FROM alert_outbox ORDER BY Version DESC "
                           "LIMIT 1 BY Id) WHERE State = 'pending' AND NextAt <= {now:DateTime64(3, 'UTC')} "
                           "ORDER BY CreatedAt, Id LIMIT 500", {"now": db.ts(now)})
    return [Message(r["Id"], r["Destination"], r["Project"], r["Rule"], r["GroupKey"], r["Kind"],
                    orjson.loads(r["Payload"]), db.utc(r["CreatedAt"]) or now, db.utc(r["NextAt"]) or now,
                    int(r["Attempts"]), r["State"]) for r in found]


def next_due(store: Store) -> datetime | None:
    """When the earliest pending message falls due (None: nothing pending)."""
    found = db.rows(store, "SELECT min(NextAt) AS t, count() AS n FROM (SELECT * FROM alert_outbox ORDER BY Version DESC "
                           "LIMIT 1 BY Id) WHERE State = 'pending'")
    return db.utc(found[0]["t"]) if found and found[0]["n"] else None


class Sender:
    """Sends one message to one destination; returns (HTTP status or 0, error or '')."""

    def __init__(self, config: AlertsConfig) -> None:
        self.config = config
        self.http = httpx.Client(timeout=config.send_timeout_s, follow_redirects=False,
                                 headers={"User-Agent": "tracelake-alerts/1"})

    def close(self) -> None:
        self.http.close()

    def send(self, kind: str, secret: str, payload: dict[str, Any]) -> tuple[int, str]:
        try:
            if kind == "email":
                return self._email(secret, payload)
            body = messages.slack(payload) if kind == "slack" else payload
            response = self.http.post(secret, content=orjson.dumps(body, default=str),
                                      headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:  # the text may name the URL: the type only
            return 0, type(exc).__name__
        if 200 <= response.status_code < 300:
            return response.status_code, ""
        return response.status_code, f"HTTP {response.status_code}"

    def _email(self, to: str, payload: dict[str, Any]) -> tuple[int, str]:
        smtp = self.config.smtp
        if smtp is None:
            return 0, "no SMTP server configured (smtp_host)"
        subject, text = messages.email(payload)
        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = subject, smtp.sender, to
        msg.set_content(text)
        try:
            with smtplib.SMTP(smtp.host, smtp.port, timeout=self.config.send_timeout_s) as client:
                if smtp.starttls:
                    client.starttls()
                if smtp.user:
                    client.login(smtp.user, smtp.password or "")
                client.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            code = getattr(exc, "smtp_code", 0) or 0
            return int(code) if isinstance(code, int) and code < 65536 else 0, type(exc).__name__
        return 250, ""


def deliver_due(store: Store, config: AlertsConfig, now: datetime, sender: Sender | None = None) -> list[dict[str, Any]]:
    """Send every message whose time has come; returns the attempts made (also in the log)."""
    pending = due(store, now)
    if not pending:
        return []
    own = sender is None
    sender = sender or Sender(config)
    attempts, updated = [], []
    try:
        for m in pending:
            found = destinations.secret_of(store, m.destination)
            if found is not None and found[0].project not in ("", m.project):
                found = None  # another project's destination: a rule of this one may not use it
            if found is None:
                status, error = 0, "unknown destination (deleted, never made, or of another project)"
                final = True
            else:
                status, error = sender.send(found[0].kind, found[1], m.payload)
                final = False
            n = m.attempts + 1
            if not error:
                state, next_at = DELIVERED, None
            elif final or n >= config.retry_attempts:
                state, next_at = GAVE_UP, None
            else:
                state, next_at = PENDING, now + config.backoff(n)
            updated.append(Message(**{**m.__dict__, "attempts": n, "state": state, "next_at": next_at or m.next_at}))
            attempts.append({"MessageId": m.id, "Destination": m.destination, "Project": m.project, "Rule": m.rule,
                             "GroupKey": m.group, "Kind": m.kind, "Attempt": n, "At": db.ts(now),
                             "Outcome": "delivered" if not error else ("retry" if state == PENDING else "gave_up"),
                             "HttpStatus": status, "Error": error[:300],
                             "NextAt": db.ts(next_at) if next_at else None})
            if error:
                log.warning("alert message %s to destination %s: attempt %d failed (%s)%s", m.id, m.destination, n,
                            error, "; given up" if state == GAVE_UP else "")
    finally:
        if own:
            sender.close()
    enqueue(store, updated)
    db.insert(store, "alert_deliveries", LOG, attempts)
    return attempts


def delivery_log(store: Store, *, projects: frozenset[str] | None = None, rule: str = "", message_id: str = "",
                 limit: int = 200) -> list[dict[str, Any]]:
    where, params = ["1"], {"n": max(1, min(int(limit), 5000))}
    if projects is not None:
        where.append(db.in_projects(params, projects))
    if rule:
        where.append("Rule = {rule:String}")
        params["rule"] = rule
    if message_id:
        where.append("MessageId = {mid:String}")
        params["mid"] = message_id
    found = db.rows(store, f"SELECT {', '.join(LOG)} FROM alert_deliveries WHERE {' AND '.join(where)} "
                           "ORDER BY At DESC, Attempt DESC LIMIT {n:UInt32}", params)
    return [{"message": r["MessageId"], "destination": r["Destination"], "project": r["Project"] or None,
             "rule": r["Rule"], "group": r["GroupKey"], "kind": r["Kind"], "attempt": int(r["Attempt"]),
             "at": db.utc(r["At"]), "outcome": r["Outcome"], "http_status": int(r["HttpStatus"]) or None,
             "error": r["Error"] or None, "next_at": db.utc(r["NextAt"]) if r["NextAt"] else None} for r in found]


__all__ = ["DELIVERED", "GAVE_UP", "Message", "PENDING", "Sender", "deliver_due", "delivery_log", "due", "enqueue", "next_due"]
