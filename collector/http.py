"""OTLP/HTTP receiver: ``POST /v1/traces``, protobuf or JSON, optionally gzip/deflate.

The reply is sent only after the request's spans are committed in ClickHouse. Status codes follow
the OTLP spec: 400 malformed (not retried), 413 too large, 415 unknown encoding, 503 +
Retry-After when the queue is full or the store is down (retried by exporters).
"""
from __future__ import annotations

import asyncio
import zlib

import orjson
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tracelake.auth.ingest import stamp
from tracelake.collector.decode import BadRequest, decode_json, decode_protobuf
from tracelake.collector.errors import IngestError, NotStored, TooLarge, UnsupportedEncoding, UnsupportedMediaType
from tracelake.collector.service import Collector

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_PROTOBUF_TYPES = {PROTOBUF, "application/protobuf", "application/vnd.google.protobuf"}


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"body of {declared} bytes exceeds the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Inflate with a cap, so a small gzip bomb cannot become a huge body."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise UnsupportedEncoding(f"unsupported Content-Encoding {encoding!r} (use gzip, deflate or none)")
    inflater = zlib.decompressobj(wbits=47 if encoding == "gzip" else 15)  # 47: gzip or zlib header
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"body is not valid {encoding}: {exc}") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise TooLarge(f"decompressed body exceeds the limit of {limit} bytes")
    return out


def error_response(exc: IngestError, as_json: bool, retry_after_s: int) -> Response:
    """The one HTTP reply for every refusal: its status, a ``google.rpc.Status`` body in the
    client's encoding (plain text when that is unknown), ``Retry-After`` when retryable."""
    headers = {"Retry-After": str(retry_after_s)} if exc.retryable else None
    message = str(exc)
    if exc.plain_text:
        return PlainTextResponse(f"{message}\n", exc.http_status, headers=headers)
    if as_json:
        body = orjson.dumps({"code": exc.grpc_code, "message": message})
    else:
        body = status_pb2.Status(code=exc.grpc_code, message=message).SerializeToString()
    return Response(body, status_code=exc.http_status, media_type=JSON if as_json else PROTOBUF, headers=headers)


def _success(rejected: int, error: str, as_json: bool) -> Response:
    if as_json:
        doc = {"partialSuccess": {"rejectedSpans": str(rejected), "errorMessage": error}} if rejected else {}
        return Response(orjson.dumps(doc), media_type=JSON)
    reply = ExportTraceServiceResponse()
    if rejected:
        reply.partial_success.rejected_spans = rejected
        reply.partial_success.error_message = error
    return Response(reply.SerializeToString(), media_type=PROTOBUF)


def create_otlp_app(collector: Collector) -> Starlette:
    config = collector.config.receiver

    async def export(request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        as_json = ctype == JSON
        try:
            if not as_json and ctype not in _PROTOBUF_TYPES:
                raise UnsupportedMediaType(f"unsupported Content-Type {ctype!r}: use {PROTOBUF} or {JSON}")
            raw = await _read_capped(request, config.max_request_bytes)
            body = _decompress(raw, request.headers.get("content-encoding", ""), config.max_request_bytes)
            decoded = stamp(decode_json(body) if as_json else decode_protobuf(body), request)
            if collector.may_carry_media(decoded):  # extraction does I/O: keep it off the event loop
                accepted = await asyncio.to_thread(collector.accept, decoded, "http")
            else:
                accepted = collector.accept(decoded, "http")
            if accepted.future is not None:
                try:
                    # shield: giving up on the wait must not cancel the spans' commit.
                    await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(accepted.future)),
                                           config.ack_timeout_s)
                except asyncio.TimeoutError:
                    raise NotStored("commit timed out") from None
                except IngestError:
                    raise
                except Exception as exc:  # not known to be stored: the client retries (duplicates merge)
                    raise NotStored(f"store error: {exc}") from exc
                collector.committed(accepted, "http")
        except IngestError as exc:
            collector.metrics.requests.labels("http", exc.outcome).inc()
            return error_response(exc, as_json, config.retry_after_s)
        collector.metrics.requests.labels("http", "partial" if decoded.rejected else "ok").inc()
        return _success(decoded.rejected, decoded.error, as_json)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(_: Request) -> Response:
        ready, why = await asyncio.to_thread(collector.ready)
        return PlainTextResponse(f"{why}\n", 200 if ready else 503)

    async def metrics_endpoint(_: Request) -> Response:
        from tracelake.collector.metrics import CONTENT_TYPE_LATEST

        return Response(collector.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[
        Route("/v1/traces", export, methods=["POST"]),
        Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics_endpoint),
    ])
