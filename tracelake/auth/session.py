"""Session cookies and CSRF tokens, signed with a server-wide secret kept in ClickHouse.

A cookie is ``<payload>.<HMAC-SHA256>``; the payload names the key id (or the proxy user), an
expiry and a random nonce. It never holds the key. Every request re-resolves the key id, so a
revoked key ends its sessions at once. The CSRF token is HMAC(secret, "csrf:" + nonce): forms
and htmx send it back (``csrf_token`` field or ``X-CSRF-Token`` header) on every change.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

import orjson

from tracelake.auth.binding import bind
from tracelake.store.base import Store

COOKIE = "tl_session"
LOGIN_COOKIE = "tl_login"  # double-submit token for the sign-in form itself


@dataclass(frozen=True)
class Session:
    subject: str  # "key:<id>" or "proxy:<user>"
    expires: int
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    def __init__(self, store: Store, ttl_s: float = 2.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._secret: bytes | None = None
        self._lock = threading.Lock()
        self._revoked: dict[str, float] = {}  # nonce -> when last checked (not revoked) / inf (revoked)

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            with self._lock:
                if self._secret is None:
                    self._secret = self._load_or_create()
        return self._secret

    def _load_or_create(self) -> bytes:
        sql = "SELECT Value FROM auth_secrets WHERE Name = 'session' ORDER BY CreatedAt, Value LIMIT 1"
        rows = self.store.query_arrow(sql).to_pylist()
        if not rows:
            self.store.execute("INSERT INTO auth_secrets (Name, Value) VALUES ('session', {v:String})",
                               bind(self.store, {"v": secrets.token_hex(32)}))
            rows = self.store.query_arrow(sql).to_pylist()
        return bytes.fromhex(rows[0]["Value"])

    def _mac(self, data: str) -> str:
        return _b64(hmac.new(self.secret, data.encode(), hashlib.sha256).digest())

    def issue(self, subject: str, ttl_s: int) -> tuple[str, Session]:
        session = Session(subject, int(time.time()) + ttl_s, secrets.token_urlsafe(16))
        payload = _b64(orjson.dumps({"s": session.subject, "e": session.expires, "n": session.nonce}))
        return f"{payload}.{self._mac(payload)}", session

    def verify(self, cookie: str | None) -> Session | None:
        if not cookie or len(cookie) > 1024 or "." not in cookie:
            return None
        payload, _, mac = cookie.partition(".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            doc = orjson.loads(_unb64(payload))
            session = Session(str(doc["s"]), int(doc["e"]), str(doc["n"]))
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            return None
        return session if session.expires > time.time() else None

    def end(self, session: Session) -> None:
        """Sign-out: the session stops working here at once, in other processes within ttl_s."""
        self.store.execute("INSERT INTO auth_revoked_sessions (Nonce, Expires) VALUES ({n:String}, "
                           "toDateTime({e:Int64}))", bind(self.store, {"n": session.nonce, "e": session.expires}))
        self._revoked[session.nonce] = float("inf")

    def ended(self, session: Session) -> bool:
        checked = self._revoked.get(session.nonce)
        now = time.monotonic()
        if checked is not None and (checked == float("inf") or now - checked < self.ttl_s):
            return checked == float("inf")
        rows = self.store.query_arrow("SELECT count() AS n FROM auth_revoked_sessions WHERE Nonce = {n:String}",
                                      bind(self.store, {"n": session.nonce})).to_pylist()
        ended = bool(rows and rows[0]["n"])
        if len(self._revoked) > 100_000:
            self._revoked.clear()
        self._revoked[session.nonce] = float("inf") if ended else now
        return ended

    def csrf_token(self, nonce: str) -> str:
        return self._mac("csrf:" + nonce)

    def csrf_ok(self, nonce: str, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf_token(nonce), presented or "")
