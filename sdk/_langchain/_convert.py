"""LangChain objects (messages, documents, prompt values, results) as semconv-shaped JSON."""
from __future__ import annotations

from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from langchain_core.prompt_values import PromptValue

from .. import _parts as parts
from .._content import jsonable

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool"}


def role_of(message: BaseMessage) -> str:
    kind = message.type
    if kind.endswith("Chunk"):  # AIMessageChunk and friends
        kind = {"AIMessageChunk": "ai", "HumanMessageChunk": "human", "SystemMessageChunk": "system"}.get(kind, kind)
    if kind == "chat":
        return getattr(message, "role", "user")
    return _ROLES.get(kind, kind)


def message(msg: BaseMessage) -> dict[str, Any]:
    role = role_of(msg)
    if role == "tool":
        call_id = getattr(msg, "tool_call_id", None) or getattr(msg, "name", None)
        return {"role": "tool", "parts": [parts.tool_call_response(call_id, msg.content)]}
    found = parts.content_parts(msg.content)
    calls = getattr(msg, "tool_calls", None) or []
    if calls:
        # v1 content may list the same calls as blocks; the tool_calls field is the reference.
        found = [p for p in found if p.get("type") not in ("tool_call", "tool_call_chunk", "function_call")]
        found += [parts.tool_call(c.get("id"), c.get("name"), c.get("args")) for c in calls]
    result: dict[str, Any] = {"role": role, "parts": found}
    if msg.name:
        result["name"] = msg.name
    return result


def output_message(msg: BaseMessage, finish_reason: Any) -> dict[str, Any]:
    result = message(msg)
    result["finish_reason"] = finish_reason
    return result


def document(doc: Document) -> dict[str, Any]:
    result: dict[str, Any] = {"content": doc.page_content, "metadata": doc.metadata}
    if doc.id:
        result["id"] = doc.id
    return result


def to_json(value: Any) -> Any:
    """json.dumps default for run inputs and outputs."""
    if isinstance(value, BaseMessage):
        return message(value)
    if isinstance(value, Document):
        return document(value)
    if isinstance(value, PromptValue):
        return [message(m) for m in value.to_messages()]
    return jsonable(value)
