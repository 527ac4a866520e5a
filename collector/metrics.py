"""Prometheus metrics of one collector (its own registry, so tests can run several)."""
from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CollectorMetrics", "CONTENT_TYPE_LATEST"]


class CollectorMetrics:
    def __init__(self, queue_spans: Callable[[], float], queue_bytes: Callable[[], float],
                 store_up: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("tracelake_otlp_requests", "OTLP export requests by protocol and outcome",
                                ["protocol", "outcome"], registry=r)
        self.accepted = Counter("tracelake_spans_accepted", "Spans committed to ClickHouse and acked",
                                ["protocol"], registry=r)
        self.rejected = Counter("tracelake_spans_rejected", "Invalid spans refused through partial success",
                                ["protocol"], registry=r)
        self.refused = Counter("tracelake_spans_refused", "Spans answered 503/UNAVAILABLE (client retries)",
                               ["protocol", "reason"], registry=r)
        self.batch_spans = Histogram("tracelake_batch_spans", "Spans per INSERT",
                                     buckets=(512, 1024, 2048, 4096, 8192, 16384, 32768, 65536), registry=r)
        self.insert_seconds = Histogram("tracelake_insert_seconds", "Duration of one batch INSERT",
                                        buckets=(.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10), registry=r)
        self.insert_failures = Counter("tracelake_insert_failures", "Batch INSERTs that failed", registry=r)
        Gauge("tracelake_queue_spans", "Spans accepted but not yet committed", registry=r).set_function(queue_spans)
        Gauge("tracelake_queue_bytes", "Bytes accepted but not yet committed", registry=r).set_function(queue_bytes)
        Gauge("tracelake_store_up", "1 when the last INSERT or probe succeeded", registry=r).set_function(store_up)

    def on_batch(self, spans: int, seconds: float, ok: bool) -> None:
        self.batch_spans.observe(spans)
        self.insert_seconds.observe(seconds)
        if not ok:
            self.insert_failures.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
