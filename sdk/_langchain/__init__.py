"""LangChain integration: a callback handler registered once, globally, through langchain-core."""
from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Optional

_registered: Optional[ContextVar[Any]] = None


def instrument() -> bool:
    """Register the handler with langchain-core; False when it is not installed."""
    global _registered
    try:
        from langchain_core.tracers.context import register_configure_hook
    except ImportError:
        return False
    if _registered is None:
        from ._handler import TracelakeCallbackHandler

        # A ContextVar whose default is the handler is "set" in every context, threads included,
        # so langchain-core adds the handler to every run without any callbacks= argument.
        _registered = ContextVar("tracelake_langchain_handler", default=TracelakeCallbackHandler())
        register_configure_hook(_registered, inheritable=True, handle_class=TracelakeCallbackHandler)
    return True
