"""Keys on the OTLP ports, checked before a request's body is read, and the key's project
stamped onto every ResourceSpans of the request.

* HTTP: :class:`OtlpAuthMiddleware` (pure ASGI) answers 401 (missing or wrong key) or 403 (a key
  without ingest rights) from the headers alone; the body is never received.
* gRPC: :class:`GrpcAuthInterceptor` does the same from the call's metadata (``UNAUTHENTICATED``,
  ``PERMISSION_DENIED``) before the message is decoded.
* A source with too many failed keys gets 429 / ``RESOURCE_EXHAUSTED`` (with Retry-After /
  ``RetryInfo``) without its keys being checked (:mod:`tracelake.auth.throttle`).
* :func:`stamp` (one call in each receiver, after decode) sets the resource attribute
  ``tracelake.auth.project`` to the key's project and removes any value of it the client sent;
  the ``Project`` column prefers it (migration 31), so a span's own ``tracelake.project`` claims
  are ignored once a key is involved. Without auth nothing is stamped.

Keys come in the standard OTel exporter header: ``authorization: Bearer <key>``
(``OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer <key>"``).
"""
from __future__ import annotations

import contextvars
import dataclasses
import logging
from typing import Any

import orjson
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracelake.auth.keys import KeyRecord, KeyRegistry, key_id
from tracelake.auth.throttle import (FailureThrottle, client_address, forwarded_client, grpc_peer_address,
                                     throttle_for, write_rows)
from tracelake.auth.roles import Perm, has
from tracelake.auth.schema import VERIFIED_PROJECT_ATTR
from tracelake.store.otlp import varint

log = logging.getLogger(__name__)

UNAUTHENTICATED = 16
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
OPEN_PATHS = ("/healthz", "/readyz")
# uvicorn's httptools parser does not cap header size; past this many bytes of headers: 431.
MAX_HEADER_BYTES = 32 * 1024


def headers_too_large(scope: dict) -> bool:
    return sum(len(k) + len(v) + 4 for k, v in scope.get("headers") or ()) > MAX_HEADER_BYTES


async def refuse_headers(send: Any) -> None:
    body = b"request headers too large\n"
    await send({"type": "http.response.start", "status": 431,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
SCOPE_KEY = "tracelake.auth.key"

# The key of the gRPC call being handled (set by the interceptor's wrapper, in the handler thread).
_GRPC_KEY: contextvars.ContextVar[KeyRecord | None] = contextvars.ContextVar("tracelake_grpc_key", default=None)


def bearer(value: str | None) -> str:
    """The key in an ``Authorization: Bearer <key>`` value ('' when absent or malformed)."""
    if not value or len(value) > 600:
        return ""
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def check(registry: KeyRegistry, header: str | None, perm: Perm | None) -> tuple[KeyRecord | None, int, str]:
    """(key, 0, '') when allowed; (None, 401|403, why) otherwise. The why names the key's public
    id at most, never the key. ``perm`` None: any valid key."""
    presented = bearer(header)
    if not presented:
        return None, 401, "missing API key: send 'authorization: Bearer <key>'"
    record = registry.resolve(presented)
    if record is None:
        return None, 401, "invalid or revoked API key"
    if perm is not None and not has(record.role, perm):
        return None, 403, f"key {record.key_id} (role {record.role.value}) may not {perm.value}"
    return record, 0, ""


# -- HTTP ------------------------------------------------------------------------------------------
def _throttle(registry: KeyRegistry, settings: Any) -> FailureThrottle:
    return throttle_for(registry.store, settings) if settings is not None else FailureThrottle(20, 20, 60.0)


class OtlpAuthMiddleware:
    """Pure ASGI: the receiver behind it only runs for a key with ingest rights."""

    def __init__(self, app: Any, registry: KeyRegistry, settings: Any = None) -> None:
        self.app = app
        self.registry = registry
        self.throttle = _throttle(registry, settings)
        self.trusted = list(getattr(settings, "auth_proxy_trusted", ()))

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and headers_too_large(scope):
            await refuse_headers(send)
            return
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw = headers.get(b"authorization", b"").decode("latin-1")
        # /v1/traces needs ingest rights; /metrics any valid key.
        perm = Perm.INGEST if scope.get("path") == "/v1/traces" else None
        source = client_address(scope, self.trusted)
        retry = self.throttle.refused(source) if raw else None
        record, status, why = (None, 429, "") if retry is not None else check(self.registry, raw, perm)
        if status == 401 and bearer(raw):
            retry = self.throttle.failed(source, key_id(bearer(raw)), "ingest-key")
        if retry is not None:
            status, why = 429, f"too many failed keys from your address or for this key id: retry in {retry} s"
        rows = self.throttle.take_rows()
        if rows:
            from starlette.concurrency import run_in_threadpool

            await run_in_threadpool(write_rows, self.registry.store, rows)
        if status:
            as_json = headers.get(b"content-type", b"").split(b";")[0].strip().lower() == b"application/json"
            code = {401: UNAUTHENTICATED, 429: RESOURCE_EXHAUSTED}.get(status, PERMISSION_DENIED)
            if as_json:
                body, ctype = orjson.dumps({"code": code, "message": why}), b"application/json"
            else:
                body, ctype = status_pb2.Status(code=code, message=why).SerializeToString(), b"application/x-protobuf"
            extra = [(b"www-authenticate", b'Bearer realm="tracelake"')] if status == 401 else []
            if status == 429:
                extra = [(b"retry-after", str(retry).encode())]
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
                                    (b"connection", b"close"), *extra]})
            await send({"type": "http.response.body", "body": body})
            return
        scope.setdefault("state", {})[SCOPE_KEY] = record
        await self.app(scope, receive, send)


# -- gRPC ------------------------------------------------------------------------------------------
def _abort_handler(code: Any, why: str) -> Any:
    import grpc

    def deny(_request: Any, context: Any) -> None:
        context.abort(code, why)

    return grpc.unary_unary_rpc_method_handler(deny)


class GrpcAuthInterceptor:
    """grpc.ServerInterceptor: refuses from metadata, before the request message is decoded. The
    check runs in the call's handler, where the peer's address is known (the throttle needs it)."""

    def __init__(self, registry: KeyRegistry, settings: Any = None) -> None:
        self.registry = registry
        self.throttle = _throttle(registry, settings)
        self.trusted = list(getattr(settings, "auth_proxy_trusted", ()))

    def _check(self, metadata: dict[str, Any], context: Any) -> KeyRecord:
        """The caller's key, or the call aborted (UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED)."""
        import grpc

        header = metadata.get("authorization")
        source = forwarded_client(grpc_peer_address(context.peer() or ""), metadata.get("x-forwarded-for", ""),
                                  self.trusted)
        retry = self.throttle.refused(source) if header else None
        record, status, why = (None, 429, "") if retry is not None else check(self.registry, header, Perm.INGEST)
        if status == 401 and bearer(header):
            retry = self.throttle.failed(source, key_id(bearer(header)), "ingest-key")
        rows = self.throttle.take_rows()
        if rows:
            write_rows(self.registry.store, rows)
        if retry is not None:
            from google.protobuf.duration_pb2 import Duration
            from google.rpc import error_details_pb2

            info = error_details_pb2.RetryInfo(retry_delay=Duration(seconds=retry))
            context.set_trailing_metadata((("google.rpc.retryinfo-bin", info.SerializeToString()),))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"too many failed keys from your address or for this key id: retry in {retry} s")
        if record is None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED if status == 401 else grpc.StatusCode.PERMISSION_DENIED, why)
        return record

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        metadata = dict(handler_call_details.invocation_metadata or ())
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            import grpc

            record, status, why = check(self.registry, metadata.get("authorization"), Perm.INGEST)
            if record is None:
                code = grpc.StatusCode.UNAUTHENTICATED if status == 401 else grpc.StatusCode.PERMISSION_DENIED
                return _abort_handler(code, why)
            return handler
        inner = handler.unary_unary

        def with_key(request: Any, context: Any) -> Any:
            token = _GRPC_KEY.set(self._check(metadata, context))
            try:
                return inner(request, context)
            finally:
                _GRPC_KEY.reset(token)

        return handler._replace(unary_unary=with_key)


def _as_server_interceptor(interceptor: GrpcAuthInterceptor) -> Any:
    import grpc

    class _Interceptor(grpc.ServerInterceptor):
        def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
            return interceptor.intercept_service(continuation, handler_call_details)

    return _Interceptor()


def grpc_interceptors(registry: KeyRegistry | None, settings: Any = None) -> tuple[Any, ...]:
    return () if registry is None else (_as_server_interceptor(GrpcAuthInterceptor(registry, settings)),)


# -- stamping --------------------------------------------------------------------------------------
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes, start: int, end: int):
    """(field number, wire type, start of the field's bytes, start of payload, end) per field."""
    pos = start
    while pos < end:
        field_start = pos
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, pos = _varint(buf, pos)
            payload = pos
        elif wire == 1:
            payload, pos = pos, pos + 8
        elif wire == 2:
            length, payload = _varint(buf, pos)
            pos = payload + length
        elif wire == 5:
            payload, pos = pos, pos + 4
        else:  # groups (3/4) are not used by OTLP: let the slow path handle them
            raise ValueError("unsupported wire type")
        if pos > end:
            raise ValueError("truncated field")
        yield number, wire, field_start, payload, pos


def _stamped_resource(resource: bytes, project: str) -> bytes:
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    message = Resource.FromString(resource)
    _set_project(message.attributes, project)
    return message.SerializeToString()


def _set_project(attrs, project: str) -> None:
    """The verified project as the one ``tracelake.auth.project`` attribute (client values removed)."""
    for i in range(len(attrs) - 1, -1, -1):
        if attrs[i].key == VERIFIED_PROJECT_ATTR:
            del attrs[i]
    kv = attrs.add()
    kv.key = VERIFIED_PROJECT_ATTR
    kv.value.string_value = project


def _stamp_wire(body: bytes, project: str) -> bytes:
    """Rewrite only each ResourceSpans' Resource; the spans' bytes are copied untouched (once, by
    the final join), so the cost hardly grows with the spans (a full parse + serialize of a
    512-span request took ~2 ms)."""
    view = memoryview(body)
    out: list[bytes | memoryview] = []
    for number, wire, field_start, payload, end in _fields(body, 0, len(body)):
        if number != 1 or wire != 2:
            out.append(view[field_start:end])
            continue
        resources, rest = [], []
        for n, w, fs, p, e in _fields(body, payload, end):
            if n == 1 and w == 2:
                resources.append(body[p:e])  # repeated occurrences merge, as protobuf parsers do
            else:
                rest.append(view[fs:e])
        resource = _stamped_resource(b"".join(resources), project)
        head = b"\x0a" + varint(len(resource))
        inner_len = len(head) + len(resource) + sum(len(r) for r in rest)
        out += [b"\x0a" + varint(inner_len), head, resource, *rest]
    return b"".join(out)


def stamp_body(body: bytes, project: str) -> bytes:
    """``body`` with ``tracelake.auth.project = project`` on every resource (client values removed)."""
    try:
        return _stamp_wire(body, project)
    except (ValueError, IndexError):
        return _stamp_slow(body, project)  # unusual encodings: a full parse handles whatever protobuf accepts


def _stamp_slow(body: bytes, project: str) -> bytes:
    request = ExportTraceServiceRequest.FromString(body)
    for rs in request.resource_spans:
        _set_project(rs.resource.attributes, project)
    return request.SerializeToString()


def _key_of(where: Any) -> KeyRecord | None:
    if where is None:
        return _GRPC_KEY.get()
    state = getattr(where, "scope", where).get("state") or {}
    return state.get(SCOPE_KEY)


def stamp(decoded: Any, where: Any = None) -> Any:
    """The receivers' one hook: ``decoded`` with its body stamped with the caller's project.

    ``where`` is the HTTP request (or its ASGI scope); None on gRPC. Without a key (auth off)
    ``decoded`` is returned as is. Admin keys (project ``*``) keep what the spans claim.
    """
    record = _key_of(where)
    if record is None or not isinstance(record, KeyRecord) or record.all_projects or not decoded.accepted:
        return decoded
    return dataclasses.replace(decoded, body=stamp_body(decoded.body, record.project))
