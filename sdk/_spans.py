"""Small shared helpers: tracers, error recording and the never-raise guard."""
from __future__ import annotations

import functools
import logging
from typing import Any, Callable, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

log = logging.getLogger("tracelake.sdk")

F = TypeVar("F", bound=Callable[..., Any])

_VERSION = "0.1.0"
_tracers: dict[str, trace.Tracer] = {}
_reported: set[str] = set()

# Set by OTel-aware code (exporters, other instrumentations) to say "do not trace this".
_SUPPRESS_KEY = getattr(otel_context, "_SUPPRESS_INSTRUMENTATION_KEY", "suppress_instrumentation")


def tracer(component: str) -> trace.Tracer:
    """The tracer for one integration; its scope name tells the spans' origin apart."""
    found = _tracers.get(component)
    if found is None:
        # The global API hands out a proxy until a provider is set, so caching is safe.
        found = _tracers[component] = trace.get_tracer(f"tracelake.sdk.{component}", _VERSION)
    return found


def suppressed() -> bool:
    return bool(otel_context.get_value(_SUPPRESS_KEY))


def report(where: str) -> None:
    """Log a failure inside tracing code: with a traceback the first time per place, quietly after."""
    if where in _reported:
        log.debug("tracelake: error in %s", where, exc_info=True)
    else:
        _reported.add(where)
        log.warning("tracelake: error in %s; tracing goes on and the app is unaffected", where, exc_info=True)


def guarded(fn: F) -> F:
    """Run tracing code so that no exception ever reaches the caller; returns None on failure."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception:
            report(fn.__qualname__)
            return None

    return wrapper  # type: ignore[return-value]


def record_error(span: Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    span.set_attribute("error.type", type(exc).__qualname__)


def set_attributes(span: Span, attributes: dict[str, Any]) -> None:
    """Set attributes in one go, skipping None values (OTel rejects them noisily)."""
    span.set_attributes({k: v for k, v in attributes.items() if v is not None})
