"""Group commit: many OTLP requests, one INSERT, every request acked only after it committed.

Requests wait on a Future that the single writer thread resolves once the INSERT holding them
returns. The queue is bounded by spans and bytes (accepted but not yet committed); past either
bound :class:`Backpressure` is raised and the receivers answer 503 / UNAVAILABLE.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from tracelake.collector.errors import Backpressure
from tracelake.store.otlp import length_delimited

log = logging.getLogger(__name__)

__all__ = ["Backpressure", "Batcher"]


@dataclass
class _Item:
    body: bytes
    spans: int
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


class Batcher:
    def __init__(self, sink: Callable[[bytes], None], *, max_batch_spans: int, linger_s: float,
                 max_queue_spans: int, max_queue_bytes: int, writers: int = 1,
                 on_batch: Callable[[int, float, bool], None] | None = None) -> None:
        self._sink = sink
        self._max_batch_spans = max_batch_spans
        self._linger_s = linger_s
        self._max_queue_spans = max_queue_spans
        self._max_queue_bytes = max_queue_bytes
        self._on_batch = on_batch
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._pending_spans = 0  # queued + being inserted
        self._pending_bytes = 0
        self._closing = False
        self._healthy = True
        self._threads = [threading.Thread(target=self._run, name=f"tracelake-writer-{i}", daemon=True)
                         for i in range(writers)]

    @property
    def pending_spans(self) -> int:
        return self._pending_spans

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    @property
    def healthy(self) -> bool:
        """False after a failed INSERT, until one succeeds again."""
        return self._healthy

    def mark_healthy(self) -> None:
        self._healthy = True

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, body: bytes, spans: int) -> Future:
        """Queue a request's spans; the Future completes when they are committed."""
        item = _Item(body, spans)
        with self._cond:
            if self._closing:
                raise Backpressure("shutting down")
            if not self._healthy:
                raise Backpressure("store unavailable")
            if self._pending_spans and (self._pending_spans + spans > self._max_queue_spans
                                        or self._pending_bytes + len(body) > self._max_queue_bytes):
                raise Backpressure("queue full")
            self._queue.append(item)
            self._pending_spans += spans
            self._pending_bytes += len(body)
            self._cond.notify()
        return item.future

    def close(self, timeout: float | None = None) -> bool:
        """Stop taking requests, commit what was accepted, stop the writer. True when drained."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            if thread.is_alive():
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads) and not self._queue

    def _take(self) -> list[_Item] | None:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if not self._queue:
                return None  # closing and drained
            # Linger briefly so requests arriving together share one INSERT.
            deadline = self._queue[0].enqueued + self._linger_s
            while (not self._closing and sum(i.spans for i in self._queue) < self._max_batch_spans
                   and (wait := deadline - time.monotonic()) > 0):
                self._cond.wait(wait)
            batch, spans = [], 0
            while self._queue and (not batch or spans + self._queue[0].spans <= self._max_batch_spans):
                item = self._queue.popleft()
                batch.append(item)
                spans += item.spans
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            spans = sum(i.spans for i in batch)
            started = time.monotonic()
            try:
                self._sink(length_delimited([i.body for i in batch]))
            except Exception as exc:  # the store's error goes to every waiting request
                log.warning("insert of %d spans failed: %s", spans, exc)
                self._healthy = False
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                ok = False
            else:
                self._healthy = True
                for item in batch:
                    if not item.future.done():
                        item.future.set_result(None)
                ok = True
            finally:
                with self._cond:
                    self._pending_spans -= spans
                    self._pending_bytes -= sum(len(i.body) for i in batch)
            if self._on_batch:
                self._on_batch(spans, time.monotonic() - started, ok)
