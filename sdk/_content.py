"""Content attributes: JSON-encoded, size-capped and redacted, or not recorded at all.

Every prompt, completion, tool argument, input and output goes through :func:`record`, so the
privacy switches (capture off, redaction callback) hold for all integrations alike.
"""
from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any, Callable, Optional

from opentelemetry.trace import Span

from ._config import settings
from ._spans import report

Default = Callable[[Any], Any]


def capturing() -> bool:
    """Whether content is captured at all; lets callers skip building it."""
    return settings().capture_content


def jsonable(value: Any) -> Any:
    """Fallback for json.dumps: pydantic models, dataclasses, bytes, sets; str() for the rest."""
    if hasattr(value, "model_dump"):
        try:
            return value.model_dump(mode="json", exclude_none=True)
        except Exception:
            pass
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return {"type": "blob", "content": base64.b64encode(data).decode(), "size": len(data)}
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


_encoders: dict[Default, Callable[[Any], str]] = {}


def dumps(value: Any, default: Default = jsonable) -> str:
    encode = _encoders.get(default)
    if encode is None:  # one encoder per fallback: building one costs more than small messages
        # ensure_ascii=False keeps non-Latin text as written instead of \u escapes.
        encode = _encoders[default] = json.JSONEncoder(ensure_ascii=False, default=default, separators=(",", ":")).encode
    try:
        return encode(value)
    except (ValueError, TypeError, RecursionError):
        return json.dumps(str(value), ensure_ascii=False)


def record(span: Span, key: str, value: Any, default: Default = jsonable) -> None:
    """Set one content attribute on span, honouring capture, the size cap and redaction."""
    config = settings()
    if not config.capture_content:
        return
    try:
        encoded = value if isinstance(value, str) else dumps(value, default)
        cap = config.max_content_bytes
        if cap is not None and len(encoded) * 4 > cap and _size(encoded) > cap:
            encoded = _fit(value, cap, default)
    except Exception:
        report("content.encode")
        return
    if config.redact is not None:
        try:
            redacted: Optional[str] = config.redact(key, encoded)
        except Exception:
            report("redaction callback")  # fail closed: drop rather than ship unredacted
            return
        if redacted is None:
            return
        encoded = redacted
    span.set_attribute(key, encoded)


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _fit(value: Any, cap: int, default: Default) -> str:
    """Shrink value under cap bytes: drop blob payloads first, then cut the longest strings.

    The result stays valid JSON with every key in place, so the UI can still render it.
    """
    if isinstance(value, str):
        return _cut(value, max(0, cap // 4 - 64))
    value = json.loads(dumps(value, default))  # plain JSON types from here on
    value = _drop_blobs(value)
    encoded = dumps(value)
    if _size(encoded) <= cap:
        return encoded
    low, high = 0, _longest(value)
    while low < high:  # largest per-string length that fits
        middle = (low + high + 1) // 2
        if _size(dumps(_truncate(value, middle))) <= cap:
            low = middle
        else:
            high = middle - 1
    encoded = dumps(_truncate(value, low))
    if _size(encoded) <= cap:
        return encoded
    return dumps({"truncated": True, "original_bytes": _size(dumps(value))})


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[truncated {len(text) - limit} chars]"


def _drop_blobs(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("type") == "blob" and isinstance(value.get("content"), str):
            kept = {k: v for k, v in value.items() if k != "content"}
            kept["content_dropped"] = "max_content_bytes"
            return kept
        return {k: _drop_blobs(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_drop_blobs(v) for v in value]
    return value


def _longest(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return max((_longest(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return max((_longest(v) for v in value), default=0)
    return 0


def _truncate(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return _cut(value, limit)
    if isinstance(value, dict):
        return {k: _truncate(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_truncate(v, limit) for v in value]
    return value


def record_value(span: Span, prefix: str, value: Any, default: Default = jsonable) -> None:
    """OpenInference-style ``input.value`` / ``output.value`` with their mime type."""
    if not capturing():
        return
    span.set_attribute(f"{prefix}.mime_type", "text/plain" if isinstance(value, str) else "application/json")
    record(span, f"{prefix}.value", value, default)
