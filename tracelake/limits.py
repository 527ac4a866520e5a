"""Caps on requests that read the store, per caller and for everyone, answered with 429 at once
instead of queueing (docs/security.md "Resource limits").

Why: every page and ``/api/sql`` runs its queries in the worker threads (anyio's pool, 40 by
default, shared by every request of the UI/API port, ``/healthz`` and the sign-in included), and
queries on one chdb connection run one at a time. Without a cap, one caller sending many slow
queries holds every worker while they queue, and everyone waits. With one:

* ``/api/sql``: ``sql_max_concurrent_per_caller`` running per caller, ``sql_max_concurrent`` in all;
* every other request that may read the store (pages, JSON API, attachments, writes):
  ``ui_max_concurrent_per_caller`` per caller (a browser opens about six connections per site);
* all of them together: ``max_concurrent_requests``, kept below the 40 workers, so the rest of
  the pool always serves ``/healthz``, sign-in, the guard, and everyone else.

A caller is the key (or proxy user) the guard identified, else the client's address (auth off).
A request keeps its slot until its answer is sent, which is when its queries are done.
"""
from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import orjson

# Served without touching the store's queries (or before a caller is known).
CHEAP_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/favicon.ico", "/login", "/logout", "/api/whoami"})
CHEAP_PREFIXES = ("/ui/static/",)
SQL_PATH = "/api/sql"
RETRY_AFTER_S = 1  # a slot frees as soon as one of the caller's requests ends


def request_kind(path: str) -> str | None:
    """``sql``, ``read`` (anything else that may query), or None (not limited)."""
    if path in CHEAP_PATHS or path.startswith(CHEAP_PREFIXES):
        return None
    return "sql" if path == SQL_PATH else "read"


def caller_of(scope: dict, trusted_proxies: list[str]) -> str:
    caller = (scope.get("state") or {}).get("caller")
    if caller is not None:
        return f"actor:{caller.actor}"
    from tracelake.auth.throttle import client_address

    return f"address:{client_address(scope, trusted_proxies)}"


class ConcurrencyLimits:
    """Pure ASGI middleware, inside the auth guard (which puts the caller in ``scope["state"]``)."""

    def __init__(self, app: Any, settings: Any) -> None:
        self.app = app
        self.settings = settings
        self._lock = threading.Lock()
        self._per_caller: Counter[tuple[str, str]] = Counter()
        self._sql = 0
        self._total = 0

    def _acquire(self, kind: str, caller: str) -> str:
        """'' when a slot was taken, else why not."""
        s = self.settings
        with self._lock:
            if kind == "sql":
                per_caller, name = s.sql_max_concurrent_per_caller, "sql_max_concurrent_per_caller"
            else:
                per_caller, name = s.ui_max_concurrent_per_caller, "ui_max_concurrent_per_caller"
            if self._per_caller[(kind, caller)] >= per_caller:
                what = "/api/sql queries" if kind == "sql" else "requests"
                return (f"you already have {per_caller} {what} running (limit {name}): wait for one to finish, "
                        "then retry")
            if kind == "sql" and self._sql >= s.sql_max_concurrent:
                return (f"the server is running {s.sql_max_concurrent} /api/sql queries of all callers "
                        "(limit sql_max_concurrent): retry in a moment")
            if self._total >= s.max_concurrent_requests:
                return (f"the server is busy with {s.max_concurrent_requests} requests of all callers "
                        "(limit max_concurrent_requests): retry in a moment")
            self._per_caller[(kind, caller)] += 1
            self._sql += kind == "sql"
            self._total += 1
            return ""

    def _release(self, kind: str, caller: str) -> None:
        with self._lock:
            self._per_caller[(kind, caller)] -= 1
            if self._per_caller[(kind, caller)] <= 0:
                del self._per_caller[(kind, caller)]
            self._sql -= kind == "sql"
            self._total -= 1

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        kind = request_kind(scope.get("path", "")) if scope["type"] == "http" else None
        if kind is None:
            await self.app(scope, receive, send)
            return
        caller = caller_of(scope, self.settings.auth_proxy_trusted)
        why = self._acquire(kind, caller)
        if why:
            await _too_many(scope, send, why)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._release(kind, caller)


async def _too_many(scope: dict, send: Any, why: str) -> None:
    path: str = scope.get("path", "")
    headers = dict(scope.get("headers") or [])
    page = not path.startswith("/api/") and b"text/html" in headers.get(b"accept", b"")
    if page:
        import html

        body = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Busy · tracelake</title>"
                f"<link rel=\"stylesheet\" href=\"/ui/static/app.css\"></head><body><main id=\"content\">"
                f"<h1>Too many requests at once</h1><p role=\"alert\">{html.escape(why)}.</p></main></body></html>").encode()
        ctype = b"text/html; charset=utf-8"
    else:
        body, ctype = orjson.dumps({"error": {"message": why, "retry_after_s": RETRY_AFTER_S}}), b"application/json"
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
                            (b"retry-after", str(RETRY_AFTER_S).encode()), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})
