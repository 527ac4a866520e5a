"""Split export batches by size, so spans carrying images do not exceed the collector's limit.

The batch processor groups spans by count; one batch of spans with multi-megabyte blobs could
otherwise be rejected whole, taking small unrelated spans down with it.
"""
from __future__ import annotations

from typing import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

DEFAULT_MAX_REQUEST_BYTES = 8 * 1024 * 1024


def estimate(span: ReadableSpan) -> int:
    """Rough encoded size: strings dominate; a fixed allowance covers ids, times and keys."""
    size = 512
    for key, value in (span.attributes or {}).items():
        size += len(key) + (len(value) if isinstance(value, str) else 16)
    for event in span.events:
        size += 64 + sum(len(v) if isinstance(v, str) else 16 for v in (event.attributes or {}).values())
    return size


class SizeSplittingExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> None:
        self._inner = inner
        self._max = max_request_bytes
        self._stopped = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._stopped:  # aborted at shutdown: drop quietly, the warning was given once
            return SpanExportResult.FAILURE
        result = SpanExportResult.SUCCESS
        batch: list[ReadableSpan] = []
        size = 0
        for span in spans:
            n = estimate(span)
            if batch and size + n > self._max:
                if self._inner.export(batch) is not SpanExportResult.SUCCESS:
                    result = SpanExportResult.FAILURE
                batch, size = [], 0
            batch.append(span)
            size += n
        if batch and self._inner.export(batch) is not SpanExportResult.SUCCESS:
            result = SpanExportResult.FAILURE
        return result

    def shutdown(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._inner.shutdown()

    def abort(self) -> None:
        """Stop now, cutting short any retry back-off (so a dead collector cannot hold up exit)."""
        self.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)
