"""A minimal OTLP/HTTP trace receiver for tests: decodes what the SDK exports.

Tests assert on these decoded spans, exactly as they went over the wire, rather than on
SDK internals. The real collector is built elsewhere and is not needed here.
"""
from __future__ import annotations

import gzip
import json
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan, Status


@dataclass
class Event:
    name: str
    attributes: dict[str, Any]


@dataclass
class ExportedSpan:
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str | None
    attributes: dict[str, Any]
    events: list[Event]
    status: str
    status_message: str
    scope: str
    resource: dict[str, Any]
    start_ns: int
    end_ns: int
    request_headers: dict[str, str] = field(default_factory=dict)

    def json(self, key: str) -> Any:
        """Decode a JSON-string attribute (messages, inputs, outputs)."""
        return json.loads(self.attributes[key])

    def __repr__(self) -> str:  # short, for readable assertion failures
        return f"<span {self.name!r} {self.span_id[:6]} parent={str(self.parent_id)[:6]} scope={self.scope}>"


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


_KINDS = {k: n.removeprefix("SPAN_KIND_") for n, k in PbSpan.SpanKind.items()}
_STATUS = {k: n.removeprefix("STATUS_CODE_") for n, k in Status.StatusCode.items()}


def decode(body: bytes, headers: dict[str, str] | None = None) -> list[ExportedSpan]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for rs in request.resource_spans:
        resource = _attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                spans.append(
                    ExportedSpan(
                        name=s.name,
                        kind=_KINDS[s.kind],
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex() or None,
                        attributes=_attrs(s.attributes),
                        events=[Event(e.name, _attrs(e.attributes)) for e in s.events],
                        status=_STATUS[s.status.code],
                        status_message=s.status.message,
                        scope=ss.scope.name,
                        resource=resource,
                        start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano,
                        request_headers=dict(headers or {}),
                    )
                )
    return spans


class OTLPReceiver:
    """Collects spans POSTed to /v1/traces on 127.0.0.1 at a free port."""

    def __init__(self) -> None:
        self._spans: list[ExportedSpan] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="otlp-receiver", daemon=True)

    @property
    def endpoint(self) -> str:
        """Base URL, as OTEL_EXPORTER_OTLP_ENDPOINT takes it."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> OTLPReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()

    @property
    def spans(self) -> list[ExportedSpan]:
        with self._lock:
            return list(self._spans)

    def wait_for(self, predicate: Callable[[list[ExportedSpan]], bool], timeout: float = 10.0) -> list[ExportedSpan]:
        """Wait until the spans received satisfy predicate; return them either way."""
        deadline = time.monotonic() + timeout
        while not predicate(spans := self.spans) and time.monotonic() < deadline:
            time.sleep(0.02)
        return spans

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                encoding = (self.headers.get("content-encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if self.path.rstrip("/").endswith("/v1/traces"):
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    spans = decode(body, headers)
                    with receiver._lock:
                        receiver._spans.extend(spans)
                    self._reply(200, ExportTraceServiceResponse().SerializeToString())
                else:
                    self._reply(404, b"")

            def _reply(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


class SpanSet:
    """Query helpers over exported spans, for asserting on tree shape."""

    def __init__(self, spans: list[ExportedSpan]) -> None:
        self.spans = spans

    def __iter__(self) -> Any:
        return iter(self.spans)

    def __len__(self) -> int:
        return len(self.spans)

    def named(self, name: str) -> list[ExportedSpan]:
        return [s for s in self.spans if s.name == name]

    def one(self, name: str) -> ExportedSpan:
        found = self.named(name)
        assert len(found) == 1, f"expected one span {name!r}, got {found} among {self.spans}"
        return found[0]

    def from_scope(self, scope: str) -> list[ExportedSpan]:
        return [s for s in self.spans if s.scope == f"tracelake.sdk.{scope}"]

    def children(self, parent: ExportedSpan) -> list[ExportedSpan]:
        return sorted((s for s in self.spans if s.parent_id == parent.span_id), key=lambda s: s.start_ns)

    def parent(self, span: ExportedSpan) -> ExportedSpan | None:
        return next((s for s in self.spans if s.span_id == span.parent_id), None)

    def roots(self) -> list[ExportedSpan]:
        ids = {s.span_id for s in self.spans}
        return [s for s in self.spans if s.parent_id not in ids]

    def tree(self) -> str:
        """The span tree as indented names, for readable shape assertions."""
        lines: list[str] = []

        def walk(span: ExportedSpan, depth: int) -> None:
            lines.append("  " * depth + span.name)
            for child in self.children(span):
                walk(child, depth + 1)

        for root in sorted(self.roots(), key=lambda s: s.start_ns):
            walk(root, 0)
        return "\n".join(lines)
