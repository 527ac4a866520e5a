"""Every refusal the collector can answer, mapped once to HTTP and gRPC.

A receiver never inspects an arbitrary exception: whatever refuses a request raises an
:class:`IngestError` subclass, which carries its HTTP status, its gRPC code, whether the client
should retry (then HTTP gets ``Retry-After`` and gRPC a ``RetryInfo`` trailer), and the metrics
outcome label. The reply builders live beside each protocol (``http.error_response``,
``grpc_server.error_reply``). The grpc codes are plain numbers so that the HTTP path (whose
``google.rpc.Status`` bodies carry them too) does not import grpcio.
"""
from __future__ import annotations

# google.rpc.Code numbers (the same in grpc.StatusCode and in google.rpc.Status bodies)
INVALID_ARGUMENT = 3
RESOURCE_EXHAUSTED = 8
UNAVAILABLE = 14


class IngestError(Exception):
    """A request the collector does not accept; subclasses say how each protocol answers."""

    http_status = 400
    grpc_code = INVALID_ARGUMENT
    retryable = False  # True: 503 + Retry-After / UNAVAILABLE + RetryInfo, exporters try again
    plain_text = False  # True: answer text/plain (the client's encoding is unknown or unusable)
    outcome = "refused"  # the tracelake_otlp_requests_total{outcome} label


class BadRequest(IngestError, ValueError):
    """The request as a whole cannot be read (HTTP 400 / INVALID_ARGUMENT, not retried)."""

    outcome = "bad_request"


class TooLarge(IngestError):
    """The body, before or after decompression, is over ``max_request_bytes`` (413)."""

    http_status = 413
    grpc_code = RESOURCE_EXHAUSTED
    outcome = "too_large"


class UnsupportedMediaType(IngestError):
    """A Content-Type other than protobuf or JSON (415; the body's encoding is unknown)."""

    http_status = 415
    plain_text = True
    outcome = "unsupported_media_type"


class UnsupportedEncoding(IngestError):
    """A Content-Encoding other than gzip, deflate or identity (415)."""

    http_status = 415
    plain_text = True
    outcome = "unsupported_encoding"


class Backpressure(IngestError, RuntimeError):
    """The queue or spool is full, the store is down, or the collector is stopping: retry later."""

    http_status = 503
    grpc_code = UNAVAILABLE
    retryable = True
    outcome = "backpressure"


class NotStored(IngestError):
    """Accepted but not known to be stored (the commit failed or timed out): retry; a duplicate
    is harmless (see docs/architecture.md)."""

    http_status = 503
    grpc_code = UNAVAILABLE
    retryable = True
    outcome = "store_error"


class MediaError(IngestError):
    """Base of the attachment extractor's refusals."""


class MediaRefused(MediaError):
    """The request's media exceed ``max_request_media_bytes``: 413 / RESOURCE_EXHAUSTED, not retried."""

    http_status = 413
    grpc_code = RESOURCE_EXHAUSTED


class MediaStoreUnavailable(MediaError):
    """The object store failed: 503 / UNAVAILABLE, so exporters retry the request later."""

    http_status = 503
    grpc_code = UNAVAILABLE
    retryable = True


ALL: tuple[type[IngestError], ...] = (BadRequest, TooLarge, UnsupportedMediaType, UnsupportedEncoding,
                                      Backpressure, NotStored, MediaRefused, MediaStoreUnavailable)
