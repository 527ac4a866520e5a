"""Spool mode: acks once durable on the collector's disk, loads into ClickHouse behind.

Ties the :class:`~tracelake.collector.spool.Spool` (appends, group fsync, sealing, recovery) to
the :class:`~tracelake.collector.loader.Loaders` (one deduplicated INSERT per sealed segment). It
offers the receivers what the ack-after-commit :class:`~tracelake.collector.batcher.Batcher`
offers: ``submit(body, spans) -> Future``, ``close``, ``healthy``.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future

from tracelake.collector.config import SpoolConfig
from tracelake.collector.loader import Loaders
from tracelake.collector.spool import Sealed, Spool
from tracelake.store.base import Store
from tracelake.store.otlp import install_functions

log = logging.getLogger(__name__)


class SpooledIngest:
    def __init__(self, store: Store, table: str, config: SpoolConfig,
                 on_load: Callable[[Sealed, float, bool], None] | None = None,
                 on_sync: Callable[[int, float], None] | None = None) -> None:
        assert config.directory is not None
        self.config = config
        self._store = store
        self._table = table
        self._functions_installed = False
        self.loaders = Loaders(self._load, self._loaded, workers=config.loaders, on_load=on_load,
                               on_idle=lambda: self.spool.wake())
        self.spool = Spool(config.directory, max_bytes=config.max_bytes, segment_bytes=config.segment_bytes,
                           segment_max_age_s=config.segment_max_age_s, on_sealed=self.loaders.enqueue,
                           on_sync=on_sync, loader_idle=self.loaders.all_idle)

    def _load(self, segment: Sealed) -> None:
        if not self._functions_installed:  # here, not at start: the store may be unreachable then
            install_functions(self._store)
            self._functions_installed = True
        self._store.insert_otlp_file(self._table, str(segment.path), dedup_token=segment.token)

    def _loaded(self, segment: Sealed) -> None:
        self.spool.loaded(segment)

    def start(self) -> None:
        recovered = self.spool.recover()
        if recovered:
            log.info("spool: %d segment(s), %d bytes left by the previous run; loading them",
                     len(recovered), sum(s.size for s in recovered))
        for segment in recovered:
            self.loaders.enqueue(segment)
        self.spool.start()
        self.loaders.start()

    def submit(self, body: bytes, spans: int) -> Future:
        return self.spool.append(body, spans)

    @property
    def healthy(self) -> bool:
        return self.loaders.healthy

    def ready(self) -> tuple[bool, str]:
        """Ready while the spool takes requests, whether or not ClickHouse is reachable."""
        state = (f"spool {self.spool.bytes} of {self.spool.max_bytes} bytes, "
                 f"oldest unloaded {self.spool.oldest_unloaded_age():.1f} s, "
                 f"store {'up' if self.loaders.healthy else 'unreachable'}")
        if self.spool.full:
            return False, f"spool full: {state}"
        return True, f"ready: {state}"

    def close(self, timeout: float) -> bool:
        """Seal what was acked, then load the spool until ``timeout``. True when it is empty; what is
        left stays durable and is loaded at the next start."""
        self.spool.close(timeout)
        drained = self.loaders.close(timeout)
        if not drained:
            log.warning("spool: %d segment(s), %d bytes not loaded yet at shutdown; they stay in %s and are "
                        "loaded at the next start", self.spool.unloaded_segments(), self.spool.bytes,
                        self.spool.directory)
        self.spool.release()
        return drained
