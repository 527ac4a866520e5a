"""Every route of the UI/API app declares what it needs beside its definition (issue 22): a route
added or renamed without ``dependencies=[needs(...)]`` fails here instead of falling silently to
plain read access."""
from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI

from tracelake.auth.roles import Perm
from tracelake.auth.routes import PUBLIC, needs, required, route_table


def _undeclared(app: FastAPI) -> list[str]:
    return sorted(f"{sorted(row.methods or [])} {row.path}" for row in route_table(app) if row.requirement is None)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from server_process import fresh_store

    from tracelake.config import Settings
    from tracelake.store import open_store
    from tracelake.web import create_app

    data_dir = tmp_path_factory.mktemp("routes") / "data"
    store = open_store(data_dir=fresh_store(data_dir))
    try:
        # Auth on, so its own routes (keys, audit, whoami) are there too; every extension installed.
        yield create_app(store, Settings(data_dir=data_dir, auth=True))
    finally:
        store.close()


def _scope(method: str, path: str) -> dict:
    return {"type": "http", "method": method, "path": path, "root_path": "", "query_string": b"", "headers": []}


def test_every_route_declares_what_it_needs(app):
    table = route_table(app)
    assert len(table) > 60  # the UI, the archiver, auth, attachments and the ops routes are all there
    assert _undeclared(app) == []


def test_the_check_fails_on_a_route_without_a_declaration():
    bare = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    router = APIRouter()

    @router.get("/declared", dependencies=[needs(Perm.READ)])
    def declared() -> dict:
        return {}

    @router.post("/forgotten")
    def forgotten() -> dict:
        return {}

    bare.include_router(router)
    assert _undeclared(bare) == ["['POST'] /forgotten"]


@pytest.mark.parametrize("method,path,perm", [
    ("GET", "/healthz", None), ("GET", "/ui/static/app.css", None),  # public
    ("GET", "/api/whoami", None),  # any signed-in caller
    ("GET", "/traces/0af7651916cd43dd8448eb211c80319c", Perm.READ),
    ("POST", "/api/traces/0af7651916cd43dd8448eb211c80319c/pin", Perm.ANNOTATE),
    ("POST", "/traces/0af7651916cd43dd8448eb211c80319c/restore", Perm.RETENTION),
    ("GET", "/retention/keep", Perm.RETENTION), ("GET", "/api/erasure", Perm.RETENTION),
    ("POST", "/api/retention/apply", Perm.ADMIN), ("POST", "/api/archiver/run", Perm.ADMIN),
    ("DELETE", "/api/keys/abc", Perm.KEYS), ("GET", "/api/audit", Perm.AUDIT),
    ("POST", "/api/retention", Perm.RETENTION),  # a method the route does not answer: still its declaration
    ("GET", "/no/such/page", Perm.READ), ("POST", "/api/no-such-change", Perm.ADMIN),  # no route: fail closed
])
def test_what_a_request_needs_comes_from_its_route(app, method, path, perm):
    need = required(route_table(app), _scope(method, path))
    assert need.perm is perm
    assert need.public is (path in ("/healthz", "/ui/static/app.css"))


def test_public_is_declared_not_listed(app):
    """Health checks are public because their routes say so (no path table in the guard)."""
    healthz = next(row for row in route_table(app) if row.path == "/healthz")
    assert healthz.requirement is PUBLIC and required([healthz], _scope("GET", "/healthz")) is PUBLIC
    import tracelake.auth.web as guard

    assert not any(hasattr(guard, name) for name in ("CHANGE_RULES", "READ_RULES", "PIN_PATH", "RESTORE_PATH"))
