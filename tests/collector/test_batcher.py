"""The group commit alone, with an in-process sink: backpressure, linger, a failing sink, close."""
from __future__ import annotations

import threading

import pytest

from tracelake.collector.batcher import Backpressure, Batcher
from tracelake.store.otlp import length_delimited


class Sink:
    """Records every stream; blocks while ``gate`` is clear; raises while ``failing``."""

    def __init__(self) -> None:
        self.streams: list[bytes] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.failing = False

    def __call__(self, stream: bytes) -> None:
        self.entered.set()
        assert self.gate.wait(30)
        if self.failing:
            raise RuntimeError("store down")
        self.streams.append(stream)


def _batcher(sink: Sink, **overrides) -> Batcher:
    args = dict(max_batch_spans=1000, linger_s=0.0, max_queue_spans=100, max_queue_bytes=10_000, writers=1)
    batcher = Batcher(sink, **{**args, **overrides})
    batcher.start()
    return batcher


def test_a_request_is_acked_once_its_insert_returned():
    sink = Sink()
    sink.gate.clear()
    batcher = _batcher(sink)
    future = batcher.submit(b"one", 1)
    assert sink.entered.wait(30)
    assert not future.done()  # the INSERT has not returned
    sink.gate.set()
    assert future.result(30) is None
    assert sink.streams == [length_delimited([b"one"])]
    assert batcher.close(30)


def test_backpressure_by_spans_and_by_bytes():
    sink = Sink()
    sink.gate.clear()
    batcher = _batcher(sink, max_queue_spans=10, max_queue_bytes=100)
    first = batcher.submit(b"a", 6)
    with pytest.raises(Backpressure, match="queue full"):
        batcher.submit(b"b", 6)  # 12 spans > 10
    with pytest.raises(Backpressure, match="queue full"):
        batcher.submit(b"x" * 100, 1)  # 101 bytes > 100
    assert (batcher.pending_spans, batcher.pending_bytes) == (6, 1)
    sink.gate.set()
    first.result(30)
    batcher.submit(b"b", 6).result(30)  # room again once committed
    assert batcher.close(30)


def test_one_request_larger_than_the_bounds_is_taken_when_the_queue_is_empty():
    sink = Sink()
    batcher = _batcher(sink, max_queue_spans=10)
    batcher.submit(b"big", 50).result(30)  # otherwise it could never be accepted
    assert batcher.close(30)


def test_requests_arriving_within_the_linger_share_one_insert():
    sink = Sink()
    batcher = _batcher(sink, linger_s=30.0, max_batch_spans=3)
    futures = [batcher.submit(bytes([i]), 1) for i in range(3)]  # the third fills the batch: no wait
    for f in futures:
        f.result(30)
    assert sink.streams == [length_delimited([b"\x00", b"\x01", b"\x02"])]
    assert batcher.close(30)


def test_a_failing_sink_fails_its_requests_and_refuses_new_ones_until_healthy():
    sink = Sink()
    sink.failing = True
    batcher = _batcher(sink)
    with pytest.raises(RuntimeError, match="store down"):
        batcher.submit(b"a", 1).result(30)
    assert not batcher.healthy and batcher.pending_spans == 0
    with pytest.raises(Backpressure, match="store unavailable"):
        batcher.submit(b"b", 1)
    sink.failing = False
    batcher.mark_healthy()
    batcher.submit(b"c", 1).result(30)
    assert batcher.healthy
    assert batcher.close(30)


def test_close_commits_what_was_accepted_then_refuses():
    sink = Sink()
    sink.gate.clear()
    batcher = _batcher(sink)
    futures = [batcher.submit(bytes([i]), 1) for i in range(5)]
    closer = threading.Thread(target=batcher.close, args=(30,))
    closer.start()
    sink.gate.set()
    closer.join(30)
    assert all(f.result(0) is None for f in futures)
    assert b"".join(sink.streams) == length_delimited([bytes([i]) for i in range(5)])
    with pytest.raises(Backpressure, match="shutting down"):
        batcher.submit(b"late", 1)
