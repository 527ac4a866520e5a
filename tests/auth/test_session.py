"""UI sign-in: the login form, the session cookie's flags, CSRF on changes, no open redirect."""
from __future__ import annotations

import re

import httpx


def _login_form(base: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=base, timeout=30, follow_redirects=False)
    page = client.get("/login", params={"next": "/sessions"})
    assert page.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client, token


def _signed_in(stack, key: str) -> httpx.Client:
    client, token = _login_form(stack.server.ui_url)
    done = client.post("/login", params={"next": "/sessions"}, data={"key": key, "csrf_token": token})
    assert done.status_code == 303 and done.headers["location"] == "/sessions"
    return client


def test_sign_in_sets_a_safe_session_cookie(stack):
    client, token = _login_form(stack.server.ui_url)
    done = client.post("/login", params={"next": "/sessions"}, data={"key": stack.keys["A:viewer"], "csrf_token": token})
    assert done.status_code == 303
    cookie = [v for k, v in done.headers.multi_items() if k == "set-cookie" and v.startswith("tl_session=")][0]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert stack.keys["A:viewer"] not in cookie and stack.keys["A:viewer"].split("_", 2)[2] not in cookie
    page = client.get("/traces", params={"range": "24h"})
    assert page.status_code == 200 and "root-A" in page.text and "root-B" not in page.text
    assert 'name="csrf-token"' in page.text and "Sign out" in page.text


def test_wrong_or_ingest_key_and_forged_form_are_refused(stack):
    _signed_in(stack, stack.keys["A:viewer"])  # one accepted sign-in of its own, beside the refusals
    client, token = _login_form(stack.server.ui_url)
    assert client.post("/login", data={"key": "tl_000000000000_" + "y" * 43, "csrf_token": token}).status_code == 401
    client, token = _login_form(stack.server.ui_url)
    assert client.post("/login", data={"key": stack.keys["A:ingest"], "csrf_token": token}).status_code == 401
    fresh = httpx.post(stack.server.ui_url + "/login", data={"key": stack.keys["A:viewer"], "csrf_token": "forged"},
                       timeout=30)
    assert fresh.status_code == 403  # no matching sign-in cookie: a cross-site login attempt
    audit = stack.admin.get("/api/audit", params={"action": "signin"}).json()["entries"]
    assert any(e["outcome"] == "ok" for e in audit)
    # Failures are audited per source and window (tracelake.auth.throttle): the window's first one
    # is a row of its own (a sign-in or a bearer key, whichever came first from this address), the
    # rest are counted in the window's auth.failures summary.
    every = stack.admin.get("/api/audit", params={"limit": 5000}).json()["entries"]
    assert any(e["outcome"] == "denied" and e["action"] in ("signin", "api-key") for e in every)


def test_changes_need_the_csrf_token_and_same_origin(stack):
    client = _signed_in(stack, stack.keys["A:ops"])
    assert client.post("/api/keys", json={"project": "A", "role": "viewer"}).status_code == 403  # no token
    token = client.get("/api/whoami").json()["csrf_token"]
    cross = client.post("/api/keys", json={"project": "A", "role": "viewer"},
                        headers={"X-CSRF-Token": token, "Origin": "http://evil.example"})
    assert cross.status_code == 403
    assert client.post("/api/keys", json={"project": "A", "role": "viewer"}, headers={"X-CSRF-Token": "x" + token}).status_code == 403
    made = client.post("/api/keys", json={"project": "A", "role": "viewer"}, headers={"X-CSRF-Token": token})
    assert made.status_code == 201
    assert client.post("/logout", data={"csrf_token": "nope"}).status_code == 403
    cookie = client.cookies.get("tl_session")
    out = client.post("/logout", data={"csrf_token": token})
    assert out.status_code == 303 and "tl_session=;" in out.headers["set-cookie"]
    # A copy of the cookie kept from before sign-out does not work any more.
    replay = httpx.get(stack.server.ui_url + "/api/traces", headers={"cookie": f"tl_session={cookie}"}, timeout=30)
    assert replay.status_code == 401


def test_revoking_the_key_ends_its_sessions(stack):
    from auth_stack import create_key

    key = create_key(stack.server, "A", "viewer")
    client = _signed_in(stack, key)
    assert client.get("/api/traces").status_code == 200
    assert stack.admin.http.delete(f"/api/keys/{key.split('_')[1]}").status_code == 200
    assert client.get("/api/traces").status_code == 401
    assert client.get("/traces").status_code == 303


def test_no_open_redirect_after_sign_in(stack):
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"):
        client, token = _login_form(stack.server.ui_url)
        done = client.post("/login", params={"next": target}, data={"key": stack.keys["A:viewer"], "csrf_token": token})
        assert done.status_code == 303 and done.headers["location"] == "/traces", target


def test_tampered_session_cookie_is_refused(stack):
    client = _signed_in(stack, stack.keys["A:viewer"])
    cookie = client.cookies.get("tl_session")
    payload, mac = cookie.split(".")
    intact = httpx.get(stack.server.ui_url + "/api/traces", headers={"cookie": f"tl_session={cookie}"}, timeout=30)
    assert intact.status_code == 200
    for forged in (payload + "." + ("A" if mac[0] != "A" else "B") + mac[1:], payload + "x." + mac, payload):
        response = httpx.get(stack.server.ui_url + "/api/traces", headers={"cookie": f"tl_session={forged}"}, timeout=30)
        assert response.status_code == 401


def test_secure_cookie_behind_a_trusted_tls_proxy_and_no_store_pages(stack):
    client = httpx.Client(base_url=stack.server.ui_url, timeout=30, follow_redirects=False,
                          headers={"X-Forwarded-Proto": "https"})  # the test runs from 127.0.0.1, a trusted peer
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert "; Secure" in page.headers["set-cookie"]
    client.cookies.clear()  # a Secure cookie is not sent back over http: send it as a browser on https would
    done = client.post("/login", data={"key": stack.keys["A:viewer"], "csrf_token": token},
                       headers={"cookie": f"tl_login={token}"})
    cookie = [v for k, v in done.headers.multi_items() if k == "set-cookie" and v.startswith("tl_session=")][0]
    assert "; Secure" in cookie
    plain = _signed_in(stack, stack.keys["A:viewer"])
    assert plain.get("/traces").headers["cache-control"] == "no-store"
