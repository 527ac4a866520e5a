"""tracelake.sdk: one-line autotrace for OpenAI and LangChain.

    import tracelake
    tracelake.autotrace()

Needs only opentelemetry-api, -sdk and -exporter-otlp-proto-http; openai and langchain-core are
instrumented when they are installed. See docs/sdk.md.
"""
from __future__ import annotations

from ._context import session, user
from ._manual import SpanHandle, span, trace
from ._score import current_span_id, current_trace_id, score
from ._setup import autotrace, flush, shutdown

__all__ = ["autotrace", "shutdown", "flush", "trace", "span", "SpanHandle", "session", "user", "score",
           "current_trace_id", "current_span_id"]
