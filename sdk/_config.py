"""Runtime settings for content capture, read from the environment and autotrace() arguments."""
from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass, replace
from typing import Callable, Optional

log = logging.getLogger("tracelake.sdk")

# (attribute key, JSON string) -> replacement string, or None to drop the attribute.
Redactor = Callable[[str, str], Optional[str]]

# Large enough for a request with several images, small enough that one span still fits the
# collector's 20 MB request limit.
DEFAULT_MAX_CONTENT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Settings:
    capture_content: bool = True
    redact: Optional[Redactor] = None
    max_content_bytes: Optional[int] = DEFAULT_MAX_CONTENT_BYTES


def env_flag(name: str) -> Optional[bool]:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return None
    # OTel's GenAI variable also takes NO_CONTENT / SPAN_ONLY / EVENT_ONLY / SPAN_AND_EVENT.
    return value not in ("0", "false", "no", "off", "no_content", "event_only")


def _env_redactor() -> Optional[Redactor]:
    path = os.environ.get("TRACELAKE_REDACT", "").strip()
    if not path:
        return None
    module, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except Exception:
        # Failing closed: content capture is switched off below rather than shipped unredacted.
        log.warning("tracelake: cannot import TRACELAKE_REDACT=%r; content capture is off", path, exc_info=True)
        return _drop_everything


def _drop_everything(key: str, value: str) -> None:
    return None


def from_env() -> Settings:
    capture = env_flag("TRACELAKE_CAPTURE_CONTENT")
    if capture is None:
        capture = env_flag("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
    cap = os.environ.get("TRACELAKE_MAX_CONTENT_BYTES", "").strip()
    return Settings(
        capture_content=True if capture is None else capture,
        redact=_env_redactor(),
        max_content_bytes=(int(cap) or None) if cap else DEFAULT_MAX_CONTENT_BYTES,
    )


_current = from_env()


def settings() -> Settings:
    return _current


def update(**changes: object) -> Settings:
    """Apply the arguments that were given (not None); a later autotrace() never undoes an earlier one."""
    global _current
    given = {k: v for k, v in changes.items() if v is not None}
    if given.get("max_content_bytes") == 0:
        given["max_content_bytes"] = None  # 0 means "no cap"
    _current = replace(_current, **given)
    return _current


def restore(snapshot: Settings) -> None:
    """Put settings back as they were (for tests)."""
    global _current
    _current = snapshot
