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

from tracelake.collector.batcher import Backpressure
from tracelake.collector.decode import BadRequest, decode_protobuf
from tracelake.collector.service import Collector

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


def _retry_trailer(seconds: int) -> tuple[tuple[str, bytes], ...]:
    info = error_details_pb2.RetryInfo(retry_delay=Duration(seconds=seconds))
    return (("google.rpc.retryinfo-bin", info.SerializeToString()),)


def _handler(collector: Collector):
    settings = collector.settings
    metrics = collector.metrics

    def export(body: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            decoded = decode_protobuf(body)
            accepted = collector.accept(decoded, "grpc")
        except BadRequest as exc:
            metrics.requests.labels("grpc", "bad_request").inc()
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Backpressure as exc:
            metrics.requests.labels("grpc", "backpressure").inc()
            context.set_trailing_metadata(_retry_trailer(settings.retry_after_s))
            context.abort(grpc.StatusCode.UNAVAILABLE, f"try again later: {exc}")
        except Exception as exc:  # a refusal from the body hook (attachments)
            if getattr(exc, "http_status", None) is None:
                raise
            metrics.requests.labels("grpc", "refused").inc()
            if exc.http_status == 503:  # transient (object store down): tell the exporter when to retry
                context.set_trailing_metadata(_retry_trailer(settings.retry_after_s))
            context.abort(getattr(exc, "grpc_status", grpc.StatusCode.INVALID_ARGUMENT), str(exc))
        if accepted.future is not None:
            try:
                accepted.future.result(timeout=settings.ack_timeout_s)
            except Exception as exc:  # not known to be stored: the client retries
                metrics.requests.labels("grpc", "store_error").inc()
                context.set_trailing_metadata(_retry_trailer(settings.retry_after_s))
                context.abort(grpc.StatusCode.UNAVAILABLE, f"store error: {exc}")
            collector.committed(accepted, "grpc")
        reply = ExportTraceServiceResponse()
        if decoded.rejected:
            reply.partial_success.rejected_spans = decoded.rejected
            reply.partial_success.error_message = decoded.error
        metrics.requests.labels("grpc", "partial" if decoded.rejected else "ok").inc()
        return reply.SerializeToString()

    return grpc.method_handlers_generic_handler(SERVICE, {
        "Export": grpc.unary_unary_rpc_method_handler(export),  # no (de)serializers: raw bytes
    })


def start_grpc(collector: Collector, host: str, port: int, workers: int = 256) -> tuple[grpc.Server, int]:
    """Start the server; returns it and the bound port (useful when ``port`` is 0).

    Each call holds its worker thread until its spans are committed, so ``workers`` is how many
    exporters can have a request in flight at once; the threads mostly sleep, and bigger group
    commits need many requests in flight (measured: 32 threads capped a 64-client run at 32).
    """
    limit = collector.settings.max_request_bytes
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otlp-grpc"),
                         options=[("grpc.max_receive_message_length", limit)])
    server.add_generic_rpc_handlers((_handler(collector),))
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen for OTLP/gRPC on {host}:{port}")
    server.start()
    return server, bound
