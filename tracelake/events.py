"""Changes that other parts keep copies of, announced in-process: the archiver says which traces
it erased or moved back, and whoever caches trace data (the UI's tree cache) forgets them.

A small signal in core, so that the archiver and the UI both depend on core and never on each
other. Listeners must be quick and must not raise (errors are logged, never passed on)."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

TracesChanged = Callable[[frozenset[str]], None]
_listeners: list[TracesChanged] = []


def on_traces_changed(listener: TracesChanged) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def traces_changed(trace_ids: Iterable[str]) -> None:
    """Tell every listener that these traces' spans changed (erased, restored)."""
    ids = frozenset(trace_ids)
    if not ids:
        return
    for listener in list(_listeners):
        try:
            listener(ids)
        except Exception:  # noqa: BLE001 - a cache that fails to forget must not fail the erasure
            log.exception("a traces-changed listener failed")


PricesChanged = Callable[[], None]
_price_listeners: list[PricesChanged] = []


def on_prices_changed(listener: PricesChanged) -> None:
    if listener not in _price_listeners:
        _price_listeners.append(listener)


def prices_changed() -> None:
    """Tell every listener that model prices changed: costs they keep copies of are stale."""
    for listener in list(_price_listeners):
        try:
            listener()
        except Exception:  # noqa: BLE001 - a cache that fails to forget must not fail the edit
            log.exception("a prices-changed listener failed")
