"""Small OTLP trace builders for the UI tests and benchmark (no dependency outside the repo).

Each builder returns serialized ``ExportTraceServiceRequest`` bytes (or the message), so tests can
either insert them straight into a store (``store.insert_otlp``) or POST them to the collector.
"""
from __future__ import annotations

import base64
import hashlib
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


def agent_loop_requests(steps: int, start_ns: int, seed: int = 11, per_request: int = 20_000) -> tuple[list[bytes], str]:
    """A runaway agent: a planner root, ``steps`` "agent step" spans under it, each with an LLM call
    and four calls of one tool; every 97th tool call fails. 1 + 6 * steps spans, sent in requests
    of about ``per_request`` spans (as an exporter would)."""
    rnd = random.Random(seed)
    trace_id, root = hexid(rnd, 16), hexid(rnd, 8)
    spans = [SpanSpec("invoke_agent planner", root, "", 0, steps * 5 + 1, {"gen_ai.operation.name": "invoke_agent"})]
    calls = 0
    for k in range(steps):
        step, t = hexid(rnd, 8), 1 + k * 5
        spans.append(SpanSpec("agent step", step, root, t, 4.5))
        spans.append(SpanSpec("chat gpt-4o", hexid(rnd, 8), step, t + 0.1, 2, {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 100 + k % 7, "gen_ai.usage.output_tokens": 10 + k % 3}, kind=Span.SPAN_KIND_CLIENT))
        for j in range(4):
            calls += 1
            spans.append(SpanSpec("execute_tool lookup_order", hexid(rnd, 8), step, t + 2.2 + j * 0.5, 0.4,
                                  {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order"},
                                  error="order not found" if calls % 97 == 0 else None))
    return [request(trace_id, spans[i:i + per_request], start_ns, service="planner").SerializeToString()
            for i in range(0, len(spans), per_request)], trace_id


def chain_requests(depth: int, start_ns: int, seed: int = 12, per_request: int = 20_000) -> tuple[list[bytes], str, str]:
    """A chain ``depth`` spans deep (each the parent of the next): (requests, trace id, deepest span id)."""
    rnd = random.Random(seed)
    trace_id = hexid(rnd, 16)
    spans, parent = [], ""
    for k in range(depth):
        sid = hexid(rnd, 8)
        spans.append(SpanSpec(f"hop {k}", sid, parent, k * 0.01, (depth - k) * 0.01))
        parent = sid
    return [request(trace_id, spans[i:i + per_request], start_ns, service="chain").SerializeToString()
            for i in range(0, len(spans), per_request)], trace_id, parent


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


# --- The known traces of the UI tests -------------------------------------------------------------
def png_bytes(w: int = 96, h: int = 64, seed: int = 5) -> bytes:
    """A small noisy RGB PNG (> 1 KB, so the collector extracts it as an attachment)."""
    import struct
    import zlib

    rnd = random.Random(seed)
    rows = b"".join(b"\x00" + bytes(v for x in range(w) for v in (
        (x * 255 // w) ^ rnd.randrange(48), (y * 255 // h) ^ rnd.randrange(48), 160)) for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def wav_bytes(seconds: float = 0.5, rate: int = 8000) -> bytes:
    """A 440 Hz tone as 8-bit mono WAV."""
    import io
    import math
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(rate)
        w.writeframes(bytes(int(128 + 100 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(rate * seconds))))
    return buf.getvalue()


PNG = png_bytes()
WAV = wav_bytes()
SHA_IMG = hashlib.sha256(PNG).hexdigest()
SHA_AUDIO = hashlib.sha256(WAV).hexdigest()
SHA_PDF = "c" * 64
XSS_SCRIPT = "<script>window.__xss=1;alert(1)</script>"
XSS_IMG = '<img src=x onerror="window.__xss=2;alert(2)">'
XSS_SVG = ("data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIG9ubG9hZD0id2luZG93Ll9feHNzPTMiPjwvc3ZnPg==")
HUGE_LEN = 300_000
# Searchable text of the hostile trace's root (output.value): the word "quokka" right against HTML, in
# another case, inside a longer word, after a JSON "\n" escape (a separator), and a phrase whose
# separator is "<" (issue 23: highlights stay escaped).
XSS_SEARCH = XSS_SCRIPT + "quokka" + XSS_IMG + " Quokka quokkas \\nquokka quokka<hop"


@dataclass
class Known:
    """Ids of the seeded traces, for assertions."""

    genai: str = ""
    genai_chat: str = ""
    openinference: str = ""
    oi_llm: str = ""
    oi_retriever: str = ""
    openllmetry: str = ""
    ollm_llm: str = ""
    error: str = ""
    error_span: str = ""
    xss: str = ""
    xss_span: str = ""
    requests: list[bytes] = field(default_factory=list)


def known_traces(now_ns: int, seed: int = 42, extracted: bool = True) -> Known:
    """One trace per convention, an error trace, and a hostile one; all within the last ~10 minutes.

    ``extracted``: media as the store holds it after the collector's extraction (``uri`` parts to
    ``/api/attachments/<sha256>``); False sends the raw ``blob`` parts, for the collector to extract."""
    rnd = random.Random(seed)
    k = Known()
    t0 = now_ns - 10 * 60 * S

    # 1. OTel GenAI: system + user (text, image attachment, audio attachment, pdf), tool round trip.
    k.genai, root, k.genai_chat, tool = hexid(rnd, 16), hexid(rnd, 8), hexid(rnd, 8), hexid(rnd, 8)
    inp = [
        {"role": "system", "parts": [{"type": "text", "content": "You are a checkout assistant."}]},
        {"role": "user", "parts": [
            {"type": "text", "content": "What is in this picture? Also listen to this."},
            *([{"type": "uri", "modality": "image", "mime_type": "image/png", "uri": f"/api/attachments/{SHA_IMG}", "size": len(PNG)},
               {"type": "uri", "modality": "audio", "mime_type": "audio/wav", "uri": f"/api/attachments/{SHA_AUDIO}", "size": len(WAV)}]
              if extracted else
              [{"type": "blob", "modality": "image", "mime_type": "image/png", "content": base64.b64encode(PNG).decode()},
               {"type": "blob", "modality": "audio", "mime_type": "audio/wav", "content": base64.b64encode(WAV).decode()}]),
            {"type": "uri", "modality": "file", "mime_type": "application/pdf", "uri": f"/api/attachments/{SHA_PDF}", "size": 1234},
            {"type": "blob", "modality": "image", "mime_type": "image/png", "content": PNG_1PX},
        ]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1", "name": "lookup_order", "arguments": {"order_id": 42}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": {"status": "shipped"}}]},
    ]
    out = [{"role": "assistant", "finish_reason": "stop", "parts": [
        {"type": "reasoning", "content": "The user wants the order status."},
        {"type": "text", "content": "Your order 42 has shipped."}]}]
    spans = [
        SpanSpec("agent run", root, "", 0, 2500, {"gen_ai.operation.name": "invoke_agent", "session.id": "sess-1",
                                                 "user.id": "u1", "input.value": "where is my order?"}),
        SpanSpec("chat gpt-4o", k.genai_chat, root, 100, 1500, {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300,
            "gen_ai.input.messages": inp, "gen_ai.output.messages": out,
            "gen_ai.tool.definitions": [{"type": "function", "name": "lookup_order", "parameters": {"type": "object"}}]},
            kind=Span.SPAN_KIND_CLIENT),
        SpanSpec("execute_tool lookup_order", tool, root, 1700, 400, {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order",
            "gen_ai.tool.call.arguments": {"order_id": 42}, "gen_ai.tool.call.result": {"status": "shipped"}}),
    ]
    k.requests.append(request(k.genai, spans, t0, "checkout").SerializeToString())

    # 2. OpenInference: LLM with flattened messages (image content, tool calls), a retriever, a chain.
    k.openinference, root, k.oi_llm, k.oi_retriever = hexid(rnd, 16), hexid(rnd, 8), hexid(rnd, 8), hexid(rnd, 8)
    oi = {
        "openinference.span.kind": "LLM", "llm.model_name": "claude-3-5-sonnet", "llm.provider": "anthropic",
        "llm.token_count.prompt": 800, "llm.token_count.completion": 120,
        "llm.input_messages.0.message.role": "system", "llm.input_messages.0.message.content": "Be brief.",
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.contents.0.message_content.type": "text",
        "llm.input_messages.1.message.contents.0.message_content.text": "Describe the chart",
        "llm.input_messages.1.message.contents.1.message_content.type": "image",
        "llm.input_messages.1.message.contents.1.message_content.image.image.url": "data:image/png;base64," + PNG_1PX,
        "llm.input_messages.10.message.role": "tool", "llm.input_messages.10.message.tool_call_id": "t9",
        "llm.input_messages.10.message.content": '{"temp": 21}',
        "llm.input_messages.2.message.role": "assistant",
        "llm.input_messages.2.message.tool_calls.0.tool_call.id": "t9",
        "llm.input_messages.2.message.tool_calls.0.tool_call.function.name": "get_weather",
        "llm.input_messages.2.message.tool_calls.0.tool_call.function.arguments": '{"city": "Paris"}',
        "llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": "Sales rose 12% in Q3.",
    }
    retr = {"openinference.span.kind": "RETRIEVER", "input.value": "q3 sales",
            "retrieval.documents.0.document.id": "doc-a", "retrieval.documents.0.document.score": 0.91,
            "retrieval.documents.0.document.content": "Q3 sales grew by twelve percent.",
            "retrieval.documents.1.document.id": "doc-b", "retrieval.documents.1.document.score": 0.72,
            "retrieval.documents.1.document.content": "Q2 was flat.",
            "retrieval.documents.1.document.metadata": '{"source": "wiki"}'}
    spans = [
        SpanSpec("RAG chain", root, "", 0, 1800, {"openinference.span.kind": "CHAIN", "input.value": '{"question": "q3 sales?"}',
                                                 "input.mime_type": "application/json", "output.value": "Sales rose 12% in Q3.",
                                                 "session.id": "sess-2"}),
        SpanSpec("retrieve", k.oi_retriever, root, 50, 300, retr),
        SpanSpec("ChatAnthropic", k.oi_llm, root, 400, 1300, oi, kind=Span.SPAN_KIND_CLIENT),
    ]
    k.requests.append(request(k.openinference, spans, t0 + 60 * S, "oi-svc").SerializeToString())

    # 3. OpenLLMetry: gen_ai.prompt.N / gen_ai.completion.N with tool calls; workflow entity I/O.
    k.openllmetry, root, k.ollm_llm = hexid(rnd, 16), hexid(rnd, 8), hexid(rnd, 8)
    ol = {"traceloop.span.kind": "llm", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini",
          "gen_ai.usage.prompt_tokens": 50, "gen_ai.usage.completion_tokens": 20,
          "gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": "You are terse.",
          "gen_ai.prompt.1.role": "user", "gen_ai.prompt.1.content": "Weather in Oslo?",
          "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.finish_reason": "tool_calls",
          "gen_ai.completion.0.tool_calls.0.name": "get_weather", "gen_ai.completion.0.tool_calls.0.id": "c1",
          "gen_ai.completion.0.tool_calls.0.arguments": '{"city": "Oslo"}'}
    spans = [
        SpanSpec("weather.workflow", root, "", 0, 900, {"traceloop.span.kind": "workflow",
                                                        "traceloop.entity.input": '{"inputs": {"city": "Oslo"}}',
                                                        "traceloop.entity.output": '{"outputs": "4 degrees"}',
                                                        "path": "C:\\dir\\new\tfile", "session.id": "s\\1"}),
        SpanSpec("openai.chat", k.ollm_llm, root, 100, 700, ol, kind=Span.SPAN_KIND_CLIENT),
    ]
    k.requests.append(request(k.openllmetry, spans, t0 + 120 * S, "ollm-svc").SerializeToString())

    # 4. An error trace: 3 s, a 429 on the chat call, "refund" in the prompt; same session as 1.
    k.error, root, k.error_span = hexid(rnd, 16), hexid(rnd, 8), hexid(rnd, 8)
    spans = [
        SpanSpec("agent run", root, "", 0, 3000, {"session.id": "sess-1", "user.id": "u1",
                                                 "input.value": "I want a refund"}, error="RateLimitError"),
        SpanSpec("chat gpt-4o", k.error_span, root, 100, 2800, {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
            "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "I want a refund for order 7"}]}]},
            error="Error code: 429", kind=Span.SPAN_KIND_CLIENT,
            events=[("exception", 2900, {"exception.type": "openai.RateLimitError", "exception.message": "Rate limit reached",
                                          "exception.stacktrace": "Traceback (most recent call last):\n  File \"a.py\"\nRateLimitError"})]),
    ]
    k.requests.append(request(k.error, spans, t0 + 180 * S, "checkout").SerializeToString())

    # 5. Hostile: HTML everywhere, javascript: links, SVG with script, data:text/html, a huge value.
    k.xss, root, k.xss_span = hexid(rnd, 16), hexid(rnd, 8), hexid(rnd, 8)
    hostile_msgs = [{"role": "user", "parts": [
        {"type": "text", "content": XSS_SCRIPT + XSS_IMG + '<div hx-get="/traces" hx-trigger="load">htmx</div>'},
        {"type": "uri", "modality": "image", "uri": "javascript:window.__xss=4"},
        {"type": "uri", "modality": "image", "uri": XSS_SVG},
        {"type": "uri", "modality": "file", "uri": "data:text/html;base64,PHNjcmlwdD53aW5kb3cuX194c3M9NTwvc2NyaXB0Pg=="},
        {"type": "uri", "modality": "file", "uri": "javascript:alert(6)"},
    ]}]
    spans = [
        SpanSpec(XSS_IMG, root, "", 0, 500, {"session.id": XSS_SCRIPT, "user.id": XSS_IMG, "output.value": XSS_SEARCH}),
        SpanSpec("chat " + XSS_SCRIPT, k.xss_span, root, 10, 400, {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": XSS_SCRIPT,
            "gen_ai.input.messages": hostile_msgs,
            "gen_ai.output.messages": [{"role": XSS_IMG, "parts": [{"type": "text", "content": "[click](javascript:alert(7))"}]}],
            "<b onmouseover=\"window.__xss=8\">key</b>": XSS_IMG,
            "huge.value": "A" * HUGE_LEN + "THE-END",
            "link": "javascript:window.__xss=9",
        }, kind=Span.SPAN_KIND_CLIENT),
    ]
    k.requests.append(request(k.xss, spans, t0 + 240 * S, "evil<script>svc</script>").SerializeToString())
    return k


def insert(store, requests: list[bytes]) -> None:
    """Insert serialized requests as the collector does (ClickHouse decodes them)."""
    from tracelake.store.otlp import udf_statements
    from tracelake.store.otlp import length_delimited

    # The decode SQL may rely on SQL functions the collector creates at start; create them too.
    for stmt in udf_statements():
        store.execute(stmt)
    store.insert_otlp("otel_traces", length_delimited(requests))
