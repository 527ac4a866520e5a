"""OpenAI integration: spans for chat completions, responses and embeddings (sync and async)."""
from __future__ import annotations


def instrument() -> bool:
    """Patch the installed openai package; False when it is not installed."""
    try:
        import openai  # noqa: F401
    except ImportError:
        return False
    from ._wrap import patch_all

    patch_all()
    return True
