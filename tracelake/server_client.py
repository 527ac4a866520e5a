"""The CLI's calls to a running tracelake server: the key from ``TRACELAKE_KEY`` on every request,
and every refusal turned into one readable line that says what to do (never a Python dict).

Every command that talks to a server (``tracelake sql``, ``keys``, ``archiver plan|run|runs|explain|
pin|unpin|hold|erase|restore``) goes through :func:`call` or :func:`stream`, so none of them can
forget the key or print the server's raw answer.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

import httpx

KEY_ENV = "TRACELAKE_KEY"


class ServerError(Exception):
    """A refusal or an unreachable server, as one line for a person (the CLI prints it and exits)."""

    def __init__(self, line: str, exit_code: int = 1) -> None:
        super().__init__(line)
        self.exit_code = exit_code


def auth_headers() -> dict[str, str]:
    key = os.environ.get(KEY_ENV, "").strip()
    return {"Authorization": f"Bearer {key}"} if key else {}


def _message(response: httpx.Response) -> str:
    try:
        doc = response.json()
    except ValueError:
        return " ".join(response.text.split())[:300]
    err = doc.get("error", doc.get("detail")) if isinstance(doc, dict) else None
    if isinstance(err, dict):
        err = err.get("message")
    if isinstance(err, list):  # FastAPI's validation errors
        err = "; ".join(str(e.get("msg", e)) if isinstance(e, dict) else str(e) for e in err)
    return str(err) if err else f"HTTP {response.status_code}"


def error_line(response: httpx.Response) -> str:
    """What went wrong and what to do, in one line."""
    message = _message(response)
    if response.status_code == 401:
        if not os.environ.get(KEY_ENV, "").strip():
            return (f"this server requires a key: set {KEY_ENV} to one (an admin creates keys with "
                    "`tracelake keys create --project P --role viewer`)")
        return f"the server refused the key in {KEY_ENV} ({message}): check it is complete and not revoked"
    if response.status_code == 403:
        return f"your key may not do this: {message}"
    if response.status_code == 429:
        retry = response.headers.get("retry-after")
        return f"{message} (the server is limiting requests{f'; retry in {retry} s' if retry else ''})"
    return message


def _url(base: str, path: str) -> str:
    return f"{base.rstrip('/')}{path}"


def _unreachable(base: str, exc: Exception, hint: str) -> ServerError:
    return ServerError(f"cannot reach tracelake at {base}: {exc}{f' ({hint})' if hint else ''}", 2)


def call(method: str, base: str, path: str, *, hint: str = "", timeout: float = 120, **kw: Any) -> httpx.Response:
    """One request with the key; a refusal raises :class:`ServerError` with :func:`error_line`."""
    headers = {**auth_headers(), **kw.pop("headers", {})}
    try:
        response = httpx.request(method, _url(base, path), headers=headers, timeout=timeout, **kw)
    except httpx.HTTPError as exc:
        raise _unreachable(base, exc, hint) from exc
    if response.status_code >= 400:
        raise ServerError(error_line(response))
    return response


@contextmanager
def stream(method: str, base: str, path: str, *, hint: str = "", **kw: Any) -> Iterator[httpx.Response]:
    """A streamed request with the key (archiver runs report progress line by line)."""
    client = httpx.Client(timeout=httpx.Timeout(60, read=None), headers=auth_headers())
    try:
        with client.stream(method, _url(base, path), **kw) as response:
            if response.status_code >= 400:
                response.read()
                raise ServerError(error_line(response))
            yield response
    except httpx.HTTPError as exc:
        raise _unreachable(base, exc, hint) from exc
    finally:
        client.close()
