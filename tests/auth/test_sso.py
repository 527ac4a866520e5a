"""SSO through a trusted proxy header: mapped users get their role and project, others nothing;
the header from an untrusted peer is ignored; changes still need the CSRF token."""
from __future__ import annotations

import json

import httpx
import pytest

from auth_stack import ADMIN_KEY, create_key, emit
from server_process import start_server

from tracelake.auth.keys import KeyRegistry
from tracelake.auth.web import Guard
from tracelake.config import Settings


@pytest.fixture(scope="module")
def sso(tmp_path_factory):
    env = {"TRACELAKE_ADMIN_KEY": ADMIN_KEY, "TRACELAKE_AUTH_PROXY_HEADER": "X-Forwarded-User",
           "TRACELAKE_AUTH_PROXY_USERS": json.dumps({"ana": "viewer:A", "olga": "ops:A", "bad": "viewer:../x"})}
    server = start_server(tmp_path_factory.mktemp("sso") / "data", "--auth", env=env)
    try:
        for project in ("A", "B"):
            assert emit(server, "http", create_key(server, project, "ingest"), [{"name": f"sso-{project}"}]) == ["SUCCESS"]
        yield server
    finally:
        server.terminate()


def _get(server, path: str, user: str | None, **kw):
    headers = {"X-Forwarded-User": user} if user else {}
    return httpx.get(server.ui_url + path, headers=headers, timeout=30, **kw)


def test_mapped_user_reads_own_project_only(sso):
    traces = _get(sso, "/api/traces", "ana", params={"range": "24h"})
    assert traces.status_code == 200 and len(traces.json()["traces"]) == 1
    rows = _get(sso, "/api/sql", "ana", params={"q": "SELECT DISTINCT SpanName FROM otel_traces"}).json()["rows"]
    assert rows == [["sso-A"]]
    # A POST (ambient credentials) needs the CSRF token, even for read-only SQL.
    assert httpx.post(sso.ui_url + "/api/sql", data={"q": "SELECT 1"}, headers={"X-Forwarded-User": "ana"},
                      timeout=30).status_code == 403
    assert _get(sso, "/api/whoami", "ana").json()["actor"] == "proxy:ana"


def test_unmapped_or_invalid_users_get_nothing(sso):
    assert _get(sso, "/api/traces", "mallory").status_code == 401
    assert _get(sso, "/api/traces", "bad").status_code == 401  # invalid project in the mapping
    assert _get(sso, "/traces", "mallory").status_code == 303


def test_proxy_users_need_the_csrf_token_for_changes(sso):
    headers = {"X-Forwarded-User": "olga"}
    assert httpx.post(sso.ui_url + "/api/keys", json={"project": "A", "role": "viewer"}, headers=headers,
                      timeout=30).status_code == 403
    token = _get(sso, "/api/whoami", "olga").json()["csrf_token"]
    assert token != _get(sso, "/api/whoami", "ana").json()["csrf_token"]
    made = httpx.post(sso.ui_url + "/api/keys", json={"project": "A", "role": "viewer"},
                      headers={**headers, "X-CSRF-Token": token}, timeout=30)
    assert made.status_code == 201
    audit = httpx.get(sso.ui_url + "/api/audit", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30).json()
    assert any(e["actor"] == "proxy:olga" and e["action"] == "signin" for e in audit["entries"])
    assert any(e["actor"] == "proxy:olga" and e["action"] == "key.create" for e in audit["entries"])


def test_header_from_an_untrusted_peer_is_ignored():
    settings = Settings(auth=True, auth_proxy_header="X-Forwarded-User", auth_proxy_users={"ana": "viewer:A"},
                        auth_proxy_trusted=["10.1.1.1"])
    guard = Guard(app=None, registry=KeyRegistry(store=None), signer=None, settings=settings)  # type: ignore[arg-type]
    scope = {"client": ("127.0.0.1", 5555), "headers": [(b"x-forwarded-user", b"ana")]}
    assert guard._proxy_caller(scope, {b"x-forwarded-user": b"ana"}) is None
