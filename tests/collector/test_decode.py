"""The decoder alone: ids, partial success, OTLP/JSON (fast, in-process)."""
from __future__ import annotations

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from otlp_spans import new_trace_id, request, span

from tracelake.collector.decode import BadRequest, decode_json, decode_protobuf


def _names(body: bytes) -> list[str]:
    req = ExportTraceServiceRequest.FromString(body)
    return [s.name for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]


def test_valid_request_keeps_the_original_bytes():
    body = request([span("a", new_trace_id()), span("b", new_trace_id())]).SerializeToString()
    decoded = decode_protobuf(body)
    assert (decoded.accepted, decoded.rejected, decoded.error) == (2, 0, "")
    assert decoded.body is body  # nothing removed: no re-serialization


@pytest.mark.parametrize("changes, reason", [
    ({"trace_id": b"\x01" * 15}, "trace_id must be 16"),
    ({"trace_id": bytes(16)}, "trace_id must be 16 non-zero"),
    ({"span_id": b"\x01" * 9}, "span_id must be 8"),
    ({"span_id": bytes(8)}, "span_id must be 8 non-zero"),
    ({"parent": b"\x01" * 3}, "parent_span_id must be empty or 8"),
    ({"start": 0, "end": 5}, "start_time_unix_nano is missing"),
    ({"end": 1}, "end_time_unix_nano is before"),
])
def test_invalid_spans_are_dropped_with_the_first_reason(changes, reason):
    trace = new_trace_id()
    bad = {**span("bad", trace), **changes}
    decoded = decode_protobuf(request([span("good", trace), bad, span("good2", trace)]).SerializeToString())
    assert (decoded.accepted, decoded.rejected) == (2, 1)
    assert reason in decoded.error and "1 span(s) rejected" in decoded.error
    assert _names(decoded.body) == ["good", "good2"]


def test_malformed_protobuf_is_a_bad_request():
    with pytest.raises(BadRequest, match="malformed protobuf"):
        decode_protobuf(b"\x0a\x05garbage")


def test_empty_body_is_an_empty_success():
    decoded = decode_protobuf(b"")
    assert (decoded.accepted, decoded.rejected) == (0, 0)


def _json_doc(**span_fields) -> bytes:
    fields = {"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "00000000000000aa", "name": "j",
              "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": 1700000000000000500, **span_fields}
    return orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [fields]}]}]})


def test_json_hex_ids_and_int64_as_string_or_number():
    decoded = decode_json(_json_doc(parentSpanId="00000000000000bb",
                                    links=[{"traceId": "0102030405060708090a0b0c0d0e0f11", "spanId": "00000000000000cc"}]))
    assert decoded.accepted == 1
    [sp] = [s for rs in ExportTraceServiceRequest.FromString(decoded.body).resource_spans
            for ss in rs.scope_spans for s in ss.spans]
    assert sp.trace_id.hex() == "0102030405060708090a0b0c0d0e0f10" and sp.span_id.hex() == "00000000000000aa"
    assert sp.parent_span_id.hex() == "00000000000000bb" and sp.links[0].span_id.hex() == "00000000000000cc"
    assert sp.end_time_unix_nano - sp.start_time_unix_nano == 500


@pytest.mark.parametrize("body, message", [
    (b"{not json", "malformed JSON"),
    (b"[1, 2]", "must be an object"),
    (_json_doc(traceId="zz"), "not hex"),
    (_json_doc(spanId=5), "must be a hex string"),
    (orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": ["x"]}]}]}), "each span must be an object"),
    (_json_doc(name=["not", "a", "string"]), "invalid OTLP/JSON"),
])
def test_bad_json_is_a_bad_request(body, message):
    with pytest.raises(BadRequest, match=message):
        decode_json(body)


def test_invalid_json_span_goes_through_partial_success():
    decoded = decode_json(_json_doc(spanId="00000000000000"))  # 7 bytes
    assert (decoded.accepted, decoded.rejected) == (0, 1)
