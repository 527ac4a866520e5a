"""Reading request parameters and usage the same way for every OpenAI operation."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from .._parts import get


def given(value: Any) -> bool:
    """False for None and for openai's NOT_GIVEN / omit sentinels."""
    return value is not None and type(value).__name__ not in ("NotGiven", "Omit")


def pick(kwargs: Mapping[str, Any], names: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Map request arguments onto attribute names, leaving out what was not given."""
    return {attribute: kwargs[name] for name, attribute in names if given(kwargs.get(name))}


def stop_sequences(stop: Any) -> Any:
    if not given(stop):
        return None
    return [stop] if isinstance(stop, str) else list(stop)


def usage_attributes(usage: Any) -> dict[str, Any]:
    """Chat (prompt/completion) and Responses (input/output) usage alike."""
    if usage is None:
        return {}
    # Look the shape up on the class: probing a pydantic model for a missing field is slow.
    fields = usage if isinstance(usage, dict) else getattr(type(usage), "model_fields", None) or vars(usage)
    if "prompt_tokens" in fields:
        names = ("prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details")
    else:
        names = ("input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details")
    input_tokens, output_tokens, input_details, output_details = (get(usage, n) for n in names)
    attributes = {
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
        "gen_ai.usage.cache_read.input_tokens": get(input_details, "cached_tokens") if input_details else None,
        "gen_ai.usage.reasoning.output_tokens": get(output_details, "reasoning_tokens") if output_details else None,
    }
    return {k: v for k, v in attributes.items() if isinstance(v, int)}
