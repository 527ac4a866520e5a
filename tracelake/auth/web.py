"""The UI/API guard: who is calling (key, session cookie, or trusted proxy header), may they,
and the store they see (filtered to their projects by ClickHouse, see :mod:`tracelake.auth.scope`).

Installed as the outermost ASGI middleware of the UI/API app, so every route — including those
other parts add later — is behind it:

* what a request needs is what its route declares (``dependencies=[needs(Perm.X)]`` beside the
  route, :mod:`tracelake.auth.routes`): public routes (``/healthz``, ``/readyz``, the static files)
  need no caller, everything else a signed-in one, and most a permission; a request no route
  matches needs ``read`` (safe methods) or admin (changes): fail closed. ``/login`` and
  ``/logout`` are the guard's own;
* changes made with a session cookie need the CSRF token and a same-origin ``Origin``;
* ``request.app.state.store`` is, for that request, a :class:`~tracelake.auth.scope.ScopedStore`
  of the caller's projects: pages, the JSON API and ``/api/sql`` read through it without knowing;
* ``/api/attachments/<sha>`` is served only when the blob was lifted from a span of the caller's
  projects (its attachments index row); otherwise the same 404 as an unknown blob.
"""
from __future__ import annotations

import html
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import orjson

from tracelake.auth import audit
from tracelake.auth.ingest import bearer, headers_too_large, refuse_headers
from tracelake.auth.keys import KeyRecord, KeyRegistry, key_id
from tracelake.auth.roles import ALL_PROJECTS, Perm, Role, has, parse_role, valid_project
from tracelake.auth.routes import SIGNED_IN, TableRow, required, route_table
from tracelake.auth.scope import ScopedStore, scoped
from tracelake.auth.session import COOKIE, LOGIN_COOKIE, Signer
from tracelake.auth.throttle import FailureThrottle, client_address, throttle_for, write_rows

log = logging.getLogger(__name__)

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
MAX_FORM_BYTES = 64 * 1024
NO_ROUTE_PUBLIC = frozenset({"/favicon.ico"})  # no route; browsers ask for it before anyone signs in

@dataclass(frozen=True)
class Caller:
    actor: str  # key id or proxy:<user>; never a key
    role: Role
    project: str  # a project, or * for admin
    via: str  # bearer | session | proxy
    nonce: str = ""  # the session's (CSRF)

    @property
    def projects(self) -> frozenset[str] | None:
        return None if self.project == ALL_PROJECTS else frozenset({self.project})

    def as_json(self) -> dict[str, Any]:
        return {"actor": self.actor, "role": self.role.value, "project": self.project, "via": self.via}


class _StateView:
    """``app.state`` with the caller's store in place of the process's."""

    def __init__(self, base: Any, store: ScopedStore, caller: Caller) -> None:
        self._base = base
        self.store = store
        self.caller = caller

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)


class _AppView:
    def __init__(self, app: Any, state: _StateView) -> None:
        self._app = app
        self.state = state

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)


def _headers(scope: dict) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope.get("headers") or []}


def _cookies(headers: dict[bytes, bytes]) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name not in out:
            out[name] = value
    return out


def remote_of(scope: dict) -> str:
    client = scope.get("client")
    return f"{client[0]}" if client else ""


async def _send(send: Any, status: int, body: bytes, ctype: bytes, extra: list | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
                            (b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store"),
                            (b"content-security-policy", b"default-src 'none'; style-src 'self'; form-action 'self'; "
                                                         b"frame-ancestors 'none'; base-uri 'none'"),
                            (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
                            *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Any, status: int, doc: Any, extra: list | None = None) -> None:
    await _send(send, status, orjson.dumps(doc), b"application/json", extra)


class Guard:
    def __init__(self, app: Any, registry: KeyRegistry, signer: Signer, settings: Any,
                 throttle: FailureThrottle | None = None) -> None:
        self.app = app
        self.registry = registry
        self.signer = signer
        self.settings = settings
        self.throttle = throttle or FailureThrottle.from_settings(settings)
        self._proxy_seen: set[str] = set()
        self._routes: list[TableRow] | None = None  # route_table(app), at the first request

    # -- who --------------------------------------------------------------------------------------
    def _proxy_caller(self, scope: dict, headers: dict[bytes, bytes]) -> Caller | None:
        name = self.settings.auth_proxy_header
        if not name or remote_of(scope) not in self.settings.auth_proxy_trusted:
            return None
        user = headers.get(name.lower().encode(), b"").decode("latin-1").strip()
        if not user:
            return None
        mapping = self.settings.auth_proxy_users.get(user) or self.settings.auth_proxy_users.get("*")
        if not mapping:
            return None
        role_text, _, project = mapping.partition(":")
        try:
            role = parse_role(role_text)
        except ValueError:
            return None
        project = project or ALL_PROJECTS
        if role is Role.ADMIN:
            project = ALL_PROJECTS
        elif not valid_project(project):
            return None
        if user not in self._proxy_seen:  # first request of a proxy user in this process: audited as a sign-in
            self._proxy_seen.add(user)
            audit.record(self.app_state(scope).store, actor=f"proxy:{user[:200]}", role=role.value, action="signin",
                         project=project, detail="proxy header", remote=remote_of(scope))
        # The proxy's own sign-in is as ambient as a cookie: changes need a CSRF token too,
        # one per user (nobody can compute another user's).
        return Caller(f"proxy:{user[:200]}", role, project, "proxy", nonce=f"proxy:{user[:200]}")

    def _key_caller(self, record: KeyRecord | None, via: str, nonce: str = "") -> Caller | None:
        if record is None or record.revoked:
            return None
        return Caller(record.key_id, record.role, record.project, via, nonce)

    def identify(self, scope: dict, headers: dict[bytes, bytes]) -> tuple[Caller | None, str]:
        """(caller, why not) from a bearer key, the proxy header, or the session cookie."""
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth:
            caller = self._key_caller(self.registry.resolve(bearer(auth)), "bearer")
            return caller, "" if caller else "invalid or revoked API key"
        proxied = self._proxy_caller(scope, headers)
        if proxied is not None:
            return proxied, ""
        session = self.signer.verify(_cookies(headers).get(COOKIE))
        if session is None or self.signer.ended(session):
            return None, "sign in first"
        kind, _, ident = session.subject.partition(":")
        if kind == "key":
            caller = self._key_caller(self.registry.lookup(ident), "session", session.nonce)
            return caller, "" if caller else "the key of this session was revoked"
        return None, "sign in first"

    # -- the ASGI entry -----------------------------------------------------------------------------
    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if headers_too_large(scope):
            await refuse_headers(send)
            return
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        if path == "/login":
            await self._login(scope, receive, send)
            return
        if self._routes is None:  # every extension has installed its routes by the first request
            self._routes = route_table(scope["app"])
        need = SIGNED_IN if path == "/logout" else required(self._routes, scope)
        if need.public or path in NO_ROUTE_PUBLIC:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        presented = headers.get(b"authorization", b"").decode("latin-1")
        source = client_address(scope, self.settings.auth_proxy_trusted)
        if presented and (retry := self.throttle.refused(source)) is not None:
            await self._refuse_source(scope, send, retry)  # keys from a refused source are not even looked up
            return
        caller, why = await _in_thread(self.identify, scope, headers)
        wants_html = not path.startswith("/api/") and method in SAFE_METHODS
        if caller is None and presented:
            retry = self.throttle.failed(source, key_id(bearer(presented)), "api-key")
            await self._write_throttle_rows(scope)
            if retry is not None:
                await _json(send, 429, {"error": {"message": f"too many failed attempts with this key id: retry in {retry} s"}},
                            [(b"retry-after", str(retry).encode())])
                return
        if caller is None:
            if wants_html:
                target = quote(path + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else ""), safe="/?=&")
                await _send(send, 303, b"", b"text/plain", [(b"location", f"/login?next={target}".encode())])
            else:
                await _json(send, 401, {"error": {"message": why}}, [(b"www-authenticate", b'Bearer realm="tracelake"')])
            return
        if need.perm is not None and not has(caller.role, need.perm):
            message = f"role {caller.role.value} may not do this (it needs the {need.perm.value} permission)"
            if wants_html:  # a person following a link gets a page, not JSON
                await _send(send, 403, refusal_page(caller, need.perm).encode(), b"text/html; charset=utf-8")
            else:
                await _json(send, 403, {"error": {"message": message}})
            return
        if method not in SAFE_METHODS and caller.via in ("session", "proxy"):
            receive, ok = await self._csrf(scope, headers, receive, caller)
            if not ok:
                await _json(send, 403, {"error": {"message": "missing or wrong CSRF token, or cross-site request"}})
                return
        store = scoped(self.app_state(scope).store, caller.projects)
        if path.startswith("/api/attachments/") and caller.projects is not None:
            sha = path.rsplit("/", 1)[-1]
            if not await _in_thread(attachment_readable, store, sha):
                await _send(send, 404, b"attachment not found\n", b"text/plain")
                return
        if path == "/logout" and method == "POST":
            session = self.signer.verify(_cookies(headers).get(COOKIE))
            if session is not None:
                await _in_thread(self.signer.end, session)
            await _send(send, 303, b"", b"text/plain", [(b"location", b"/login"), self._cookie_header(scope, COOKIE, "", 0)])
            return
        state = _StateView(self.app_state(scope), store, caller)
        scope = {**scope, "app": _AppView(scope["app"], state)}
        scope.setdefault("state", {})["caller"] = caller

        async def no_store(message: dict) -> None:
            # What a signed-in caller sees stays out of shared caches unless a route says otherwise.
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    message = {**message, "headers": headers + [(b"cache-control", b"no-store")]}
            await send(message)

        await self.app(scope, receive, no_store)

    async def _refuse_source(self, scope: dict, send: Any, retry: int) -> None:
        await self._write_throttle_rows(scope)
        await _json(send, 429, {"error": {"message": "too many failed keys or sign-ins from your address: "
                                                     f"retry in {retry} s"}}, [(b"retry-after", str(retry).encode())])

    async def _write_throttle_rows(self, scope: dict) -> None:
        rows = self.throttle.take_rows()
        if rows:
            await _in_thread(write_rows, self.app_state(scope).store, rows)

    @staticmethod
    def app_state(scope: dict) -> Any:
        app = scope["app"]
        return app.state._base if isinstance(app.state, _StateView) else app.state

    # -- CSRF -------------------------------------------------------------------------------------
    async def _csrf(self, scope: dict, headers: dict[bytes, bytes], receive: Any, caller: Caller) -> tuple[Any, bool]:
        if _cross_origin(headers):
            return receive, False
        token = headers.get(b"x-csrf-token", b"").decode("latin-1")
        if token:
            return receive, self.signer.csrf_ok(caller.nonce, token)
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if ctype != b"application/x-www-form-urlencoded":
            return receive, False
        body, replay = await _buffer(receive, MAX_FORM_BYTES)
        if body is None:
            return replay, False
        field = parse_qs(body.decode("latin-1")).get("csrf_token", [""])[0]
        return replay, self.signer.csrf_ok(caller.nonce, field)

    # -- sign-in ----------------------------------------------------------------------------------
    def _https(self, scope: dict) -> bool:
        """Served over TLS: by uvicorn itself, or by a trusted proxy that says so."""
        if scope.get("scheme") == "https":
            return True
        proto = _headers(scope).get(b"x-forwarded-proto", b"").decode("latin-1").strip().lower()
        return proto == "https" and remote_of(scope) in self.settings.auth_proxy_trusted

    def _cookie_header(self, scope: dict, name: str, value: str, max_age: int) -> tuple[bytes, bytes]:
        secure = "; Secure" if self._https(scope) else ""
        return (b"set-cookie", f"{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}".encode())

    async def _login(self, scope: dict, receive: Any, send: Any) -> None:
        import secrets

        headers = _headers(scope)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        target = _safe_next(query.get("next", ["/traces"])[0])
        if scope.get("method") != "POST":
            token = secrets.token_urlsafe(16)
            await _send(send, 200, login_page(target, token, "").encode(), b"text/html; charset=utf-8",
                        [self._cookie_header(scope, LOGIN_COOKIE, token, 600)])
            return
        body, _ = await _buffer(receive, MAX_FORM_BYTES)
        form = parse_qs((body or b"").decode("latin-1"))
        presented = form.get("key", [""])[0].strip()
        token = form.get("csrf_token", [""])[0]
        cookie_token = _cookies(headers).get(LOGIN_COOKIE, "")
        import hmac as _hmac

        if not token or not _hmac.compare_digest(token, cookie_token) or _cross_origin(headers):
            await _send(send, 403, login_page(target, "", "The sign-in form expired; reload the page.").encode(),
                        b"text/html; charset=utf-8")
            return
        remote = client_address(scope, self.settings.auth_proxy_trusted)
        store = self.app_state(scope).store
        record, retry = None, self.throttle.refused(remote)  # a refused address's key is not looked up
        if retry is None:
            record = await _in_thread(self.registry.resolve, presented)
        if retry is None and (record is None or not has(record.role, Perm.READ)):
            # Counted, and audited per address and window (tracelake.auth.throttle), not row by row.
            retry = self.throttle.failed(remote, key_id(presented), "signin")
        if retry is not None or record is None or not has(record.role, Perm.READ):
            await self._write_throttle_rows(scope)
            fresh = secrets.token_urlsafe(16)
            status, error, extra = 401, "That key is not valid for the UI.", []
            if retry is not None:
                status, error = 429, f"Too many failed sign-ins: try again in {retry} s."
                extra = [(b"retry-after", str(retry).encode())]
            await _send(send, status, login_page(target, fresh, error).encode(), b"text/html; charset=utf-8",
                        [self._cookie_header(scope, LOGIN_COOKIE, fresh, 600), *extra])
            return
        cookie, _session = self.signer.issue(f"key:{record.key_id}", self.settings.session_ttl_s)
        await _in_thread(audit.record, store, actor=record.key_id, role=record.role.value, action="signin",
                         project=record.project, remote=remote)
        await _send(send, 303, b"", b"text/plain", [(b"location", target.encode()),
                                                    self._cookie_header(scope, COOKIE, cookie, self.settings.session_ttl_s),
                                                    self._cookie_header(scope, LOGIN_COOKIE, "", 0)])


def _cross_origin(headers: dict[bytes, bytes]) -> bool:
    """An Origin naming another site. ``null`` (what browsers send under our no-referrer policy)
    and no Origin at all are left to the CSRF token, which a cross-site page cannot read."""
    origin = headers.get(b"origin", b"").decode("latin-1").strip()
    if not origin or origin == "null":
        return False
    return urlsplit(origin).netloc != headers.get(b"host", b"").decode("latin-1")


def _safe_next(target: str) -> str:
    """Only a local path: never another site (open redirect), never a scheme."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or any(c < " " for c in target):
        return "/traces"
    return target


async def _buffer(receive: Any, limit: int) -> tuple[bytes | None, Any]:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, receive
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


async def _in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args, **kwargs)


def attachment_readable(store: ScopedStore, sha256: str) -> bool:
    """True when the blob was lifted from a span of one of the caller's projects: the attachments
    index has a row for (blob, project), and ClickHouse's filter on that table keeps only the
    caller's projects' rows. A span that merely names ``/api/attachments/<sha>`` grants nothing
    (anyone can write that text), and a blob of other projects only answers the same 404 as an
    unknown one. Cached per project set for a minute (blobs are immutable)."""
    import re

    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        return True  # the endpoint itself answers 404 for anything else
    key = (store.projects, sha256)
    hit = _ATTACHMENT_CACHE.get(key)
    if hit is not None and time.monotonic() - hit < 60:
        return True
    from tracelake.query.params import Params, query

    p = Params()
    rows = query(store, f"SELECT count() AS n FROM attachments WHERE Sha256 = {p.s(sha256)}", p)
    allowed = bool(rows and int(rows[0]["n"]) > 0)
    if allowed:
        if len(_ATTACHMENT_CACHE) > 10_000:
            _ATTACHMENT_CACHE.clear()
        _ATTACHMENT_CACHE[key] = time.monotonic()
    return allowed


_ATTACHMENT_CACHE: dict[tuple[Any, str], float] = {}


def login_page(target: str, token: str, error: str) -> str:
    e = html.escape
    message = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>Sign in · tracelake</title>
<link rel="stylesheet" href="/ui/static/app.css"></head>
<body><main id="content" class="login">
<h1>Sign in to tracelake</h1>{message}
<form method="post" action="/login?next={e(quote(target, safe='/?=&'))}">
<input type="hidden" name="csrf_token" value="{e(token)}">
<label>API key <input type="password" name="key" autocomplete="off" required autofocus></label>
<button type="submit">Sign in</button>
</form>
<p>Ask an admin for a key: <code>tracelake keys create --project NAME --role viewer</code>.</p>
</main></body></html>"""


def refusal_page(caller: Caller, need: Perm) -> str:
    """The 403 page a role gets for a page it cannot use: what it needs, who can give it."""
    e = html.escape
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>Not for your role · tracelake</title>
<link rel="stylesheet" href="/ui/static/app.css"></head>
<body><main id="content" class="login">
<h1>This page is not for your role</h1>
<p class="error" role="alert">You are signed in as a <strong>{e(caller.role.value)}</strong> of project
<strong>{e(caller.project)}</strong>; this page needs the <strong>{e(need.value)}</strong> permission
(docs/security.md, "Roles").</p>
<p>Ask an admin for a key with that role, or <a href="/traces">go back to the traces</a>.</p>
</main></body></html>"""


def install(app: Any) -> None:
    """Guard ``app`` when auth is on (called by tracelake.web.create_app through EXTENSIONS)."""
    from tracelake.auth.bootstrap import auth_enabled, registry_for

    settings = app.state.settings
    if not auth_enabled(settings):
        return
    registry = registry_for(app.state.store, settings.key_cache_ttl_s)
    signer = Signer(app.state.store, settings.key_cache_ttl_s)
    app.state.auth_registry = registry
    app.state.auth_signer = signer
    from tracelake.auth.api import router

    app.include_router(router)
    app.add_middleware(Guard, registry=registry, signer=signer, settings=settings,
                       throttle=throttle_for(app.state.store, settings))
    app.state.auth_guarded = True


def csrf_token_for(request: Any) -> str:
    """The CSRF token of the request's session or proxy user ('' without auth, or for a bearer
    key): pages put it in their forms (the UI's templates call this; auth imports no UI)."""
    signer = getattr(request.app.state, "auth_signer", None)
    caller = (request.scope.get("state") or {}).get("caller")
    return signer.csrf_token(caller.nonce) if signer is not None and caller is not None and caller.nonce else ""
