"""Scores from code: ``tracelake.score(name, value, ...)`` and the ids to hand to a browser.

A score travels as a span named ``tracelake.score`` in the judged trace, its ``tracelake.score.*``
attributes saying what it is (docs/scores.md, "OTLP convention"); the collector spools it like any
span and the store files it in the ``scores`` table, not in the trace. So a score can be sent
after the trace ended, from another process that only has the trace id (a feedback endpoint),
through the exporter ``autotrace()`` set up.
"""
from __future__ import annotations

import math
import re
import secrets
from typing import Optional, Union

from opentelemetry import trace as otel_trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from ._spans import tracer

SCORE_SPAN = "tracelake.score"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")
_TRACE = re.compile(r"^[0-9a-fA-F]{32}$")
_SPAN = re.compile(r"^[0-9a-fA-F]{16}$")
SOURCES = ("human", "app", "code")


def current_trace_id() -> Optional[str]:
    """The current trace's id as 32 hex characters (None outside a trace): return it to the
    browser with the answer, so its thumbs can be sent back with ``score(..., trace_id=...)``."""
    ctx = otel_trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def current_span_id() -> Optional[str]:
    """The current span's id as 16 hex characters (None outside a span)."""
    ctx = otel_trace.get_current_span().get_span_context()
    return format(ctx.span_id, "016x") if ctx.is_valid else None


def score(name: str, value: Union[float, int, bool, str], *, trace_id: Optional[str] = None,
          span_id: Optional[str] = None, comment: Optional[str] = None, source: str = "code",
          author: Optional[str] = None, author_version: Optional[str] = None) -> str:
    """Score a trace (default: the current one) or one of its spans; returns the score's id.

    ``value``: a number, a bool or a category (e.g. ``"down"`` for ``thumbs``). ``source``: ``code``
    (an evaluator: say which in ``author`` and ``author_version``), ``app`` (the app's users:
    ``author`` is the user id, erased with that user) or ``human``. Raises ValueError for arguments
    that cannot make a score (nothing is sent then); the sending itself never raises."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError("a score name is 1-64 letters, digits, '_', '.' or '-'")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a score's number must be finite")
    if not isinstance(value, (bool, int, float, str)) or (isinstance(value, str) and not value.strip()):
        raise ValueError("a score's value is a number, a bool or a category name")
    if source not in SOURCES:
        raise ValueError(f"source is one of {', '.join(SOURCES)}")
    tid = trace_id if trace_id is not None else current_trace_id()
    if tid is None:
        raise ValueError("no current trace: pass trace_id (tracelake.current_trace_id() where the trace ran)")
    if not _TRACE.match(tid) or int(tid, 16) == 0:
        raise ValueError("trace_id is 32 hexadecimal characters")
    if span_id is not None and span_id != "" and not _SPAN.match(span_id):
        raise ValueError("span_id is 16 hexadecimal characters")
    attrs = {"tracelake.score.name": name, "tracelake.score.value": value, "tracelake.score.source": source,
             "tracelake.score.span_id": (span_id or "").lower(), "tracelake.score.comment": comment,
             "tracelake.score.author": author, "tracelake.score.author_version": author_version}
    # The score span's parent is the judged span (or a random one for the trace): a remote,
    # sampled context, so the span lands in the judged trace whatever this process is tracing.
    parent_id = int(span_id, 16) if span_id else int.from_bytes(secrets.token_bytes(8), "big") or 1
    parent = SpanContext(int(tid, 16), parent_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    ctx = otel_trace.set_span_in_context(NonRecordingSpan(parent))
    span = tracer("score").start_span(SCORE_SPAN, context=ctx,
                                      attributes={k: v for k, v in attrs.items() if v is not None})
    span.end()
    sid = span.get_span_context().span_id
    return format(sid, "016x")
