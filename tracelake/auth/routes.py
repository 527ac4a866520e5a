"""What a route needs, declared where the route is defined.

Every route of the UI/API app says who may call it, beside its path::

    @router.post("/api/holds", dependencies=[needs(Perm.RETENTION)])

``needs(PUBLIC)`` for routes anyone may call (health checks), ``needs(SIGNED_IN)`` for any
signed-in caller whatever the role. Routes FastAPI or Starlette make themselves (the OpenAPI
document, a static files mount) are declared with :func:`declare` where they are made.

The guard (:mod:`tracelake.auth.web`) finds the route a request is for and checks its
requirement before the route runs (and before the body is read or CSRF checked); the
dependency checks it again at the route, so a route reached some other way is not open. A request
no route matches needs ``read`` (safe methods) or ``admin`` (anything else): fail closed.
tests/auth/test_route_permissions.py fails when a route declares nothing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, HTTPException, Request
from starlette.routing import BaseRoute

from tracelake.auth.roles import Perm, has

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Requirement:
    """``perm`` None: any signed-in caller; ``public``: no caller needed."""

    perm: Perm | None
    public: bool = False

    async def __call__(self, request: Request) -> None:
        caller = (request.scope.get("state") or {}).get("caller")
        if caller is not None and self.perm is not None and not has(caller.role, self.perm):
            raise HTTPException(403, f"role {caller.role.value} may not do this (it needs the {self.perm.value} "
                                     "permission)")


PUBLIC = Requirement(None, public=True)
SIGNED_IN = Requirement(None)
_BY_PERM = {perm: Requirement(perm) for perm in Perm}
_ATTR = "tracelake_requirement"


def needs(what: Perm | Requirement) -> Any:
    """The dependency that declares (and checks) what a route needs: a :class:`Perm`, :data:`PUBLIC`
    or :data:`SIGNED_IN`."""
    return Depends(what if isinstance(what, Requirement) else _BY_PERM[what])


def declare(route: BaseRoute, what: Perm | Requirement) -> None:
    """Declare what a route made outside a router needs (the OpenAPI document, a mount)."""
    setattr(route, _ATTR, what if isinstance(what, Requirement) else _BY_PERM[what])


def declared(route: BaseRoute) -> Requirement | None:
    """What ``route`` declares, or None (a route that declares nothing: a test fails on it)."""
    found = getattr(route, _ATTR, None)
    if found is not None:
        return found
    for dep in getattr(route, "dependencies", None) or ():
        if isinstance(dep.dependency, Requirement):
            return dep.dependency
    return None


def allows(request: Request, perm: Perm) -> bool:
    """Whether the caller has ``perm`` (always, without auth): pages hide the buttons it would refuse."""
    caller = (request.scope.get("state") or {}).get("caller")
    return caller is None or has(caller.role, perm)


@dataclass(frozen=True)
class TableRow:
    """One route as the guard matches it: its path pattern, methods (None: any) and declaration."""

    path: str
    pattern: re.Pattern[str]
    methods: frozenset[str] | None
    requirement: Requirement | None


def route_table(app: Any) -> list[TableRow]:
    """Every route of ``app`` and what it declares, in the order the app matches them. FastAPI
    0.16x keeps included routers nested (``iter_route_contexts`` walks them, prefixes applied);
    older versions list every route in ``app.routes``."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI < 0.16x: app.routes is flat
        found = [(route, declared(route)) for route in app.routes]
    else:
        found = [(ctx, declared(ctx.original_route) or declared(ctx.route)) for ctx in iter_route_contexts(app.routes)]
    return [TableRow(route.path, route.path_regex, frozenset(route.methods) if getattr(route, "methods", None) else None,
                     requirement) for route, requirement in found]


def required(table: list[TableRow], scope: dict[str, Any]) -> Requirement:
    """What a request needs: its route's declaration (also for a method the route does not
    answer: the app says 405 then, to those who may ask); without a route, ``read`` for safe
    methods and ``admin`` for changes (fail closed; the app says 404)."""
    path, method = scope.get("path", ""), scope.get("method", "GET").upper()
    partial: Requirement | None = None
    for row in table:  # as Starlette's router matches: path pattern, then method
        if row.pattern.match(path) is None:
            continue
        if row.methods is None or method in row.methods:
            return row.requirement or _BY_PERM[Perm.READ if method in SAFE_METHODS else Perm.ADMIN]
        if partial is None:
            partial = row.requirement
    if partial is not None:
        return partial
    return _BY_PERM[Perm.READ] if method in SAFE_METHODS else _BY_PERM[Perm.ADMIN]


__all__ = ["PUBLIC", "SIGNED_IN", "Requirement", "allows", "declare", "declared", "needs", "required", "route_table", "TableRow"]
