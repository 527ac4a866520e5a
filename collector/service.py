"""The collector's core, shared by the HTTP and gRPC receivers: decode, queue, commit, ack."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from tracelake.collector.batcher import Batcher
from tracelake.collector.config import CollectorConfig
from tracelake.collector.decode import Decoded
from tracelake.collector.errors import Backpressure
from tracelake.collector.metrics import CollectorMetrics
from tracelake.store.base import Store
from tracelake.store.otlp import install_functions

log = logging.getLogger(__name__)

SPAN_TABLE = "otel_traces"

# Rewrites a validated request body before it is queued (attachment extraction); may raise an
# IngestError (tracelake.collector.errors) to refuse the request.
BodyHook = Callable[[bytes], bytes]


@dataclass(frozen=True)
class Accepted:
    """A request queued for commit; ``future`` resolves once its spans are in ClickHouse."""

    future: Future | None  # None when nothing was left to insert
    decoded: Decoded


class Collector:
    def __init__(self, store: Store, config: CollectorConfig, body_hook: BodyHook | None = None) -> None:
        self.store = store
        self.config = config
        self.body_hook = body_hook
        # A hook may tell cheaply whether it will do I/O on a body (the extractor's media scan).
        self._hook_has_work: Callable[[bytes], bool] | None = getattr(body_hook, "has_run", None)
        install_functions(store)  # idempotent; the INSERT's SELECT calls them
        batch = config.batch
        self.batcher = Batcher(
            lambda stream: store.insert_otlp(SPAN_TABLE, stream),
            max_batch_spans=batch.max_batch_spans, linger_s=batch.linger_s,
            max_queue_spans=batch.max_queue_spans, max_queue_bytes=batch.max_queue_bytes,
            writers=batch.writers, on_batch=self._on_batch)
        self.metrics = CollectorMetrics(lambda: self.batcher.pending_spans, lambda: self.batcher.pending_bytes,
                                        lambda: 1.0 if self.batcher.healthy else 0.0)
        self._stop = threading.Event()
        self._prober = threading.Thread(target=self._probe_store, name="tracelake-store-probe", daemon=True)

    def start(self) -> None:
        self.batcher.start()
        self._prober.start()

    def stop(self, timeout: float = 60.0) -> bool:
        """Commit everything already accepted, then stop. True when nothing was left behind."""
        self._stop.set()
        drained = self.batcher.close(timeout)
        if not drained:
            log.error("shutdown timed out with %d spans uncommitted", self.batcher.pending_spans)
        return drained

    def accept(self, decoded: Decoded, protocol: str) -> Accepted:
        """Queue the valid spans of a request. Raises Backpressure (retry later)."""
        if decoded.rejected:
            self.metrics.rejected.labels(protocol).inc(decoded.rejected)
        if not decoded.accepted:
            return Accepted(None, decoded)
        body = self.body_hook(decoded.body) if self.body_hook else decoded.body
        try:
            future = self.batcher.submit(body, decoded.accepted)
        except Backpressure as exc:
            self.metrics.refused.labels(protocol, str(exc)).inc(decoded.accepted)
            raise
        return Accepted(future, decoded)

    def may_carry_media(self, decoded: Decoded) -> bool:
        """True when the body hook will do real work (I/O) on this request."""
        return bool(decoded.accepted and self._hook_has_work is not None and self._hook_has_work(decoded.body))

    def committed(self, accepted: Accepted, protocol: str) -> None:
        self.metrics.accepted.labels(protocol).inc(accepted.decoded.accepted)

    def _on_batch(self, spans: int, seconds: float, ok: bool) -> None:
        self.metrics.on_batch(spans, seconds, ok)

    def _probe_store(self) -> None:
        # After a failed INSERT the collector refuses new work; this notices when the store is back.
        while not self._stop.wait(1.0):
            if not self.batcher.healthy and self.store.ping():
                log.info("store reachable again")
                self.batcher.mark_healthy()


__all__ = ["Accepted", "Backpressure", "Collector", "SPAN_TABLE"]
