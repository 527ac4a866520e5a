"""API keys: format, hashing, and the registry (ClickHouse ``api_keys``) with a small cache.

A key is ``tl_<id>_<secret>``: a 12-hex-digit public id (how a key is named in lists, logs and
the audit log) and 43 characters of ``secrets.token_urlsafe(32)`` (256 random bits). Only
SHA-256 of the whole key is stored. A fast hash is right here: the secret is random and
high-entropy, so there is nothing to brute-force that a slow password hash would protect; the
hash only has to make a stolen table useless. Comparison is ``hmac.compare_digest``.

Keys supplied from outside (``TRACELAKE_ADMIN_KEY``) may have any form of at least 24
characters; their id is derived from their hash.

Cache: each process keeps resolved keys for ``ttl_s`` (default 2 s). A revoke in this process
empties the cache at once; other processes (scaled-out collectors) notice within ``ttl_s``.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from tracelake.auth.roles import ALL_PROJECTS, Role
from tracelake.auth.binding import bind
from tracelake.store.base import Store

KEY_RE = re.compile(r"^tl_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")
MIN_EXTERNAL_KEY = 24
MAX_KEY = 512


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id(key: str) -> str | None:
    """The public id of a presented key, or None when it cannot be a key at all."""
    if not key or len(key) > MAX_KEY:
        return None
    m = KEY_RE.fullmatch(key)
    if m:
        return m.group(1)
    if len(key) >= MIN_EXTERNAL_KEY and key.isprintable() and " " not in key:
        return "x" + digest("id:" + key)[:11]
    return None


def new_key() -> tuple[str, str]:
    """(key id, full key)."""
    kid = secrets.token_hex(6)
    return kid, f"tl_{kid}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    name: str
    project: str
    role: Role
    secret_sha256: str
    created_at: str = ""
    created_by: str = ""
    revoked: bool = False

    @property
    def all_projects(self) -> bool:
        return self.project == ALL_PROJECTS

    def as_json(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "name": self.name, "project": self.project, "role": self.role.value,
                "created_at": self.created_at, "created_by": self.created_by, "revoked": self.revoked}


_SELECT = ("SELECT KeyId, argMax(Name, Version) AS Name, argMax(Project, Version) AS Project, "
           "argMax(Role, Version) AS Role, argMax(SecretSha256, Version) AS SecretSha256, "
           "toString(min(CreatedAt)) AS CreatedAt, argMax(CreatedBy, Version) AS CreatedBy, "
           "max(RevokedAt IS NOT NULL) AS Revoked FROM api_keys")


def _record(row: dict[str, Any]) -> KeyRecord:
    return KeyRecord(row["KeyId"], row["Name"], row["Project"], Role(row["Role"]), row["SecretSha256"],
                     str(row["CreatedAt"]), row["CreatedBy"], bool(row["Revoked"]))


class KeyRegistry:
    """Create, list, revoke and resolve keys; ``resolve`` is what every request calls."""

    def __init__(self, store: Store, ttl_s: float = 2.0, max_cached: int = 10_000) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.max_cached = max_cached
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}
        self._lock = threading.Lock()

    # -- lookups --------------------------------------------------------------------------------
    def _load(self, kid: str) -> KeyRecord | None:
        rows = self.store.query_arrow(f"{_SELECT} WHERE KeyId = {{kid:String}} GROUP BY KeyId",
                                      bind(self.store, {"kid": kid})).to_pylist()
        return _record(rows[0]) if rows else None

    def lookup(self, kid: str) -> KeyRecord | None:
        now = time.monotonic()
        hit = self._cache.get(kid)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        record = self._load(kid)
        with self._lock:
            if len(self._cache) >= self.max_cached:
                self._cache.clear()  # bounded: a flood of unknown ids cannot grow memory
            self._cache[kid] = (now, record)
        return record

    def resolve(self, presented: str) -> KeyRecord | None:
        """The active key matching ``presented``, or None. Timing-safe on the secret."""
        kid = key_id(presented)
        if kid is None:
            return None
        record = self.lookup(kid)
        if record is None:
            # Spend the same hashing work as a found key, so ids are not told apart by timing.
            hmac.compare_digest(digest(presented), "0" * 64)
            return None
        if not hmac.compare_digest(digest(presented), record.secret_sha256) or record.revoked:
            return None
        return record

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    def list(self, project: str | None = None) -> list[KeyRecord]:
        sql = _SELECT
        params: dict[str, Any] = {}
        if project is not None:
            sql += " WHERE KeyId IN (SELECT KeyId FROM api_keys WHERE Project = {p:String})"
            params["p"] = project
        rows = self.store.query_arrow(sql + " GROUP BY KeyId ORDER BY CreatedAt", bind(self.store, params)).to_pylist()
        return [_record(r) for r in rows]

    def any_active_admin(self) -> bool:
        return any(r.role is Role.ADMIN and not r.revoked for r in self.list())

    # -- changes --------------------------------------------------------------------------------
    def _write(self, record: KeyRecord, revoked_by: str | None, version: int) -> None:
        revoked = "now64(3)" if revoked_by is not None else "NULL"
        self.store.execute(
            "INSERT INTO api_keys (KeyId, Name, Project, Role, SecretSha256, CreatedAt, CreatedBy, RevokedAt, "
            f"RevokedBy, Version) VALUES ({{kid:String}}, {{name:String}}, {{project:String}}, {{role:String}}, "
            f"{{sha:String}}, now64(3), {{by:String}}, {revoked}, {{rby:String}}, {{v:UInt64}})",
            bind(self.store, {"kid": record.key_id, "name": record.name, "project": record.project, "role": record.role.value,
             "sha": record.secret_sha256, "by": record.created_by, "rby": revoked_by or "", "v": version}))

    def create(self, project: str, role: Role, name: str, created_by: str) -> tuple[KeyRecord, str]:
        """A new key; the full key is returned once and never stored."""
        kid, key = new_key()
        record = KeyRecord(kid, name, project, role, digest(key), created_by=created_by)
        self._write(record, None, time.time_ns())
        return record, key

    def register(self, key: str, project: str, role: Role, name: str, created_by: str) -> KeyRecord:
        """Store a key chosen elsewhere (``TRACELAKE_ADMIN_KEY``); idempotent."""
        kid = key_id(key)
        if kid is None:
            raise ValueError(f"a key must be at least {MIN_EXTERNAL_KEY} printable characters without spaces")
        existing = self._load(kid)
        if existing is not None and not existing.revoked and hmac.compare_digest(existing.secret_sha256, digest(key)):
            return existing
        record = KeyRecord(kid, name, project, role, digest(key), created_by=created_by)
        self._write(record, None, time.time_ns())
        self.invalidate()
        return record

    def revoke(self, kid: str, revoked_by: str) -> KeyRecord | None:
        record = self._load(kid)
        if record is None:
            return None
        if not record.revoked:
            self._write(record, revoked_by, time.time_ns())
        self.invalidate()
        return KeyRecord(**{**record.__dict__, "revoked": True})
