"""Runs last in this folder: no key, key secret or session secret ever reached the server's
output (its log), after every path that handles keys has been exercised, failures included."""
from __future__ import annotations

import httpx

from auth_stack import ADMIN_KEY, CREATED, Client


def test_keys_never_reach_the_log(stack):
    server = stack.server
    # Exercise the paths that see keys once more: wrong secret for a real id, bad sign-in, revoke.
    real = stack.keys["B:ingest"]
    wrong = real[:-4] + "abcd"
    httpx.post(f"{server.otlp_http_url}/v1/traces", content=b"", timeout=30,
               headers={"content-type": "application/x-protobuf", "authorization": f"Bearer {wrong}"})
    httpx.post(f"{server.ui_url}/login", data={"key": wrong, "csrf_token": "x"}, timeout=30)
    Client(server, wrong).get("/api/traces")
    secret_row = stack.admin.sql("SELECT 1").json()  # the admin path too
    assert secret_row["rows"] == [[1]]
    assert server.terminate() == 0  # flushes everything it would log
    log = "".join(server.output)
    assert "tracelake: stopped" in log
    keys = {ADMIN_KEY, wrong, *stack.keys.values(), *CREATED}
    assert len(keys) >= 10
    for key in keys:
        secret = key.split("_", 2)[2] if key.startswith("tl_") else key
        assert key not in log and secret not in log, "a key reached the log"
    # The store keeps hashes only.
    import hashlib

    for key in keys - {wrong}:
        assert hashlib.sha256(key.encode()).hexdigest()  # computable, but never the key itself...
    data = b"".join(p.read_bytes() for p in server.data_dir.rglob("*") if p.is_file() and p.stat().st_size < 50_000_000)
    for key in keys:
        secret = key.split("_", 2)[2] if key.startswith("tl_") else key
        assert secret.encode() not in data, "a key was stored in clear"
