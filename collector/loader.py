"""Spool loaders: insert sealed segments into ClickHouse, delete them once the INSERT returned.

Each segment is one INSERT with its own ``insert_deduplication_token``, so an attempt repeated
after a failure, a timeout or a crash leaves the rows once. A failed INSERT keeps the segment at
the head of the queue and is retried with backoff while the spool keeps acking; the loaders are
what notices that the store is back.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from tracelake.collector.spool import Sealed

log = logging.getLogger(__name__)

_BACKOFF_MIN_S, _BACKOFF_MAX_S = 0.2, 5.0


class Loaders:
    def __init__(self, load: Callable[[Sealed], None], loaded: Callable[[Sealed], None], *, workers: int,
                 on_load: Callable[[Sealed, float, bool], None] | None = None,
                 on_idle: Callable[[], None] | None = None) -> None:
        self._load = load
        self._loaded = loaded
        self._on_load = on_load
        self._on_idle = on_idle
        self._workers = workers
        self._queue: deque[Sealed] = deque()
        self._busy = 0
        self._cond = threading.Condition()
        self._closing = False
        self._deadline: float | None = None
        self._healthy = True
        self._backoff = _BACKOFF_MIN_S
        self._threads = [threading.Thread(target=self._run, name=f"tracelake-loader-{i}", daemon=True)
                         for i in range(workers)]

    @property
    def healthy(self) -> bool:
        """False after a failed INSERT, until one succeeds."""
        return self._healthy

    def all_idle(self) -> bool:
        """True when no INSERT runs or waits. Sealing by age waits for this: on a busy machine one
        big INSERT costs less CPU than two half-size ones side by side (an INSERT's fixed cost is
        ~50 ms of CPU); the other loaders still run when segments fill up or a backlog is replayed."""
        return not self._queue and not self._busy

    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + self._busy

    def enqueue(self, segment: Sealed) -> None:
        with self._cond:
            self._queue.append(segment)
            self._cond.notify()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def close(self, timeout: float) -> bool:
        """Load what is queued (retrying) until ``timeout``; True when everything was loaded."""
        with self._cond:
            self._closing = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(max(0.0, self._deadline - time.monotonic()) + 1)
        with self._cond:
            return not self._queue and not self._busy

    def _take(self) -> Sealed | None:
        with self._cond:
            while True:
                # Stopping: load what is queued until the deadline, but not while the store is down
                # (the segments are durable and load at the next start; a shutdown need not wait).
                if self._closing and (not self._queue or not self._healthy
                                      or time.monotonic() >= (self._deadline or 0)):
                    return None
                if self._queue:
                    self._busy += 1
                    return self._queue.popleft()
                self._cond.wait()

    def _run(self) -> None:
        while (segment := self._take()) is not None:
            started = time.monotonic()
            try:
                self._load(segment)
            except Exception as exc:  # the segment stays on disk and is tried again
                ok = False
                self._healthy = False
                log.warning("spool: loading %s (%d bytes) failed, will retry: %s", segment.path.name,
                            segment.size, exc)
                with self._cond:
                    self._queue.appendleft(segment)
                    self._busy -= 1
                    backoff, self._backoff = self._backoff, min(self._backoff * 2, _BACKOFF_MAX_S)
                    # Wait before the retry, but wake up for a shutdown deadline.
                    self._cond.wait(min(backoff, max(0.0, (self._deadline or float("inf")) - time.monotonic())))
            else:
                ok = True
                self._healthy = True
                self._backoff = _BACKOFF_MIN_S
                self._loaded(segment)
                with self._cond:
                    self._busy -= 1
            if self._on_load:
                self._on_load(segment, time.monotonic() - started, ok)
            if self._on_idle:
                self._on_idle()
