"""Small OTLP trace builders for the UI tests and benchmark (no dependency outside the repo).

Each builder returns serialized ``ExportTraceServiceRequest`` bytes (or the message), so tests can
either insert them straight into a store (``store.insert_otlp``) or POST them to the collector.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

MS = 1_000_000
S = 1_000_000_000
PNG_1PX = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    if not isinstance(value, str):
        value = json.dumps(value)
    return KeyValue(key=key, value=AnyValue(string_value=value))


@dataclass
class SpanSpec:
    name: str
    span_id: str
    parent: str = ""
    start_ms: float = 0
    dur_ms: float = 10
    attrs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    kind: int = Span.SPAN_KIND_INTERNAL
    events: list[tuple[str, float, dict[str, Any]]] = field(default_factory=list)


def request(trace_id: str, spans: list[SpanSpec], start_ns: int, service: str = "checkout",
            resource: dict[str, Any] | None = None) -> ExportTraceServiceRequest:
    """One request holding ``spans`` of one trace from one service."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([kv("service.name", service)] + [kv(k, v) for k, v in (resource or {}).items()])
    ss = rs.scope_spans.add()
    ss.scope.name = "tests.ui"
    for sp in spans:
        s = ss.spans.add()
        s.trace_id = bytes.fromhex(trace_id)
        s.span_id = bytes.fromhex(sp.span_id)
        if sp.parent:
            s.parent_span_id = bytes.fromhex(sp.parent)
        s.name = sp.name
        s.kind = sp.kind
        s.start_time_unix_nano = start_ns + int(sp.start_ms * MS)
        s.end_time_unix_nano = s.start_time_unix_nano + int(sp.dur_ms * MS)
        s.attributes.extend(kv(k, v) for k, v in sp.attrs.items())
        for name, at_ms, attrs in sp.events:
            s.events.add(name=name, time_unix_nano=start_ns + int(at_ms * MS), attributes=[kv(k, v) for k, v in attrs.items()])
        if sp.error is not None:
            s.status.code = Status.STATUS_CODE_ERROR
            s.status.message = sp.error
        else:
            s.status.code = Status.STATUS_CODE_OK
    return req


def hexid(rnd: random.Random, nbytes: int) -> str:
    return rnd.getrandbits(8 * nbytes).to_bytes(nbytes, "big").hex()


def big_trace_request(n_spans: int, start_ns: int, seed: int = 7) -> tuple[bytes, str]:
    """A deep agent trace of ``n_spans`` spans: steps of chat + tool (+ http) under a root."""
    rnd = random.Random(seed)
    trace_id, root = hexid(rnd, 16), hexid(rnd, 8)
    spans = [SpanSpec("invoke_agent big-agent", root, "", 0, n_spans * 4, {"gen_ai.operation.name": "invoke_agent",
                                                                          "session.id": "sess-big"})]
    t = 1.0
    while len(spans) < n_spans:
        step = hexid(rnd, 8)
        spans.append(SpanSpec(f"step {len(spans)}", step, root, t, 6))
        for kind in ("chat", "tool", "http"):
            if len(spans) >= n_spans:
                break
            sid = hexid(rnd, 8)
            if kind == "chat":
                spans.append(SpanSpec("chat gpt-4o", sid, step, t + 0.1, 3, {
                    "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 80,
                    "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "step " + str(len(spans))}]}]),
                }, kind=Span.SPAN_KIND_CLIENT))
            elif kind == "tool":
                spans.append(SpanSpec("execute_tool lookup", sid, step, t + 3.2, 2, {"gen_ai.operation.name": "execute_tool"}))
            else:
                spans.append(SpanSpec("GET /orders", hexid(rnd, 8), sid, t + 3.3, 1.5, {"http.request.method": "GET"}))
        t += 4
    return request(trace_id, spans, start_ns, service="big-agent").SerializeToString(), trace_id


def synthetic_requests(total_spans: int, seed: int, base_ns: int) -> list[bytes]:
    """Fallback load for the benchmark: 8-span agent traces, 512 spans per request."""
    rnd = random.Random(seed)
    out: list[bytes] = []
    pending: list[ExportTraceServiceRequest] = []
    made, n = 0, 0
    services = ["support-agent", "research-agent", "ops-agent"]
    models = ["gpt-4o", "gpt-4o-mini", "gpt-4.1"]
    cur = ExportTraceServiceRequest()
    count = 0
    while made < total_spans:
        tid, root = hexid(rnd, 16), hexid(rnd, 8)
        fail = rnd.random() < 0.03
        model = rnd.choice(models)
        spans = [SpanSpec(f"invoke_agent {services[n % 3]}", root, "", 0, 3000, {
            "session.id": f"sess-{rnd.randrange(2000):05d}", "user.id": f"user-{rnd.randrange(500):04d}"},
            error="boom" if fail else None)]
        for i in range(7):
            spans.append(SpanSpec(f"chat {model}", hexid(rnd, 8), root, 10 + i * 400, 350, {
                "gen_ai.operation.name": "chat", "gen_ai.request.model": model,
                "gen_ai.usage.input_tokens": rnd.randint(400, 4000), "gen_ai.usage.output_tokens": rnd.randint(30, 700),
                "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "word " * 200}]}])}))
        spans = spans[: total_spans - made]
        r = request(tid, spans, base_ns + n * 20 * MS, service=services[n % 3])
        cur.resource_spans.extend(r.resource_spans)
        count += len(spans)
        made += len(spans)
        n += 1
        if count >= 512:
            out.append(cur.SerializeToString())
            cur, count = ExportTraceServiceRequest(), 0
    if count:
        out.append(cur.SerializeToString())
    del pending
    return out
