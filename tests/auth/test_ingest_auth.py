"""Keys on the OTLP ports: HTTP and gRPC, real exporters, the project taken from the key."""
from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import grpc
import httpx
from google.rpc import status_pb2

from auth_stack import cli, create_key, emit
from otlp_spans import new_trace_id, request, span

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _body() -> bytes:
    return request([span("raw", new_trace_id())]).SerializeToString()


def _post(stack, key: str | None) -> httpx.Response:
    headers = {"content-type": "application/x-protobuf"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    return httpx.post(f"{stack.server.otlp_http_url}/v1/traces", content=_body(), headers=headers, timeout=30)


def _grpc_code(stack, key: str | None) -> grpc.StatusCode:
    with grpc.insecure_channel(stack.server.otlp_grpc_addr) as channel:
        call = channel.unary_unary(EXPORT)
        metadata = (("authorization", f"Bearer {key}"),) if key is not None else ()
        try:
            call(_body(), metadata=metadata, timeout=30)
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK


def test_http_missing_wrong_and_unentitled_keys(stack):
    missing = _post(stack, None)
    assert missing.status_code == 401
    assert status_pb2.Status.FromString(missing.content).code == 16  # UNAUTHENTICATED in the OTLP body
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert _post(stack, "tl_000000000000_" + "x" * 43).status_code == 401
    assert _post(stack, stack.keys["A:ingest"][:-1] + "_").status_code == 401  # right id, wrong secret
    assert _post(stack, stack.keys["A:viewer"]).status_code == 403
    assert _post(stack, stack.keys["A:ops"]).status_code == 403
    assert _post(stack, stack.keys["A:ingest"]).status_code == 200


def test_grpc_missing_wrong_and_unentitled_keys(stack):
    assert _grpc_code(stack, None) == grpc.StatusCode.UNAUTHENTICATED
    assert _grpc_code(stack, "not-a-key-but-long-enough-to-look-like-one") == grpc.StatusCode.UNAUTHENTICATED
    assert _grpc_code(stack, stack.keys["B:viewer"]) == grpc.StatusCode.PERMISSION_DENIED
    assert _grpc_code(stack, stack.keys["B:ingest"]) == grpc.StatusCode.OK


def test_key_checked_before_the_body_is_read(stack):
    """Headers announce a body that never comes: only a check made before reading it can answer."""
    url = urlsplit(stack.server.otlp_http_url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                     b"Content-Length: 100000\r\n\r\n")
        reply = sock.recv(4096)  # a server waiting for the body would never answer (socket timeout: failure)
    assert reply.startswith(b"HTTP/1.1 401")


def test_real_exporters_with_the_standard_header(stack):
    key = stack.keys["A:ingest"]
    assert emit(stack.server, "http", key, [{"name": "std-http"}]) == ["SUCCESS"]
    assert emit(stack.server, "grpc", key, [{"name": "std-grpc"}]) == ["SUCCESS"]
    assert emit(stack.server, "http", None, [{"name": "std-nokey"}]) == ["FAILURE"]
    assert emit(stack.server, "grpc", stack.keys["A:viewer"], [{"name": "std-viewer"}]) == ["FAILURE"]
    rows = stack.admin.sql("SELECT SpanName, Project FROM otel_traces WHERE SpanName LIKE 'std-%' ORDER BY SpanName").json()["rows"]
    assert rows == [["std-grpc", "A"], ["std-http", "A"]]


def test_project_comes_from_the_key_whatever_the_spans_claim(stack):
    claims = {"tracelake.project": "B", "tracelake.auth.project": "B"}
    for protocol in ("http", "grpc"):
        assert emit(stack.server, protocol, stack.keys["A:ingest"], [{"name": f"claim-{protocol}", "attrs": claims}],
                    resource={**claims, "openinference.project.name": "B"}) == ["SUCCESS"]
    rows = stack.admin.sql("SELECT SpanName, Project, ResourceAttributes['tracelake.auth.project'] FROM otel_traces "
                           "WHERE SpanName LIKE 'claim-%' ORDER BY SpanName").json()["rows"]
    assert rows == [["claim-grpc", "A", "A"], ["claim-http", "A", "A"]]
    summary = stack.admin.sql("SELECT DISTINCT Project FROM trace_summary WHERE RootName LIKE 'claim-%'").json()["rows"]
    assert summary == [["A"]]


def test_revoked_key_stops_at_once_on_both_protocols(stack):
    key = create_key(stack.server, "A", "ingest")
    assert _post(stack, key).status_code == 200
    assert _grpc_code(stack, key) == grpc.StatusCode.OK
    key_id = key.split("_")[1]
    done = cli(stack.server, "keys", "revoke", key_id)
    assert done.returncode == 0, done.stderr
    assert _post(stack, key).status_code == 401
    assert _grpc_code(stack, key) == grpc.StatusCode.UNAUTHENTICATED
    listed = cli(stack.server, "keys", "list", "--json")
    entry = [k for k in json.loads(listed.stdout) if k["key_id"] == key_id]
    assert entry and entry[0]["revoked"] is True
    assert key.split("_", 2)[2] not in listed.stdout  # secrets are never listed


def test_health_stays_open_metrics_need_a_key(stack):
    assert httpx.get(f"{stack.server.otlp_http_url}/healthz", timeout=10).status_code == 200
    assert httpx.get(f"{stack.server.otlp_http_url}/metrics", timeout=10).status_code == 401
    ok = httpx.get(f"{stack.server.otlp_http_url}/metrics", headers={"authorization": f"Bearer {stack.keys['A:ingest']}"},
                   timeout=10)
    assert ok.status_code == 200
