"""Small OTLP request builders for extraction tests."""
from __future__ import annotations

import itertools
import json
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_ids = itertools.count(1)


def request(*spans: dict[str, Any]) -> bytes:
    """Each span: {"attrs": {key: value}, "events": [...]}; a list of str is an array attribute,
    other lists and dicts are JSON strings."""
    req = ExportTraceServiceRequest()
    scope = req.resource_spans.add().scope_spans.add()
    for spec in spans:
        n = next(_ids)
        span = scope.spans.add()
        span.trace_id = n.to_bytes(16, "big")
        span.span_id = n.to_bytes(8, "big")
        span.name = spec.get("name", f"span-{n}")
        span.start_time_unix_nano = 1_700_000_000_000_000_000 + n
        span.end_time_unix_nano = span.start_time_unix_nano + 1000
        _set(span.attributes, spec.get("attrs", {}))
        for ev in spec.get("events", []):
            event = span.events.add()
            event.name = ev["name"]
            event.time_unix_nano = span.start_time_unix_nano
            _set(event.attributes, ev.get("attrs", {}))
    return req.SerializeToString()


def _set(attributes: Any, attrs: dict[str, Any]) -> None:
    for key, value in attrs.items():
        kv = attributes.add()
        kv.key = key
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            for item in value:
                kv.value.array_value.values.add().string_value = item
        elif isinstance(value, int):
            kv.value.int_value = value
        else:
            kv.value.string_value = value if isinstance(value, str) else json.dumps(value)


def spans(body: bytes) -> list[dict[str, Any]]:
    """Decoded spans: {"attrs": {key: value}, "events": [{name, attrs}]} (strings only)."""
    req = ExportTraceServiceRequest.FromString(body)
    out = []
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                out.append({"name": span.name, "attrs": _get(span.attributes),
                            "events": [{"name": e.name, "attrs": _get(e.attributes)} for e in span.events]})
    return out


def _get(attributes: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for kv in attributes:
        kind = kv.value.WhichOneof("value")
        if kind == "array_value":
            result[kv.key] = [v.string_value for v in kv.value.array_value.values]
        else:
            result[kv.key] = getattr(kv.value, kind)
    return result
