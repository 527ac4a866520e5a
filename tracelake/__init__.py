"""tracelake: LLM tracing on OpenTelemetry and ClickHouse.

Agent code needs only ``import tracelake; tracelake.autotrace()``; the names below are
re-exported lazily from :mod:`tracelake.sdk` so that server processes importing
``tracelake.store`` or ``tracelake.collector`` do not pay for the SDK.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_SDK_NAMES = ("autotrace", "shutdown", "flush", "trace", "span", "session", "user", "score", "current_trace_id",
              "current_span_id")
__all__ = ["__version__", *_SDK_NAMES]


def __getattr__(name: str) -> Any:
    if name in _SDK_NAMES:
        from tracelake import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'tracelake' has no attribute {name!r}")
