"""Sessions and users: context values that tag every span started beneath them."""
from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager
from typing import Iterator, Optional

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

SESSION_ID = "session.id"
USER_ID = "user.id"
CONVERSATION_ID = "gen_ai.conversation.id"

_SESSION_KEY = otel_context.create_key("tracelake.session.id")
_USER_KEY = otel_context.create_key("tracelake.user.id")


@contextmanager
def _tagged(key: str, value: object) -> Iterator[None]:
    token = otel_context.attach(otel_context.set_value(key, str(value)))
    try:
        yield
    finally:
        otel_context.detach(token)


def session(session_id: object) -> AbstractContextManager[None]:
    """``with tracelake.session("chat-42"):`` tags spans beneath with session.id and gen_ai.conversation.id."""
    return _tagged(_SESSION_KEY, session_id)


def user(user_id: object) -> AbstractContextManager[None]:
    """``with tracelake.user("alice"):`` tags spans beneath with user.id."""
    return _tagged(_USER_KEY, user_id)


class TaggingProcessor(SpanProcessor):
    """Copies the current session and user onto each span as it starts."""

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        session_id = otel_context.get_value(_SESSION_KEY, parent_context)
        user_id = otel_context.get_value(_USER_KEY, parent_context)
        if session_id is None or user_id is None:
            # Spans parented explicitly (LangChain runs ending in other threads) inherit from the parent.
            inherited = getattr(trace.get_current_span(parent_context), "attributes", None) or {}
            session_id = session_id if session_id is not None else inherited.get(SESSION_ID)
            user_id = user_id if user_id is not None else inherited.get(USER_ID)
        if session_id is not None:
            span.set_attribute(SESSION_ID, session_id)
            span.set_attribute(CONVERSATION_ID, session_id)
        if user_id is not None:
            span.set_attribute(USER_ID, user_id)

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
