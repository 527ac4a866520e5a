"""Manual spans: the ``@trace`` decorator and the ``span()`` context manager."""
from __future__ import annotations

import functools
import inspect
from typing import Any, AsyncIterator, Callable, Iterator, Optional, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import Span

from ._content import record_value
from ._scope import tidy
from ._spans import guarded, record_error, report, tracer

F = TypeVar("F", bound=Callable[..., Any])

KIND = "openinference.span.kind"
# Generators can be endless; keep this many items as their output.
MAX_ITEMS = 1000
_UNSET: Any = object()


def _start(name: str, kind: Optional[str], attributes: Optional[dict[str, Any]]) -> Span:
    try:
        tidy()
        attrs = {KIND: (kind or "chain").upper(), **(attributes or {})}
        return tracer("manual").start_span(name, attributes=attrs)
    except Exception:
        report("span start")
        return otel_trace.INVALID_SPAN


@guarded
def _set(span: Span, prefix: str, value: Any) -> None:
    record_value(span, prefix, value)


def _end(span: Span, exc: Optional[BaseException] = None) -> None:
    try:
        if exc is not None:
            record_error(span, exc)
        span.end()
    except Exception:
        report("span end")


class SpanHandle:
    """What ``with tracelake.span(...) as s`` gives: the OTel span plus set_input / set_output."""

    def __init__(self, span: Span) -> None:
        self.span = span

    def set_input(self, value: Any) -> None:
        _set(self.span, "input", value)

    def set_output(self, value: Any) -> None:
        _set(self.span, "output", value)

    def __getattr__(self, name: str) -> Any:  # set_attribute, add_event, ... of the OTel span
        return getattr(self.span, name)


class span:
    """``with tracelake.span("retrieve", input=query) as s: ...; s.set_output(docs)``.

    The span is current inside the block, so LLM calls made there nest under it; an exception
    leaving the block is recorded and re-raised.
    """

    def __init__(
        self,
        name: str,
        *,
        input: Any = _UNSET,
        kind: Optional[str] = None,
        attributes: Optional[dict[str, Any]] = None,
    ) -> None:
        self._name, self._input, self._kind, self._attributes = name, input, kind, attributes
        self._handle: Optional[SpanHandle] = None
        self._token: object = None

    def __enter__(self) -> SpanHandle:
        current = _start(self._name, self._kind, self._attributes)
        self._handle = SpanHandle(current)
        if self._input is not _UNSET:
            self._handle.set_input(self._input)
        self._token = otel_context.attach(otel_trace.set_span_in_context(current))
        return self._handle

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        otel_context.detach(self._token)
        assert self._handle is not None
        _end(self._handle.span, exc)

    async def __aenter__(self) -> SpanHandle:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)


@overload
def trace(fn: F) -> F: ...
@overload
def trace(
    *, name: Optional[str] = None, kind: Optional[str] = None, capture_input: bool = True, capture_output: bool = True
) -> Callable[[F], F]: ...
def trace(
    fn: Optional[F] = None,
    *,
    name: Optional[str] = None,
    kind: Optional[str] = None,
    capture_input: bool = True,
    capture_output: bool = True,
) -> Any:
    """Trace a function, async function, generator or async generator as one span.

    Use bare (``@trace``) or with options (``@trace(name="plan", kind="agent")``). The arguments
    are recorded as ``input.value`` and the result (or the yielded items) as ``output.value``.
    """
    if fn is None:
        return functools.partial(trace, name=name, kind=kind, capture_input=capture_input, capture_output=capture_output)
    span_name = name or fn.__qualname__
    inputs = _input_reader(fn) if capture_input else None

    def begin(args: tuple, kwargs: dict) -> Span:
        started = _start(span_name, kind, None)
        if inputs is not None:
            _set(started, "input", inputs(args, kwargs))
        return started

    def finish(current: Span, result: Any) -> None:
        if capture_output:
            _set(current, "output", result)
        _end(current)

    if inspect.isasyncgenfunction(fn):
        wrapper: Callable[..., Any] = _async_generator(fn, begin, finish)
    elif inspect.iscoroutinefunction(fn):
        wrapper = _coroutine(fn, begin, finish)
    elif inspect.isgeneratorfunction(fn):
        wrapper = _generator(fn, begin, finish)
    else:
        wrapper = _function(fn, begin, finish)
    return functools.wraps(fn)(wrapper)


def _input_reader(fn: Callable[..., Any]) -> Callable[[tuple, dict], Any]:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return lambda args, kwargs: {"args": list(args), "kwargs": kwargs}
    skip_first = next(iter(signature.parameters), None) in ("self", "cls")

    def read(args: tuple, kwargs: dict) -> Any:
        try:
            arguments = signature.bind_partial(*args, **kwargs).arguments
        except TypeError:  # a bad call: the function itself will say so
            return {"args": list(args), "kwargs": kwargs}
        if skip_first and arguments:
            arguments.pop(next(iter(arguments)))
        return dict(arguments)

    return read


Begin = Callable[[tuple, dict], Span]
Finish = Callable[[Span, Any], None]


def _function(fn: Callable[..., Any], begin: Begin, finish: Finish) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        current = begin(args, kwargs)
        token = otel_context.attach(otel_trace.set_span_in_context(current))
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            otel_context.detach(token)
            _end(current, exc)
            raise
        otel_context.detach(token)
        finish(current, result)
        return result

    return wrapper


def _coroutine(fn: Callable[..., Any], begin: Begin, finish: Finish) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        current = begin(args, kwargs)
        token = otel_context.attach(otel_trace.set_span_in_context(current))
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            otel_context.detach(token)
            _end(current, exc)
            raise
        otel_context.detach(token)
        finish(current, result)
        return result

    return wrapper


def _generator(fn: Callable[..., Any], begin: Begin, finish: Finish) -> Callable[..., Any]:
    # The span is current only while the generator's own code runs, never while the consumer
    # holds it between items; otherwise the consumer's spans would nest under it.
    def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
        current = begin(args, kwargs)
        ctx = otel_trace.set_span_in_context(current)
        items: list[Any] = []

        def step(method: Callable[[Any], Any], arg: Any) -> Any:
            token = otel_context.attach(ctx)
            try:
                return method(arg)
            finally:
                otel_context.detach(token)

        try:
            gen = step(lambda _: fn(*args, **kwargs), None)
            method, arg = gen.send, None
            while True:
                try:
                    item = step(method, arg)
                except StopIteration as stop:
                    result = stop.value
                    break
                if len(items) < MAX_ITEMS:
                    items.append(item)
                try:
                    arg = yield item
                    method = gen.send
                except GeneratorExit:
                    step(lambda _: gen.close(), None)
                    raise
                except BaseException as exc:
                    method, arg = gen.throw, exc
        except GeneratorExit:
            finish(current, items)  # the consumer stopped early: not an error
            raise
        except BaseException as exc:
            _end(current, exc)
            raise
        finish(current, items if result is None else result)
        return result

    return wrapper


def _async_generator(fn: Callable[..., Any], begin: Begin, finish: Finish) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        current = begin(args, kwargs)
        ctx = otel_trace.set_span_in_context(current)
        items: list[Any] = []
        token = otel_context.attach(ctx)
        try:
            agen = fn(*args, **kwargs)
        finally:
            otel_context.detach(token)
        method: Callable[[Any], Any] = agen.asend
        arg: Any = None
        try:
            while True:
                token = otel_context.attach(ctx)
                try:
                    item = await method(arg)
                except StopAsyncIteration:
                    break
                finally:
                    otel_context.detach(token)
                if len(items) < MAX_ITEMS:
                    items.append(item)
                try:
                    arg = yield item
                    method = agen.asend
                except GeneratorExit:
                    token = otel_context.attach(ctx)
                    try:
                        await agen.aclose()
                    finally:
                        otel_context.detach(token)
                    raise
                except BaseException as exc:
                    method, arg = agen.athrow, exc
        except GeneratorExit:
            finish(current, items)
            raise
        except BaseException as exc:
            _end(current, exc)
            raise
        finish(current, items)

    return wrapper
