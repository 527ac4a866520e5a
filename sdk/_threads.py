"""Carry the OTel context into concurrent.futures thread pools, as asyncio tasks already do.

Without this, a span started in ``executor.submit(fn)`` would become a new root. Only the OTel
context travels (not every ContextVar), the same choice OpenTelemetry's threading
instrumentation makes.
"""
from __future__ import annotations

import functools
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from opentelemetry import context as otel_context

_original_submit = ThreadPoolExecutor.submit


def _in_context(ctx: otel_context.Context, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        token = otel_context.attach(ctx)
        try:
            return fn(*args, **kwargs)
        finally:
            otel_context.detach(token)

    return run


def _submit(self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
    ctx = otel_context.get_current()
    if ctx:  # empty context: nothing to carry, keep the call as it was
        fn = _in_context(ctx, fn)
    return _original_submit(self, fn, *args, **kwargs)


def instrument() -> None:
    if ThreadPoolExecutor.submit is not _submit:
        ThreadPoolExecutor.submit = _submit  # type: ignore[method-assign]
