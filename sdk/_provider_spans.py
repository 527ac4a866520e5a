"""Which framework LLM spans (LangChain's) had a provider span (OpenAI's) made beneath them.

With ChatOpenAI both layers trace the same call. The provider span owns messages and token
usage; the framework span records them only when no provider span did, so content is not
stored twice and summing usage over a trace does not double count.
"""
from __future__ import annotations

_open: dict[int, bool] = {}  # span_id of an open framework LLM span -> saw a provider span


def opened(span_id: int) -> None:
    _open[span_id] = False


def provider_call_under(span_id: int) -> None:
    if span_id in _open:
        _open[span_id] = True


def closed(span_id: int) -> bool:
    """Forget the span; True when a provider span was made beneath it."""
    return _open.pop(span_id, False)
