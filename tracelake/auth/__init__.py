"""tracelake.auth: projects, keys, roles, sign-in and per-project reads (docs/security.md).

Modules, one job each: ``roles`` (roles and permissions), ``keys`` (key format, hashing, the
ClickHouse-backed key registry and its cache), ``schema`` (tables, migrations 30+), ``audit``
(the audit log), ``ingest`` (OTLP: HTTP middleware, gRPC interceptor, project stamping),
``scope`` (per-project reads enforced by ClickHouse), ``web`` (sign-in, session cookie, CSRF, the
UI/API guard), ``api`` (keys and audit endpoints and pages), ``bootstrap`` (the first admin key).

``install(app)`` is called by :func:`tracelake.web.create_app` for every UI/API app; it guards the
app when ``settings.auth`` is on and does nothing otherwise.
"""
from __future__ import annotations

from typing import Any


def install(app: Any) -> None:
    from tracelake.auth.web import install as install_web

    install_web(app)


__all__ = ["install"]
