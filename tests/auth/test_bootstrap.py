"""When auth is on, and the first admin key: generated and printed once, stored hashed."""
from __future__ import annotations

import os
import re

import httpx
import pytest

from server_process import start_server

from tracelake.auth.bootstrap import auth_enabled, start
from tracelake.config import Settings


@pytest.mark.parametrize("host,auth,expected", [
    ("127.0.0.1", None, False), ("::1", None, False), ("localhost", None, False), ("127.0.0.2", None, False),
    ("0.0.0.0", None, True), ("::", None, True), ("10.0.0.5", None, True), ("example.internal", None, True),
    ("0.0.0.0", False, False), ("127.0.0.1", True, True),
])
def test_auth_is_on_off_loopback_unless_refused_explicitly(host, auth, expected):
    assert auth_enabled(Settings(host=host, auth=auth)) is expected


def test_explicit_no_auth_on_a_public_interface_warns_loudly():
    registry, lines = start(Settings(host="0.0.0.0", auth=False), store=None)  # type: ignore[arg-type]
    assert registry is None and any("WARNING" in line and "auth is OFF" in line for line in lines)


def test_first_admin_key_is_printed_once_and_works(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRACELAKE_ADMIN_KEY"}
    os.environ.pop("TRACELAKE_ADMIN_KEY", None)
    first = start_server(tmp_path / "data", "--auth", env=env)
    try:
        banner = "".join(first.output)
        found = re.findall(r"admin key\s+(tl_[0-9a-f]{12}_[A-Za-z0-9_-]+)", banner)
        assert len(found) == 1
        key = found[0]
        who = httpx.get(f"{first.ui_url}/api/whoami", headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert who.status_code == 200 and who.json()["role"] == "admin"
    finally:
        first.terminate()
    second = start_server(tmp_path / "data", "--auth", env=env)
    try:
        assert key not in "".join(second.output) and "admin key   tl_" not in "".join(second.output)
        who = httpx.get(f"{second.ui_url}/api/whoami", headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert who.status_code == 200
    finally:
        second.terminate()
    assert key not in "".join(second.output)
