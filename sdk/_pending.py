"""Spans that end when an object is dropped (abandoned streams), and are ended at shutdown too."""
from __future__ import annotations

import threading
import weakref
from typing import Any, Callable

_live: set[weakref.finalize] = set()
_lock = threading.Lock()


def on_drop(obj: Any, callback: Callable[[], None]) -> Callable[[], None]:
    """Call callback when obj is garbage collected or at shutdown, whichever comes first.

    Returns a function that cancels it (for when the span ended the normal way).
    """
    finalizer = weakref.finalize(obj, _run, callback)
    finalizer.atexit = False  # shutdown() ends them before the final flush instead
    with _lock:
        _live.add(finalizer)

    def cancel() -> None:
        finalizer.detach()
        with _lock:
            _live.discard(finalizer)

    return cancel


def _run(callback: Callable[[], None]) -> None:
    with _lock:
        _live.difference_update([f for f in _live if not f.alive])
    callback()


def end_all() -> None:
    with _lock:
        pending = list(_live)
        _live.clear()
    for finalizer in pending:
        finalizer()
