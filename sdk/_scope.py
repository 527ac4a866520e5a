"""Make a span current between two callbacks (LangChain's start and end) without leaking it.

A ``with`` block can attach and detach a context safely; callbacks cannot, because the end may
arrive out of order (batches start several runs before ending any) or from another context
(LangChain ends async LLM runs inside ``asyncio.gather``). So each scope is detached only when it
is on top in the very context that attached it; otherwise it is marked ended and tidied away the
next time tracing code runs in that context.
"""
from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Optional

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span


class Scope:
    __slots__ = ("ctx", "previous", "below", "token", "marker", "ended")

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.previous = otel_context.get_current()
        self.below = _top.get()
        self.token: object = otel_context.attach(ctx)
        self.ended = False
        self.marker: Token[Optional[Scope]] = _top.set(self)


_top: ContextVar[Optional[Scope]] = ContextVar("tracelake_scope", default=None)


def enter(span: Span, base: Optional[Context] = None) -> Scope:
    """Make span current in this context until leave()."""
    return Scope(trace.set_span_in_context(span, base))


def leave(scope: Scope) -> None:
    scope.ended = True
    tidy()


def tidy() -> None:
    """Detach ended scopes on top of this context's stack; cheap when there are none."""
    while (scope := _top.get()) is not None and scope.ended:
        try:
            _top.reset(scope.marker)
        except (ValueError, RuntimeError):
            return  # attached in another context; that context tidies it when it next traces
        # Detach only if nobody attached on top of us since; else their detach restores order.
        if otel_context.get_current() is scope.ctx:
            otel_context.detach(scope.token)


def outside() -> Context:
    """The current context with our scopes on top of it peeled off.

    LangChain starts a batch's runs one after another before running any, so a run without a
    parent run must not nest under the sibling started just before it.
    """
    ctx = otel_context.get_current()
    scope = _top.get()
    while scope is not None and ctx is scope.ctx:
        ctx, scope = scope.previous, scope.below
    return ctx
