"""Build OTLP trace requests with known contents, for collector and store tests."""
from __future__ import annotations

import itertools
import os
import time
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

_counter = itertools.count(1)


def new_trace_id() -> bytes:
    return os.urandom(8) + next(_counter).to_bytes(8, "big")


def new_span_id() -> bytes:
    return os.urandom(4) + next(_counter).to_bytes(4, "big")


def any_value(value: Any) -> AnyValue:
    v = AnyValue()
    if isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, int):
        v.int_value = value
    elif isinstance(value, float):
        v.double_value = value
    elif isinstance(value, bytes):
        v.bytes_value = value
    elif isinstance(value, list):
        v.array_value.values.extend(any_value(x) for x in value)
    elif isinstance(value, dict):
        v.kvlist_value.values.extend(KeyValue(key=k, value=any_value(x)) for k, x in value.items())
    else:
        v.string_value = value
    return v


def attributes(mapping: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in mapping.items()]


def span(name: str, trace_id: bytes, span_id: bytes | None = None, parent: bytes = b"", *,
         start_ns: int | None = None, duration_ns: int = 1_000_000, attrs: dict[str, Any] | None = None,
         kind: int = 1, status: int = 0, status_message: str = "", events: list[tuple[str, dict[str, Any]]] = (),
         links: list[tuple[bytes, bytes, dict[str, Any]]] = ()) -> dict[str, Any]:
    """A span description for :func:`request`."""
    start = start_ns if start_ns is not None else time.time_ns()
    return {"name": name, "trace_id": trace_id, "span_id": span_id or new_span_id(), "parent": parent,
            "start": start, "end": start + duration_ns, "attrs": attrs or {}, "kind": kind, "status": status,
            "status_message": status_message, "events": list(events), "links": list(links)}


def request(spans: list[dict[str, Any]], service: str = "test-service", resource: dict[str, Any] | None = None,
            scope: tuple[str, str] = ("tests.scope", "1.0")) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(attributes({"service.name": service, **(resource or {})}))
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = scope
    for s in spans:
        out = ss.spans.add()
        out.trace_id, out.span_id, out.parent_span_id = s["trace_id"], s["span_id"], s["parent"]
        out.name, out.kind = s["name"], s["kind"]
        out.start_time_unix_nano, out.end_time_unix_nano = s["start"], s["end"]
        out.attributes.extend(attributes(s["attrs"]))
        out.status.code, out.status.message = s["status"], s["status_message"]
        for ev_name, ev_attrs in s["events"]:
            event = out.events.add()
            event.name, event.time_unix_nano = ev_name, s["start"] + 10
            event.attributes.extend(attributes(ev_attrs))
        for link_trace, link_span, link_attrs in s["links"]:
            link = out.links.add()
            link.trace_id, link.span_id = link_trace, link_span
            link.attributes.extend(attributes(link_attrs))
    return req


GENAI_CHAT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
              "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.usage.input_tokens": 1000,
              "gen_ai.usage.output_tokens": 500, "session.id": "sess-1", "user.id": "user-1"}
OPENINFERENCE_LLM = {"openinference.span.kind": "LLM", "llm.provider": "openai", "llm.model_name": "gpt-4o-mini",
                     "llm.token_count.prompt": 2000, "llm.token_count.completion": 100, "session.id": "sess-2"}
OPENLLMETRY_CHAT = {"llm.request.type": "chat", "gen_ai.system": "Anthropic", "gen_ai.request.model": "claude-3-5-sonnet",
                    "gen_ai.usage.prompt_tokens": 300, "gen_ai.usage.completion_tokens": 40,
                    "traceloop.association.properties.user_id": "user-3"}
