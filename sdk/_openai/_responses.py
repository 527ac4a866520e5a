"""Responses API: instructions, input items, output items and stream events."""
from __future__ import annotations

from typing import Any, Mapping

from opentelemetry.trace import Span

from .. import _parts as parts
from .._content import capturing, record
from .._parts import get
from .._spans import set_attributes
from ._params import given, pick, usage_attributes

NAME = "chat"

_PARAMS = (
    ("model", "gen_ai.request.model"),
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("max_output_tokens", "gen_ai.request.max_tokens"),
)


def request_attributes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return pick(kwargs, _PARAMS)


def record_request(span: Span, kwargs: Mapping[str, Any]) -> None:
    instructions = kwargs.get("instructions")
    if given(instructions) and instructions:
        record(span, "gen_ai.system_instructions", [parts.text(instructions)])
    items = kwargs.get("input")
    if given(items):
        record(span, "gen_ai.input.messages", input_messages(items))
    tools = kwargs.get("tools")
    if given(tools) and tools:
        record(span, "gen_ai.tool.definitions", list(tools))


def input_messages(items: Any) -> list[dict[str, Any]]:
    if isinstance(items, str):
        return [{"role": "user", "parts": [parts.text(items)]}]
    messages: list[dict[str, Any]] = []
    for item in items:
        kind = get(item, "type")
        if kind == "function_call_output":
            response = parts.tool_call_response(get(item, "call_id"), get(item, "output"))
            messages.append({"role": "tool", "parts": [response]})
            continue
        found = _item_parts(item)
        if found is not None:
            # Calls and reasoning belong to the assistant turn they follow.
            if messages and messages[-1]["role"] == "assistant":
                messages[-1]["parts"].extend(found)
            else:
                messages.append({"role": "assistant", "parts": found})
            continue
        role = get(item, "role")
        if role is None:  # an item type we do not model: keep it whole
            messages.append({"role": "user", "parts": [dict(item) if isinstance(item, Mapping) else item]})
            continue
        role = "system" if role == "developer" else role
        content = parts.content_parts(get(item, "content"))
        if role == "assistant" and messages and messages[-1]["role"] == "assistant":
            messages[-1]["parts"].extend(content)
        else:
            messages.append({"role": role, "parts": content})
    return messages


def _item_parts(item: Any) -> Any:
    """Parts for assistant-side items (calls, reasoning); None for messages and the rest."""
    kind = get(item, "type")
    if kind == "function_call":
        return [parts.tool_call(get(item, "call_id"), get(item, "name"), get(item, "arguments"))]
    if kind == "reasoning":
        return [parts.reasoning(get(s, "text")) for s in get(item, "summary") or ()]
    return None


def _output_parts(item: Any) -> list[dict[str, Any]]:
    found = _item_parts(item)
    if found is not None:
        return found
    if get(item, "type") == "message":
        return parts.content_parts(list(get(item, "content") or ()))
    return [{"type": get(item, "type")}]  # hosted tool calls etc.: name the kind, not the payload


def finish_reason(response: Any) -> Any:
    status = get(response, "status")
    if status == "completed":
        calls = any(get(i, "type") == "function_call" for i in get(response, "output") or ())
        return "tool_calls" if calls else "stop"
    if status == "incomplete":
        reason = get(get(response, "incomplete_details"), "reason")
        return {"max_output_tokens": "length"}.get(reason, reason or "incomplete")
    return "error" if status == "failed" else status


def record_response(span: Span, response: Any, kwargs: Mapping[str, Any]) -> None:
    reason = finish_reason(response)
    set_attributes(
        span,
        {
            "gen_ai.response.id": get(response, "id"),
            "gen_ai.response.model": get(response, "model"),
            "openai.response.service_tier": get(response, "service_tier"),
            **usage_attributes(get(response, "usage")),
        },
    )
    if reason:
        span.set_attribute("gen_ai.response.finish_reasons", [reason])
    if capturing():
        found = [p for item in get(response, "output") or () for p in _output_parts(item)]
        record(span, "gen_ai.output.messages", [{"role": "assistant", "parts": found, "finish_reason": reason}])


_FINAL = ("response.completed", "response.incomplete", "response.failed")
_OUTPUT_DELTAS = (
    "response.output_text.delta",
    "response.refusal.delta",
    "response.function_call_arguments.delta",
    "response.reasoning_summary_text.delta",
    "response.reasoning_text.delta",
    "response.audio.delta",
)


class Stream:
    """Keeps the final response event; until it arrives, the items and text seen so far."""

    def __init__(self, kwargs: Mapping[str, Any]) -> None:
        self.kwargs = kwargs
        self.response: Any = None
        self.final = False
        self.items: dict[int, Any] = {}
        self.text: dict[int, list[str]] = {}

    def add(self, event: Any) -> bool:
        kind = getattr(event, "type", None)
        if kind in _FINAL:
            self.response, self.final = event.response, True
        elif kind == "response.created":
            self.response = event.response
        elif kind == "response.output_item.done":
            self.items[event.output_index] = event.item
            self.text.pop(event.output_index, None)
        elif kind == "response.output_text.delta":
            self.text.setdefault(event.output_index, []).append(event.delta)
        return kind in _OUTPUT_DELTAS

    def record(self, span: Span) -> None:
        if self.final:
            record_response(span, self.response, self.kwargs)
            return
        # Stopped early: what arrived so far, with no finish reason.
        set_attributes(span, {"gen_ai.response.id": get(self.response, "id"), "gen_ai.response.model": get(self.response, "model")})
        if capturing():
            found = []
            for index in sorted(set(self.items) | set(self.text)):
                if index in self.items:
                    found.extend(_output_parts(self.items[index]))
                else:
                    found.append(parts.text("".join(self.text[index])))
            record(span, "gen_ai.output.messages", [{"role": "assistant", "parts": found, "finish_reason": None}])
