"""Security headers for the UI's responses: a strict Content-Security-Policy and friends.

Everything shown comes from spans, i.e. from whoever can send OTLP: the CSP is the second wall
behind autoescaping. Scripts only from our own origin (no inline script, no eval), styles only
from our stylesheet, nothing may frame the UI. Images may also come from http(s) because prompts
reference remote images and we show them as thumbnails; ``data:`` images are limited to raster
formats by the templates (never SVG).
"""
from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https: http:; "
       "media-src 'self'; connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'; object-src 'none'")
UI_PREFIXES = ("/traces", "/sessions", "/dashboard", "/ui/", "/api/traces", "/api/sessions", "/api/dashboard",
               "/api/filter", "/retention")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


def is_ui_path(path: str) -> bool:
    return path == "/" or path.startswith(UI_PREFIXES)


class SecurityHeaders:
    """Pure ASGI middleware (no BaseHTTPMiddleware buffering) adding the headers to UI responses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_ui_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() not in {k for k, _ in HEADERS}]
                message = {**message, "headers": headers + HEADERS}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_headers(app: FastAPI) -> None:
    app.add_middleware(SecurityHeaders)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"
