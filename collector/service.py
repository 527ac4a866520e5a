"""The collector's core, shared by the HTTP and gRPC receivers: decode, hand over, ack.

Two modes (docs/architecture.md): ``spool`` acks once a request is durable in the collector's
spool and loads it into ClickHouse behind; ``commit`` acks only after the INSERT holding it.
"""
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
from tracelake.collector.spool import Sealed
from tracelake.collector.spooled import SpooledIngest
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
        self.metrics = CollectorMetrics()
        self.spooled: SpooledIngest | None = None
        self.batcher: Batcher | None = None
        if config.spool.directory is not None:  # ack once durable on disk, load behind
            self.spooled = SpooledIngest(store, SPAN_TABLE, config.spool, on_load=self._on_load,
                                         on_sync=self.metrics.on_sync)
            self.metrics.watch_spool(self.spooled.spool, self.spooled.loaders)
            self._sink: Batcher | SpooledIngest = self.spooled
        else:  # ack after the INSERT holding the request returned
            install_functions(store)  # idempotent; the INSERT's SELECT calls them
            batch = config.batch
            self.batcher = Batcher(
                lambda stream: store.insert_otlp(SPAN_TABLE, stream),
                max_batch_spans=batch.max_batch_spans, linger_s=batch.linger_s,
                max_queue_spans=batch.max_queue_spans, max_queue_bytes=batch.max_queue_bytes,
                writers=batch.writers, on_batch=self._on_batch)
            self.metrics.watch_batcher(self.batcher)
            self._sink = self.batcher
        self._stop = threading.Event()
        self._prober = threading.Thread(target=self._probe_store, name="tracelake-store-probe", daemon=True)

    @property
    def mode(self) -> str:
        return "spool" if self.spooled is not None else "commit"

    def start(self) -> None:
        self._sink.start()
        if self.batcher is not None:
            self._prober.start()

    def stop(self, timeout: float = 60.0) -> bool:
        """Commit (or, in spool mode, seal and load) everything already acked, then stop.

        True when nothing was left behind; in spool mode what is left is durable on disk."""
        self._stop.set()
        drained = self._sink.close(timeout)
        if not drained and self.batcher is not None:
            log.error("shutdown timed out with %d spans uncommitted", self.batcher.pending_spans)
        return drained

    def ready(self) -> tuple[bool, str]:
        """For /readyz: can this collector take requests now, and why (not)."""
        if self.spooled is not None:
            return self.spooled.ready()
        if self.batcher is not None and self.batcher.healthy and self.store.ping():
            return True, "ready"
        return False, "store unreachable"

    def accept(self, decoded: Decoded, protocol: str) -> Accepted:
        """Queue the valid spans of a request. Raises Backpressure (retry later)."""
        if decoded.rejected:
            self.metrics.rejected.labels(protocol).inc(decoded.rejected)
        if not decoded.accepted:
            return Accepted(None, decoded)
        body = self.body_hook(decoded.body) if self.body_hook else decoded.body
        try:
            future = self._sink.submit(body, decoded.accepted)
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

    def _on_load(self, segment: Sealed, seconds: float, ok: bool) -> None:
        self.metrics.on_batch(segment.spans, seconds, ok)
        if ok:
            self.metrics.on_loaded(segment)

    def _probe_store(self) -> None:
        # After a failed INSERT the collector refuses new work; this notices when the store is back.
        assert self.batcher is not None
        while not self._stop.wait(1.0):
            if not self.batcher.healthy and self.store.ping():
                log.info("store reachable again")
                self.batcher.mark_healthy()


__all__ = ["Accepted", "Backpressure", "Collector", "SPAN_TABLE"]
