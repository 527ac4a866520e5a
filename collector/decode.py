"""Turn an OTLP request body into a clean protobuf body for ClickHouse, or say what is wrong.

Python parses each request once (upb, in C) and looks at five fields per span to refuse invalid
spans through OTLP partial success. Attributes are never touched here: ClickHouse decodes them.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracelake.collector.errors import BadRequest

__all__ = ["BadRequest", "Decoded", "decode_json", "decode_protobuf", "validate"]

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


@dataclass(frozen=True)
class Decoded:
    body: bytes  # protobuf ExportTraceServiceRequest holding only the valid spans
    accepted: int
    rejected: int
    error: str  # why spans were rejected ('' when none were)


def _span_problem(span) -> str:  # noqa: ANN001 - upb message type
    if len(span.trace_id) != 16 or span.trace_id == _ZERO_TRACE:
        return f"trace_id must be 16 non-zero bytes, got {len(span.trace_id)}"
    if len(span.span_id) != 8 or span.span_id == _ZERO_SPAN:
        return f"span_id must be 8 non-zero bytes, got {len(span.span_id)}"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return f"parent_span_id must be empty or 8 bytes, got {len(span.parent_span_id)}"
    if span.start_time_unix_nano == 0:
        return "start_time_unix_nano is missing"
    if span.end_time_unix_nano < span.start_time_unix_nano:
        return "end_time_unix_nano is before start_time_unix_nano"
    return ""


def validate(request: ExportTraceServiceRequest, original: bytes | None) -> Decoded:
    """Drop invalid spans; re-serialize only when something was dropped."""
    accepted = rejected = 0
    first_error = ""
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            spans = ss.spans
            bad = []
            for i, span in enumerate(spans):
                problem = _span_problem(span)
                if problem:
                    bad.append(i)
                    if not first_error:
                        first_error = f"span {span.span_id.hex() or '?'} ({span.name!r}): {problem}"
            for i in reversed(bad):
                del spans[i]
            accepted += len(spans)
            rejected += len(bad)
    if rejected:
        error = f"{rejected} span(s) rejected; first: {first_error}"
        return Decoded(request.SerializeToString(), accepted, rejected, error)
    return Decoded(original if original is not None else request.SerializeToString(), accepted, 0, "")


def decode_protobuf(body: bytes) -> Decoded:
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except DecodeError as exc:
        raise BadRequest(f"malformed protobuf ExportTraceServiceRequest: {exc}") from exc
    return validate(request, body)


def _hex_to_b64(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be a hex string")
    try:
        return base64.b64encode(bytes.fromhex(value)).decode()
    except ValueError as exc:
        raise BadRequest(f"{field} is not hex: {value[:64]!r}") from exc


def _ids_to_base64(doc: object) -> None:
    """OTLP/JSON carries ids as hex; protobuf's JSON mapping wants base64."""
    if not isinstance(doc, dict):
        raise BadRequest("OTLP/JSON body must be an object")
    for rs in doc.get("resourceSpans") or []:
        for ss in (rs or {}).get("scopeSpans") or []:
            for span in (ss or {}).get("spans") or []:
                if not isinstance(span, dict):
                    raise BadRequest("each span must be an object")
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = _hex_to_b64(span[key], key)
                for link in span.get("links") or []:
                    for key in ("traceId", "spanId"):
                        if isinstance(link, dict) and link.get(key):
                            link[key] = _hex_to_b64(link[key], f"links.{key}")


def decode_json(body: bytes) -> Decoded:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from exc
    try:
        _ids_to_base64(doc)
    except (TypeError, AttributeError) as exc:  # a list or object where another type belongs (found by fuzzing)
        raise BadRequest(f"invalid OTLP/JSON structure: {exc}") from exc
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(doc, request, ignore_unknown_fields=True)
    except (json_format.ParseError, binascii.Error, TypeError, ValueError) as exc:
        raise BadRequest(f"invalid OTLP/JSON: {exc}") from exc
    return validate(request, None)
