"""Embeddings: model, dimensions, usage, and the embedded input as content."""
from __future__ import annotations

from typing import Any, Mapping

from opentelemetry.trace import Span

from .._content import record_value
from .._parts import get
from .._spans import set_attributes
from ._params import given, pick

NAME = "embeddings"

_PARAMS = (
    ("model", "gen_ai.request.model"),
    ("dimensions", "gen_ai.embeddings.dimension.count"),
)


def request_attributes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    attributes = pick(kwargs, _PARAMS)
    encoding = kwargs.get("encoding_format")
    if given(encoding):
        attributes["gen_ai.request.encoding_formats"] = [encoding]
    return attributes


def record_request(span: Span, kwargs: Mapping[str, Any]) -> None:
    if given(kwargs.get("input")):
        record_value(span, "input", kwargs["input"])


def record_response(span: Span, response: Any, kwargs: Mapping[str, Any]) -> None:
    data = get(response, "data") or []
    vector = get(data[0], "embedding") if data else None
    usage = get(response, "usage")
    set_attributes(
        span,
        {
            "gen_ai.response.model": get(response, "model"),
            "gen_ai.usage.input_tokens": get(usage, "prompt_tokens") if usage is not None else None,
            "gen_ai.embeddings.dimension.count": len(vector) if isinstance(vector, list) else None,
        },
    )


Stream = None  # embeddings do not stream
