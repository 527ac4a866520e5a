"""Streams that end their span when consumed, closed, failed or abandoned.

The proxies subclass openai's Stream / AsyncStream, so ``isinstance`` checks and helpers such as
``chat.completions.stream()`` keep working; anything not overridden is read from the real stream.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Optional

from openai import AsyncStream, Stream
from opentelemetry.trace import Span

from .. import _pending
from .._spans import record_error, report


class Recorder:
    """Owns a streaming call's span until the stream's end, whichever way it comes."""

    def __init__(self, span: Span, accumulator: Any, started: float) -> None:
        self.span = span
        self.accumulator = accumulator
        self.started = started
        self.first_output: Optional[float] = None
        self.done = False
        self._cancel: Optional[Callable[[], None]] = None

    def watch(self, owner: Any) -> None:
        """End the span as 'abandoned' if owner is dropped before the stream ends."""
        if self._cancel is not None:
            self._cancel()
        self._cancel = _pending.on_drop(owner, self._abandoned)

    def _abandoned(self) -> None:
        self.finish("abandoned")

    def chunk(self, item: Any) -> None:
        try:
            if self.accumulator.add(item) and self.first_output is None:
                self.first_output = time.perf_counter()
        except Exception:
            report("openai stream chunk")

    def finish(self, how: str, exc: Optional[BaseException] = None) -> None:
        if self.done:
            return
        self.done = True
        try:
            if self._cancel is not None:
                self._cancel()
            self.accumulator.record(self.span)
            if self.first_output is not None:
                self.span.set_attribute("gen_ai.response.time_to_first_chunk", self.first_output - self.started)
            self.span.set_attribute("tracelake.stream.ended_by", how)
            if exc is not None:
                record_error(self.span, exc)
        except Exception:
            report("openai stream end")
        finally:
            self.span.end()


class _Forwarding:
    """Reads whatever the proxy does not define from the wrapped stream."""

    _tl_stream: Any

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_tl_"):
            raise AttributeError(name)
        return getattr(self._tl_stream, name)


class TracedStream(_Forwarding, Stream):  # type: ignore[misc]
    def __init__(self, stream: Stream, recorder: Recorder) -> None:  # no super(): this is a proxy
        self._tl_stream = stream
        self._tl_recorder = recorder
        recorder.watch(self)

    def __iter__(self) -> TracedStream:
        return self

    def __next__(self) -> Any:
        try:
            item = self._tl_stream.__next__()
        except StopIteration:
            self._tl_recorder.finish("consumed")
            raise
        except BaseException as exc:
            self._tl_recorder.finish("error", exc)
            raise
        self._tl_recorder.chunk(item)
        return item

    def __enter__(self) -> TracedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._tl_stream.close()
        finally:
            self._tl_recorder.finish("closed")


class TracedAsyncStream(_Forwarding, AsyncStream):  # type: ignore[misc]
    def __init__(self, stream: AsyncStream, recorder: Recorder) -> None:
        self._tl_stream = stream
        self._tl_recorder = recorder
        recorder.watch(self)

    def __aiter__(self) -> TracedAsyncStream:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self._tl_stream.__anext__()
        except StopAsyncIteration:
            self._tl_recorder.finish("consumed")
            raise
        except BaseException as exc:
            self._tl_recorder.finish("error", exc)
            raise
        self._tl_recorder.chunk(item)
        return item

    async def __aenter__(self) -> TracedAsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        try:
            await self._tl_stream.close()
        finally:
            self._tl_recorder.finish("closed")

    async def aclose(self) -> None:
        await self.close()


def traced(stream: Any, recorder: Recorder) -> Any:
    """Wrap a sync or async stream; anything else comes back as it was."""
    if isinstance(stream, Stream):
        return TracedStream(stream, recorder)
    if isinstance(stream, AsyncStream):
        return TracedAsyncStream(stream, recorder)
    return stream
