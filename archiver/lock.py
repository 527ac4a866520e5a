"""One writer of the archive per process: an archive pass, an erasure or a restore at a time.

The Delta table has a single writer (docs/archive.md), and an erasure or restore must not see a
pass halfway. Whoever changes the archive holds :func:`exclusive`; :func:`if_free` is for work
that can wait for the next pass instead (a policy handed over from the Retention page).
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tracelake.archiver.errors import Busy

_LOCK = threading.Lock()


@contextmanager
def exclusive(wait_s: float | None = None, busy: str | None = None) -> Iterator[None]:
    """Hold the archive. ``wait_s``: None waits as long as it takes, 0 not at all; when another
    holds it past that, :class:`Busy` (409) with ``busy`` as its message if given."""
    if wait_s is None:
        acquired = _LOCK.acquire()
    elif wait_s <= 0:
        acquired = _LOCK.acquire(blocking=False)
    else:
        acquired = _LOCK.acquire(timeout=wait_s)
    if not acquired:
        raise Busy(busy) if busy else Busy()
    try:
        yield
    finally:
        _LOCK.release()


@contextmanager
def if_free() -> Iterator[bool]:
    """Hold the archive only if nobody does: True (held for the block) or False (leave it for later)."""
    acquired = _LOCK.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            _LOCK.release()
