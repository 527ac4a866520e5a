"""OTLP/gRPC receiver (TraceService/Export) on grpcio.

Raw request bytes reach the handler (no generated servicer), so the body ClickHouse reads is
the one the client sent. Backpressure is UNAVAILABLE with RetryInfo in the
``google.rpc.retryinfo-bin`` trailer, which OTel exporters honour.
"""
from __future__ import annotations

from concurrent import futures

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tracelake.auth.ingest import stamp
from tracelake.collector.decode import decode_protobuf
from tracelake.collector.errors import IngestError, NotStored
from tracelake.collector.service import Collector

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


def error_reply(exc: IngestError, retry_after_s: int) -> tuple[grpc.StatusCode, str, tuple[tuple[str, bytes], ...]]:
    """The one gRPC answer for every refusal: status code, details and trailing metadata
    (``RetryInfo`` in ``google.rpc.retryinfo-bin`` when retryable; OTel exporters honour it)."""
    code = _CODES[exc.grpc_code]
    if not exc.retryable:
        return code, str(exc), ()
    info = error_details_pb2.RetryInfo(retry_delay=Duration(seconds=retry_after_s))
    return code, str(exc), (("google.rpc.retryinfo-bin", info.SerializeToString()),)


_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _handler(collector: Collector):
    config = collector.config.receiver
    metrics = collector.metrics

    def export(body: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            decoded = stamp(decode_protobuf(body))
            accepted = collector.accept(decoded, "grpc")
            if accepted.future is not None:
                try:
                    accepted.future.result(timeout=config.ack_timeout_s)
                except IngestError:
                    raise
                except Exception as exc:  # not known to be stored (timeout included): the client retries
                    raise NotStored(f"store error: {exc!r}") from exc
                collector.committed(accepted, "grpc")
        except IngestError as exc:
            metrics.requests.labels("grpc", exc.outcome).inc()
            code, details, trailers = error_reply(exc, config.retry_after_s)
            if trailers:
                context.set_trailing_metadata(trailers)
            context.abort(code, details)
        reply = ExportTraceServiceResponse()
        if decoded.rejected:
            reply.partial_success.rejected_spans = decoded.rejected
            reply.partial_success.error_message = decoded.error
        metrics.requests.labels("grpc", "partial" if decoded.rejected else "ok").inc()
        return reply.SerializeToString()

    return grpc.method_handlers_generic_handler(SERVICE, {
        "Export": grpc.unary_unary_rpc_method_handler(export),  # no (de)serializers: raw bytes
    })


def start_grpc(collector: Collector, host: str, port: int, workers: int = 256,
               interceptors: tuple = ()) -> tuple[grpc.Server, int]:
    """Start the server; returns it and the bound port (useful when ``port`` is 0).

    Each call holds its worker thread until its spans are committed, so ``workers`` is how many
    exporters can have a request in flight at once; the threads mostly sleep, and bigger group
    commits need many requests in flight (measured: 32 threads capped a 64-client run at 32).
    """
    limit = collector.config.receiver.max_request_bytes
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otlp-grpc"),
                         options=[("grpc.max_receive_message_length", limit)], interceptors=interceptors)
    server.add_generic_rpc_handlers((_handler(collector),))
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen for OTLP/gRPC on {host}:{port}")
    server.start()
    return server, bound
