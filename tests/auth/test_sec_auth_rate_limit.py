"""Issue 19, finding 6: failed keys and sign-ins are limited per source address and per key id,
on the UI/API and on both OTLP ports, and the audit log gets a few rows per source and window
instead of one per failure.

Distinct sources are real peers: the tests connect from other loopback addresses (127.0.0.x),
and through X-Forwarded-For only where the peer is a trusted proxy (127.0.0.1 by default).
Failure counts are server-wide state, so this module starts its own server with small limits.
"""
from __future__ import annotations

import grpc
import httpx
import pytest

from auth_stack import ADMIN_KEY, Client, create_key, start_auth_server
from otlp_spans import new_trace_id, request, span

PER_SOURCE = 5
PER_KEY = 5
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
WRONG = "tl_{kid}_" + "w" * 43


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    env = {"TRACELAKE_AUTH_FAIL_PER_SOURCE": str(PER_SOURCE), "TRACELAKE_AUTH_FAIL_PER_KEY": str(PER_KEY),
           "TRACELAKE_AUTH_FAIL_WINDOW_S": "600"}  # longer than the module: no window ends mid-test
    server = start_auth_server(tmp_path_factory.mktemp("ratelimit") / "data", env=env)
    try:
        keys = {"viewer": create_key(server, "A", "viewer"), "ingest": create_key(server, "A", "ingest")}
        yield server, keys
    finally:
        server.terminate()


def _from(address: str, base_url: str, **kw) -> httpx.Client:
    """A client whose connections come from ``address`` (any 127.x address is this machine)."""
    return httpx.Client(base_url=base_url, transport=httpx.HTTPTransport(local_address=address), timeout=60, **kw)


def _bad_key(n: int) -> str:
    return WRONG.format(kid=f"{n:012x}")


def _audit(server, remote: str) -> list[dict]:
    entries = Client(server, ADMIN_KEY).get("/api/audit", params={"limit": 5000}).json()["entries"]
    return [e for e in entries if e["remote"] == remote]


def test_a_source_guessing_keys_gets_429_and_others_keep_working(guarded):
    server, keys = guarded
    attacker = _from("127.0.0.5", server.ui_url)
    answers = [attacker.get("/api/traces", headers={"Authorization": f"Bearer {_bad_key(i)}"}) for i in range(30)]
    codes = [a.status_code for a in answers]
    assert codes[:PER_SOURCE] == [401] * PER_SOURCE and set(codes[PER_SOURCE:]) == {429}, codes
    limited = answers[-1]
    assert 0 < int(limited.headers["retry-after"]) <= 600 and "retry in" in limited.json()["error"]["message"]
    # Once limited, the source's keys are not even checked: its good key waits too ...
    assert attacker.get("/api/traces", headers={"Authorization": f"Bearer {keys['viewer']}"}).status_code == 429
    # ... while the same key from another address works, and a spoofed X-Forwarded-For from an
    # untrusted peer changes nothing (only trusted proxies may name the client).
    assert Client(server, keys["viewer"]).get("/api/traces").status_code == 200
    spoofed = attacker.get("/api/traces", headers={"Authorization": f"Bearer {_bad_key(99)}", "X-Forwarded-For": "203.0.113.9"})
    assert spoofed.status_code == 429
    # 30+ failures, a handful of audit rows: the first failure, the limit, (the window's count later).
    rows = _audit(server, "127.0.0.5")
    assert 1 <= len(rows) <= 3, rows
    assert {r["outcome"] for r in rows} == {"denied", "limited"}


def test_wrong_secrets_for_one_key_id_get_429_but_the_key_keeps_working(guarded):
    server, keys = guarded
    kid = keys["viewer"].split("_")[1]
    codes = []
    for n, address in enumerate(("127.0.0.11", "127.0.0.12", "127.0.0.13")):  # each below the source limit
        with _from(address, server.ui_url) as http:
            for i in range(3):
                wrong = f"tl_{kid}_{'x' * 42}{n}{i}"
                codes.append(http.get("/api/traces", headers={"Authorization": f"Bearer {wrong}"}).status_code)
    assert codes[:PER_KEY] == [401] * PER_KEY and set(codes[PER_KEY:]) == {429}, codes
    with _from("127.0.0.13", server.ui_url) as http:  # the holder of the key is not locked out
        assert http.get("/api/traces", headers={"Authorization": f"Bearer {keys['viewer']}"}).status_code == 200


def test_sign_in_failures_are_limited_and_audited_per_source(guarded):
    server, keys = guarded
    with _from("127.0.0.21", server.ui_url) as browser:
        codes = []
        for i in range(PER_SOURCE + 10):
            token = browser.get("/login").cookies.get("tl_login") or ""
            r = browser.post("/login", data={"key": _bad_key(1000 + i), "csrf_token": token})
            codes.append(r.status_code)
        assert codes[:PER_SOURCE] == [401] * PER_SOURCE and set(codes[PER_SOURCE:]) == {429}, codes
        assert "Too many failed sign-ins" in r.text and int(r.headers["retry-after"]) > 0
    rows = _audit(server, "127.0.0.21")
    assert len(rows) == 2 and {r["action"] for r in rows} == {"signin", "auth.limit"}, rows
    with _from("127.0.0.22", server.ui_url) as browser:  # another address signs in
        token = browser.get("/login").cookies.get("tl_login") or ""
        assert browser.post("/login", data={"key": keys["viewer"], "csrf_token": token}).status_code == 303


def test_otlp_http_failures_get_429_from_a_limited_source(guarded):
    server, keys = guarded
    body = request([span("x", new_trace_id())]).SerializeToString()
    headers = {"Content-Type": "application/x-protobuf"}
    with _from("127.0.0.31", server.otlp_http_url) as exporter:
        codes = [exporter.post("/v1/traces", content=body, headers={**headers, "Authorization": f"Bearer {_bad_key(2000 + i)}"})
                 for i in range(PER_SOURCE + 3)]
    assert [c.status_code for c in codes] == [401] * PER_SOURCE + [429] * 3
    from google.rpc import status_pb2

    refused = status_pb2.Status.FromString(codes[-1].content)
    assert refused.code == 8 and "retry in" in refused.message and int(codes[-1].headers["retry-after"]) > 0
    ok = httpx.post(f"{server.otlp_http_url}/v1/traces", content=body, timeout=60,
                    headers={**headers, "Authorization": f"Bearer {keys['ingest']}"})
    assert ok.status_code == 200


def test_otlp_grpc_failures_get_resource_exhausted(guarded):
    """The peer 127.0.0.1 is a trusted proxy by default: the source is the forwarded client."""
    server, keys = guarded
    body = request([span("x", new_trace_id())]).SerializeToString()
    with grpc.insecure_channel(server.otlp_grpc_addr) as channel:
        export = channel.unary_unary(EXPORT)
        codes = []
        for i in range(PER_SOURCE + 2):
            with pytest.raises(grpc.RpcError) as err:
                export(body, timeout=30, metadata=(("authorization", f"Bearer {_bad_key(3000 + i)}"),
                                                   ("x-forwarded-for", "198.51.100.7")))
            codes.append(err.value.code())
        assert codes == [grpc.StatusCode.UNAUTHENTICATED] * PER_SOURCE + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
        assert "google.rpc.retryinfo-bin" in dict(err.value.trailing_metadata() or ())
        # The proxy's other clients, and the proxy itself, still ingest.
        export(body, timeout=30, metadata=(("authorization", f"Bearer {keys['ingest']}"),
                                           ("x-forwarded-for", "198.51.100.8")))
        export(body, timeout=30, metadata=(("authorization", f"Bearer {keys['ingest']}"),))
    assert {r["action"] for r in _audit(server, "198.51.100.7")} == {"ingest-key", "auth.limit"}


# -- the audit summary when a window ends (a clock the test moves) -----------------------------------
def test_a_window_ends_with_one_row_counting_its_failures():
    from tracelake.auth.throttle import FailureThrottle

    now = [1000.0]
    throttle = FailureThrottle(per_source=3, per_key=100, window_s=60, clock=lambda: now[0])
    for i in range(10):
        if throttle.refused("10.1.1.1") is None:
            throttle.failed("10.1.1.1", f"{i:012x}", "api-key")
    assert [r.outcome for r in throttle.take_rows()] == ["denied", "limited"]
    now[0] += 61
    assert throttle.refused("10.1.1.1") is None  # a new window
    summary = throttle.take_rows()
    assert len(summary) == 1 and "3 failed keys or sign-ins and 7 refused" in summary[0].detail
    # IPv6: one host holds a /64, so the /64 is what is counted.
    for i in range(3):
        throttle.failed(f"2001:db8::{i + 1}", None, "api-key")
    assert throttle.refused("2001:db8::ffff") is not None and throttle.refused("2001:db8:0:1::1") is None
    # A trusted proxy is never refused itself (it stands for all its clients), though counted.
    proxied = FailureThrottle(per_source=1, per_key=100, window_s=60, exempt=frozenset({"10.9.9.9"}))
    proxied.failed("10.9.9.9", None, "api-key")
    proxied.failed("10.9.9.9", None, "api-key")
    assert proxied.refused("10.9.9.9") is None and len(proxied.take_rows()) == 1
