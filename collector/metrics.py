"""Prometheus metrics of one collector (its own registry, so tests can run several)."""
from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CollectorMetrics", "CONTENT_TYPE_LATEST"]


class CollectorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("tracelake_otlp_requests", "OTLP export requests by protocol and outcome",
                                ["protocol", "outcome"], registry=r)
        self.accepted = Counter("tracelake_spans_accepted", "Spans acked (durable in the spool, or committed in "
                                "ClickHouse in ack-after-commit mode)", ["protocol"], registry=r)
        self.rejected = Counter("tracelake_spans_rejected", "Invalid spans refused through partial success",
                                ["protocol"], registry=r)
        self.refused = Counter("tracelake_spans_refused", "Spans answered 503/UNAVAILABLE (client retries)",
                               ["protocol", "reason"], registry=r)
        self.batch_spans = Histogram("tracelake_batch_spans", "Spans per INSERT",
                                     buckets=(512, 1024, 2048, 4096, 8192, 16384, 32768, 65536), registry=r)
        self.insert_seconds = Histogram("tracelake_insert_seconds", "Duration of one batch INSERT",
                                        buckets=(.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10), registry=r)
        self.insert_failures = Counter("tracelake_insert_failures", "Batch INSERTs that failed", registry=r)

    # -- ack after commit ----------------------------------------------------------------------

    def watch_batcher(self, batcher: Any) -> None:
        r = self.registry
        Gauge("tracelake_queue_spans", "Spans accepted but not yet committed",
              registry=r).set_function(lambda: batcher.pending_spans)
        Gauge("tracelake_queue_bytes", "Bytes accepted but not yet committed",
              registry=r).set_function(lambda: batcher.pending_bytes)
        Gauge("tracelake_store_up", "1 when the last INSERT or probe succeeded",
              registry=r).set_function(lambda: 1.0 if batcher.healthy else 0.0)

    # -- spool ---------------------------------------------------------------------------------

    def watch_spool(self, spool: Any, loaders: Any) -> None:
        r = self.registry
        Gauge("tracelake_queue_spans", "Spans acked but not yet loaded (as far as this process knows)",
              registry=r).set_function(lambda: spool.spans)
        Gauge("tracelake_queue_bytes", "Spool bytes acked but not yet loaded", registry=r).set_function(lambda: spool.bytes)
        Gauge("tracelake_store_up", "1 when the last segment INSERT succeeded",
              registry=r).set_function(lambda: 1.0 if loaders.healthy else 0.0)
        Gauge("tracelake_spool_bytes", "Bytes in the spool (open and sealed segments not loaded yet)",
              registry=r).set_function(lambda: spool.bytes)
        Gauge("tracelake_spool_max_bytes", "Spool size past which requests are refused",
              registry=r).set_function(lambda: spool.max_bytes)
        Gauge("tracelake_spool_segments", "Segments not loaded yet", registry=r).set_function(spool.unloaded_segments)
        Gauge("tracelake_spool_oldest_unloaded_age_seconds", "Age of the oldest acked data not yet in ClickHouse",
              registry=r).set_function(spool.oldest_unloaded_age)
        Gauge("tracelake_spool_corrupt_segments", "Segments moved to corrupt/ at start (not loaded)",
              registry=r).set_function(lambda: spool.stats.corrupt_segments)
        Gauge("tracelake_spool_torn_bytes", "Bytes cut from torn segment tails at start (never acked)",
              registry=r).set_function(lambda: spool.stats.torn_bytes)
        Gauge("tracelake_spool_write_errors", "Appends that failed (disk full, I/O error)",
              registry=r).set_function(lambda: spool.stats.write_errors)
        self.sync_seconds = Histogram("tracelake_spool_fsync_seconds", "Duration of one spool fdatasync",
                                      buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, 1), registry=r)
        self.sync_records = Histogram("tracelake_spool_fsync_requests", "Requests made durable by one fdatasync",
                                      buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.load_lag = Histogram("tracelake_spool_load_lag_seconds",
                                  "From a segment's first ack until its INSERT returned (upper bound of ack-to-visible)",
                                  buckets=(.25, .5, 1, 2, 5, 10, 30, 60, 300, 3600), registry=r)

    def on_sync(self, records: int, seconds: float) -> None:
        self.sync_seconds.observe(seconds)
        self.sync_records.observe(records)

    def on_loaded(self, segment: Any) -> None:
        self.load_lag.observe(max(0.0, time.time() - segment.created))

    def on_batch(self, spans: int, seconds: float, ok: bool) -> None:
        self.batch_spans.observe(spans)
        self.insert_seconds.observe(seconds)
        if not ok:
            self.insert_failures.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
