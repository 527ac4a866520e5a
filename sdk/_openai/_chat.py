"""Chat Completions: request parameters, messages, response and stream assembly."""
from __future__ import annotations

from typing import Any, Mapping

from opentelemetry.trace import Span

from .. import _parts as parts
from .._content import capturing, record
from .._parts import get
from .._spans import set_attributes
from ._params import given, pick, stop_sequences, usage_attributes

NAME = "chat"

_PARAMS = (
    ("model", "gen_ai.request.model"),
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("seed", "gen_ai.request.seed"),
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("max_completion_tokens", "gen_ai.request.max_tokens"),
)


def request_attributes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    attributes = pick(kwargs, _PARAMS)
    stop = stop_sequences(kwargs.get("stop"))
    if stop:
        attributes["gen_ai.request.stop_sequences"] = stop
    n = kwargs.get("n")
    if given(n) and n != 1:
        attributes["gen_ai.request.choice.count"] = n
    return attributes


def record_request(span: Span, kwargs: Mapping[str, Any]) -> None:
    messages = kwargs.get("messages")
    if given(messages):
        record(span, "gen_ai.input.messages", [input_message(m) for m in messages])
    tools = kwargs.get("tools")
    if given(tools) and tools:
        record(span, "gen_ai.tool.definitions", [parts.tool_definition(t) for t in tools])


def input_message(message: Any) -> dict[str, Any]:
    role = get(message, "role")
    if role in ("tool", "function"):
        call_id = get(message, "tool_call_id") or get(message, "name")
        return {"role": "tool", "parts": [parts.tool_call_response(call_id, get(message, "content"))]}
    found = parts.content_parts(get(message, "content"))
    for call in get(message, "tool_calls") or ():
        function = get(call, "function")
        found.append(parts.tool_call(get(call, "id"), get(function, "name"), get(function, "arguments")))
    legacy = get(message, "function_call")
    if legacy:
        found.append(parts.tool_call(None, get(legacy, "name"), get(legacy, "arguments")))
    result: dict[str, Any] = {"role": "system" if role == "developer" else role, "parts": found}
    if get(message, "name"):
        result["name"] = get(message, "name")
    return result


def record_response(span: Span, completion: Any, kwargs: Mapping[str, Any]) -> None:
    # Responses are the client's pydantic models: plain attribute access keeps this cheap.
    choices = completion.choices or []
    attributes = {
        "gen_ai.response.id": completion.id,
        "gen_ai.response.model": completion.model,
        "openai.response.service_tier": getattr(completion, "service_tier", None),
        **usage_attributes(completion.usage),
    }
    reasons = [c.finish_reason for c in choices if c.finish_reason]
    if reasons:
        attributes["gen_ai.response.finish_reasons"] = reasons
    set_attributes(span, attributes)
    if capturing():
        audio = kwargs.get("audio")
        audio_format = get(audio, "format") if given(audio) else None
        record(span, "gen_ai.output.messages", [_output(c, audio_format) for c in choices])


def _extra(model: Any, key: str) -> Any:
    """A field outside OpenAI's schema, as sent by compatible servers."""
    return (getattr(model, "model_extra", None) or {}).get(key)


def _output(choice: Any, audio_format: Any) -> dict[str, Any]:
    message = choice.message
    found: list[dict[str, Any]] = []
    # Reasoning text is not in OpenAI's schema, but vLLM, DeepSeek and others send it.
    thought = _extra(message, "reasoning_content") or _extra(message, "reasoning")
    if isinstance(thought, str) and thought:
        found.append(parts.reasoning(thought))
    if message.content:
        found.append(parts.text(message.content))
    if getattr(message, "refusal", None):
        found.append({"type": "refusal", "content": message.refusal})
    audio = getattr(message, "audio", None)
    if audio is not None:
        if audio.transcript and not message.content:
            found.append(parts.text(audio.transcript))
        if audio.data:
            found.append(parts.blob(audio.data, parts.AUDIO_MIME.get(str(audio_format)), "audio"))
    for call in message.tool_calls or ():
        function = getattr(call, "function", None)  # custom tools have none
        if function is not None:
            found.append(parts.tool_call(call.id, function.name, function.arguments))
    return {"role": message.role or "assistant", "parts": found, "finish_reason": choice.finish_reason}


class _Choice:
    __slots__ = ("text", "reasoning", "refusal", "calls", "finish_reason", "role")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.calls: dict[int, list[Any]] = {}  # index -> [id, name, argument pieces]
        self.finish_reason: Any = None
        self.role = "assistant"


class Stream:
    """Assembles streamed chunks into the same attributes a non-streamed call gets."""

    def __init__(self, kwargs: Mapping[str, Any]) -> None:
        self.kwargs = kwargs
        self.id: Any = None
        self.model: Any = None
        self.service_tier: Any = None
        self.usage: Any = None
        self.choices: dict[int, _Choice] = {}

    def add(self, chunk: Any) -> bool:
        """Take one chunk; True when it carried generated output."""
        if self.id is None:
            self.id, self.model = chunk.id, chunk.model
            self.service_tier = getattr(chunk, "service_tier", None)
        if chunk.usage is not None:
            self.usage = chunk.usage
        output = False
        for choice in chunk.choices:
            slot = self.choices.get(choice.index)
            if slot is None:
                slot = self.choices[choice.index] = _Choice()
            delta = choice.delta
            if delta is not None:
                output = self._delta(slot, delta) or output
            if choice.finish_reason:
                slot.finish_reason = choice.finish_reason
        return output

    @staticmethod
    def _delta(slot: _Choice, delta: Any) -> bool:
        output = False
        if delta.role:
            slot.role = delta.role
        if delta.content:
            slot.text.append(delta.content)
            output = True
        thought = _extra(delta, "reasoning_content") or _extra(delta, "reasoning")
        if isinstance(thought, str) and thought:
            slot.reasoning.append(thought)
            output = True
        if getattr(delta, "refusal", None):
            slot.refusal.append(delta.refusal)
            output = True
        for call in delta.tool_calls or ():
            entry = slot.calls.setdefault(call.index, [None, None, []])
            entry[0] = call.id or entry[0]
            if call.function is not None:
                entry[1] = call.function.name or entry[1]
                if call.function.arguments:
                    entry[2].append(call.function.arguments)
            output = True
        return output

    def record(self, span: Span) -> None:
        set_attributes(
            span,
            {
                "gen_ai.response.id": self.id,
                "gen_ai.response.model": self.model,
                "openai.response.service_tier": self.service_tier,
                **usage_attributes(self.usage),
            },
        )
        ordered = [self.choices[i] for i in sorted(self.choices)]
        reasons = [c.finish_reason for c in ordered if c.finish_reason]
        if reasons:
            span.set_attribute("gen_ai.response.finish_reasons", reasons)
        if capturing():
            record(span, "gen_ai.output.messages", [self._message(c) for c in ordered])

    @staticmethod
    def _message(choice: _Choice) -> dict[str, Any]:
        found: list[dict[str, Any]] = []
        if choice.reasoning:
            found.append(parts.reasoning("".join(choice.reasoning)))
        if choice.text:
            found.append(parts.text("".join(choice.text)))
        if choice.refusal:
            found.append({"type": "refusal", "content": "".join(choice.refusal)})
        for index in sorted(choice.calls):
            call_id, name, pieces = choice.calls[index]
            found.append(parts.tool_call(call_id, name, "".join(pieces)))
        return {"role": choice.role, "parts": found, "finish_reason": choice.finish_reason}
