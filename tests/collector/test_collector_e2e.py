"""A running ``tracelake server`` fed by the real OpenTelemetry exporters and by raw OTLP."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from otlp_spans import new_trace_id, request, span
from server_process import start_server

ATTRS = {"str": "hello", "int": 7, "float": 2.5, "bool": False, "strs": ["a", "b"], "ints": [1, 2, 3],
         "floats": [0.5], "bools": [True, False]}
EXPECTED = {"str": "hello", "int": "7", "float": "2.5", "bool": "false", "strs": '["a","b"]', "ints": "[1,2,3]",
            "floats": "[0.5]", "bools": "[true,false]"}


@pytest.fixture(scope="module", params=["spool", "commit"])
def server(request, tmp_path_factory):
    with start_server(tmp_path_factory.mktemp("e2e") / "data", ack_mode=request.param) as s:
        s.ack_mode = request.param
        yield s


def _rows_after_ack(server, query: str, count: int, **params):
    """Ack after commit: the rows are there as soon as the ack is. Spool: once the segment loads."""
    if server.ack_mode == "commit":
        return server.sql(query, **params)
    return server.wait_rows(query, count, **params)


def _send_with_sdk(exporter, service: str) -> tuple[str, str]:
    provider = TracerProvider(resource=Resource.create({"service.name": service, "team": "evals"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.exporter", "9.9")
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER) as parent:
        ctx = parent.get_span_context()
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT, attributes=ATTRS,
                                          links=[Link(ctx, {"link.kind": "parent-copy"})]) as child:
            child.add_event("something", {"detail": "x", "n": 1})
            child.set_status(Status(StatusCode.ERROR, "it failed"))
    provider.shutdown()
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_real_exporters_round_trip_every_field(server, protocol):
    service = f"svc-{protocol}"
    exporter = (HttpExporter(endpoint=f"{server.otlp_http_url}/v1/traces") if protocol == "http"
                else GrpcExporter(endpoint=server.otlp_grpc_addr, insecure=True))
    trace_id, parent_id = _send_with_sdk(exporter, service)
    # The exporter returned, so the server acked: in commit mode the spans are queryable right away.
    rows = _rows_after_ack(server, "SELECT SpanName, SpanKind, ParentSpanId, SpanAttributes, StatusCode, StatusMessage, "
                      "ResourceAttributes, ScopeName, ScopeVersion, Events.Name, Events.Attributes, Links.TraceId, "
                      "Links.SpanId, Links.Attributes, Duration > 0 FROM otel_traces "
                      "WHERE ServiceName = {s:String} ORDER BY SpanName", 2, s=service)
    assert [r[0] for r in rows] == ["child", "parent"]
    child, parent = rows
    assert (child[1], parent[1]) == ("Client", "Server")
    assert child[2] == parent_id and parent[2] == ""
    assert dict(child[3]) == EXPECTED
    assert (child[4], child[5]) == ("Error", "it failed")
    resource = dict(child[6])
    assert resource["service.name"] == service and resource["team"] == "evals"
    assert resource["telemetry.sdk.language"] == "python"
    assert (child[7], child[8]) == ("tests.exporter", "9.9")
    assert child[9] == ["something"] and dict(child[10][0]) == {"detail": "x", "n": "1"}
    assert child[11] == [trace_id] and child[12] == [parent_id] and dict(child[13][0]) == {"link.kind": "parent-copy"}
    assert child[14] in (1, True)


def _post(server, body: bytes, ctype: str = "application/x-protobuf", **headers) -> httpx.Response:
    return httpx.post(f"{server.otlp_http_url}/v1/traces", content=body,
                      headers={"Content-Type": ctype, **headers}, timeout=30)


def test_json_encoding_with_hex_ids_and_gzip(server):
    trace = new_trace_id()
    doc = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
                              "scopeSpans": [{"scope": {"name": "s"}, "spans": [{
                                  "traceId": trace.hex(), "spanId": "00000000000000aa", "name": "json span",
                                  "kind": 2, "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": 1700000000000000500,
                                  "attributes": [{"key": "n", "value": {"intValue": "5"}}],
                                  "status": {"code": 2}}]}]}]}
    r = _post(server, gzip.compress(json.dumps(doc).encode()), "application/json", **{"Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert _rows_after_ack(server, "SELECT SpanName, SpanAttributes['n'], StatusCode, Duration FROM otel_traces "
                           "WHERE TraceId = {t:String}", 1, t=trace.hex()) == [["json span", "5", "Error", 500]]


def test_invalid_spans_are_refused_through_partial_success(server):
    trace = new_trace_id()
    good = span("good", trace)
    bad_ids = span("bad id", trace, span_id=b"\x01\x02")
    backwards = span("backwards", trace, duration_ns=-5)
    no_trace = span("no trace", b"")
    r = _post(server, request([good, bad_ids, backwards, no_trace], service=f"partial-{server.ack_mode}").SerializeToString())
    assert r.status_code == 200
    reply = ExportTraceServiceResponse.FromString(r.content)
    assert reply.partial_success.rejected_spans == 3
    assert "span_id must be 8" in reply.partial_success.error_message
    assert _rows_after_ack(server, "SELECT SpanName FROM otel_traces WHERE ServiceName = {s:String}", 1,
                           s=f"partial-{server.ack_mode}") == [["good"]]


@pytest.mark.parametrize("body, ctype, headers, status, message", [
    (b"\x0a\x05garbage-not-protobuf", "application/x-protobuf", {}, 400, "malformed protobuf"),
    (b"{not json", "application/json", {}, 400, "malformed JSON"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "application/json", {}, 400, "not hex"),
    (b"hello", "text/plain", {}, 415, "Content-Type"),
    (b"x", "application/x-protobuf", {"Content-Encoding": "br"}, 415, "Content-Encoding"),
    (b"not gzip at all", "application/x-protobuf", {"Content-Encoding": "gzip"}, 400, "gzip"),
])
def test_bad_requests_are_rejected_alone(server, body, ctype, headers, status, message):
    r = _post(server, body, ctype, **headers)
    assert r.status_code == status
    assert message in (r.text if status == 415 or ctype == "application/json" else _status_message(r))
    # the server keeps serving others
    assert _post(server, request([span("after bad", new_trace_id())]).SerializeToString()).status_code == 200


def _status_message(r: httpx.Response) -> str:
    from google.rpc import status_pb2

    return status_pb2.Status.FromString(r.content).message


def test_empty_request_is_a_success(server):
    r = _post(server, b"")
    assert r.status_code == 200 and ExportTraceServiceResponse.FromString(r.content).partial_success.rejected_spans == 0


def test_grpc_bad_and_partial(server):
    channel = grpc.insecure_channel(server.otlp_grpc_addr)
    export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
    with pytest.raises(grpc.RpcError) as err:
        export(b"\x0a\x05garbage", timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    trace = new_trace_id()
    reply = ExportTraceServiceResponse.FromString(
        export(request([span("ok", trace), span("bad", trace, duration_ns=-1)], service="grpc-partial").SerializeToString(), timeout=30))
    assert reply.partial_success.rejected_spans == 1
    assert _rows_after_ack(server, "SELECT SpanName FROM otel_traces WHERE ServiceName = 'grpc-partial'", 1) == [["ok"]]
    channel.close()


def test_ops_endpoints_and_sql_api(server):
    assert httpx.get(f"{server.ui_url}/healthz").text == "ok\n"
    assert httpx.get(f"{server.ui_url}/readyz").status_code == 200
    metrics = httpx.get(f"{server.ui_url}/metrics").text
    for name in ("tracelake_spans_accepted_total", "tracelake_batch_spans", "tracelake_insert_seconds",
                 "tracelake_queue_spans", "tracelake_spans_rejected_total", "tracelake_otlp_requests_total"):
        assert name in metrics
    r = httpx.post(f"{server.ui_url}/api/sql", data={"q": "DROP TABLE otel_traces"})
    assert r.status_code == 400 and "readonly" in r.json()["error"].lower()
    r = httpx.get(f"{server.ui_url}/api/sql", params={"q": "SELECT {x:UInt8} + 1 AS y", "param_x": "41"})
    assert r.json() == {"columns": ["y"], "rows": [[42]], "row_count": 1}
    r = httpx.post(f"{server.ui_url}/api/sql", json={"q": "SELECT {x:UInt8} * 2 AS y", "params": {"x": 21}})
    assert r.json()["rows"] == [[42]]
    r = httpx.post(f"{server.ui_url}/api/sql", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not JSON" in r.json()["error"]
    operations = httpx.get(f"{server.ui_url}/api/openapi.json").json()["paths"]["/api/sql"]
    assert {operations["get"]["operationId"], operations["post"]["operationId"]} == {"sql_get", "sql_post"}


def test_sql_errors_read_as_the_users_own_statement(server):
    """A syntax error says where in the user's SQL, not in the wrapper that checked it."""
    r = httpx.post(f"{server.ui_url}/api/sql", data={"q": "SELECT count( FROM otel_traces"})
    error = r.json()["error"]
    assert r.status_code == 400 and "position" in error and "never closed" in error
    assert "formatQuerySingleLine" not in error and "In scope" not in error and "DB::Exception" not in error
    r = httpx.post(f"{server.ui_url}/api/sql", data={"q": "SELEC 1"})
    error = r.json()["error"]
    assert r.status_code == 400 and "Syntax error" in error and "formatQuerySingleLine" not in error
    assert len(error) < 400  # not the parser's whole list of tokens
    r = httpx.post(f"{server.ui_url}/api/sql", data={"q": "SELECT no_such_column FROM otel_traces"})
    error = r.json()["error"]
    assert r.status_code == 400 and "no_such_column" in error and "UNKNOWN_IDENTIFIER" in error


def test_sql_command_in_a_narrow_terminal_cuts_no_column(server):
    """Wider than the terminal: one block per row, every column name and value whole."""
    wide = "SELECT 'left-' || repeat('x', 30) AS first_long_column, 'right-' || repeat('y', 30) AS second_long_column, 7 AS n"
    out = subprocess.run([sys.executable, "-m", "tracelake.cli", "sql", "--url", server.ui_url, wide], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "COLUMNS": "40"})
    assert out.returncode == 0, out.stderr
    text = "".join(out.stdout.split())  # values fold across lines: compare without line breaks
    for whole in ("first_long_column", "second_long_column", "left-" + "x" * 30, "right-" + "y" * 30):
        assert whole in text
    assert "…" not in out.stdout
    out = subprocess.run([sys.executable, "-m", "tracelake.cli", "sql", "--url", server.ui_url, "SELEC 1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stderr.startswith("error: Syntax error") and len(out.stderr.splitlines()) == 1


def test_a_second_server_on_the_same_directory_or_port_says_what_to_do(server, tmp_path):
    """Start mistakes get one line that names the fix, not chdb's or uvicorn's traceback."""
    if os.environ.get("TRACELAKE_TEST_CLICKHOUSE_URL"):
        pytest.skip("the data directory is claimed by the embedded store only")
    base = [sys.executable, "-m", "tracelake.cli", "server", "--otlp-grpc-port", "0", "--otlp-http-port", "0"]
    same_dir = subprocess.run([*base, "--data-dir", str(server.data_dir), "--ui-port", "0"], capture_output=True,
                              text=True, timeout=120)
    assert same_dir.returncode == 2 and "Traceback" not in same_dir.stderr, same_dir.stderr
    assert f"the data directory {server.data_dir} is in use by another tracelake process" in same_dir.stderr
    port = server.ui_url.rsplit(":", 1)[1]
    same_port = subprocess.run([*base, "--data-dir", str(tmp_path / "other"), "--ui-port", port], capture_output=True,
                               text=True, timeout=120)
    assert same_port.returncode == 2 and "Traceback" not in same_port.stderr, same_port.stderr
    assert f"cannot listen on 127.0.0.1:{port} for the UI and API" in same_port.stderr and "--ui-port" in same_port.stderr


def test_sql_command_prints_a_table(server):
    out = subprocess.run([sys.executable, "-m", "tracelake.cli", "sql", "--url", server.ui_url,
                          "SELECT 'tracelake' AS product, 40 + 2 AS answer"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "product" in out.stdout and "tracelake" in out.stdout and "42" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "tracelake.cli", "sql", "--url", server.ui_url, "SELEC nonsense"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "error" in bad.stderr
