"""Builders for the GenAI semconv message parts, including multimodal ones.

Provider formats (OpenAI content parts, LangChain content blocks) are mapped here onto
``text`` / ``blob`` / ``uri`` / ``file`` / ``reasoning`` / ``tool_call`` parts. Binary content
is kept as base64 with its mime type and decoded size; the collector moves large blobs to
object storage.
"""
from __future__ import annotations

import json
import mimetypes
from collections.abc import Mapping
from typing import Any, Optional

Part = dict[str, Any]

AUDIO_MIME = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "ogg": "audio/ogg",
    "pcm16": "audio/pcm",
    "webm": "audio/webm",
}


def get(obj: Any, key: str, default: Any = None) -> Any:
    """Read a field from a dict or an object (SDK params come as either)."""
    if type(obj) is dict:  # the common case, checked first: this runs on every call
        return obj.get(key, default)
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def text(content: Any) -> Part:
    return {"type": "text", "content": content}


def reasoning(content: Any) -> Part:
    return {"type": "reasoning", "content": content}


def tool_call(call_id: Any, name: Any, arguments: Any) -> Part:
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": parse_arguments(arguments)}


def tool_call_response(call_id: Any, response: Any) -> Part:
    return {"type": "tool_call_response", "id": call_id, "response": response}


def tool_definition(tool: Any) -> Any:
    """Flatten ``{"type": "function", "function": {...}}`` to the semconv shape; others as given."""
    function = get(tool, "function")
    if get(tool, "type") == "function" and function is not None:
        flat = {"type": "function", "name": get(function, "name")}
        for key in ("description", "parameters", "strict"):
            if get(function, key) is not None:
                flat[key] = get(function, key)
        return flat
    return tool


def parse_arguments(arguments: Any) -> Any:
    """Tool arguments arrive as a JSON string; keep the string when it is not valid JSON."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def modality_of(mime: Optional[str], default: str = "document") -> str:
    major = (mime or "").split("/")[0]
    return major if major in ("image", "audio", "video") else default


def base64_size(data: str) -> int:
    """Decoded byte size of base64 text, without decoding it."""
    data = data.strip()
    return max(0, len(data) * 3 // 4 - data[-2:].count("="))


def blob(data: str, mime: Optional[str], modality: Optional[str] = None) -> Part:
    part: Part = {"type": "blob", "modality": modality or modality_of(mime), "content": data, "size": base64_size(data)}
    if mime:
        part["mime_type"] = mime
    return part


def uri(url: str, mime: Optional[str] = None, modality: Optional[str] = None) -> Part:
    mime = mime or mimetypes.guess_type(url.split("?")[0])[0]
    part: Part = {"type": "uri", "modality": modality or modality_of(mime), "uri": url}
    if mime:
        part["mime_type"] = mime
    return part


def file(file_id: str, mime: Optional[str] = None, modality: Optional[str] = None) -> Part:
    part: Part = {"type": "file", "modality": modality or modality_of(mime), "file_id": file_id}
    if mime:
        part["mime_type"] = mime
    return part


def from_url(url: str, modality: Optional[str] = None, mime: Optional[str] = None) -> Part:
    """A data: URI with base64 becomes a blob; anything else stays a uri part."""
    if url.startswith("data:"):
        header, sep, data = url.partition(",")
        if sep and header.endswith(";base64"):
            found = header[5:-7].split(";")[0] or None
            return blob(data, found or mime, modality)
    return uri(url, mime, modality)


def openai_part(block: Mapping[str, Any]) -> Optional[Part]:
    """OpenAI chat/responses content parts; None when the block is of another shape."""
    kind = block.get("type")
    if kind in ("text", "input_text", "output_text"):
        return text(block.get("text"))
    if kind == "refusal":
        return {"type": "refusal", "content": block.get("refusal")}
    if kind in ("image_url", "input_image"):
        image = block.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        if url:
            return from_url(url, "image")
        if block.get("file_id"):
            return file(block["file_id"], None, "image")
        return None
    if kind == "input_audio":
        audio = block.get("input_audio") or block
        fmt = str(audio.get("format") or "")
        return blob(audio.get("data") or "", AUDIO_MIME.get(fmt, f"audio/{fmt}" if fmt else None), "audio")
    if kind in ("file", "input_file"):
        spec = block.get("file") if isinstance(block.get("file"), Mapping) else block
        mime = spec.get("mime_type") or mimetypes.guess_type(spec.get("filename") or "")[0]
        if spec.get("file_data"):
            data = spec["file_data"]
            return from_url(data, "document", mime) if data.startswith("data:") else blob(data, mime, "document")
        if spec.get("file_url"):
            return uri(spec["file_url"], mime, "document")
        if spec.get("file_id"):
            return file(spec["file_id"], mime, "document")
    return None


def standard_block(block: Mapping[str, Any]) -> Optional[Part]:
    """LangChain standard content blocks (v1 and the older source_type form)."""
    kind = block.get("type")
    if kind in ("reasoning", "thinking"):
        return reasoning(block.get("reasoning") or block.get("thinking") or block.get("text"))
    if kind not in ("image", "audio", "video", "file", "text-plain"):
        return None
    modality = "document" if kind in ("file", "text-plain") else kind
    mime = block.get("mime_type")
    source = block.get("source_type")
    data = block.get("base64") or (block.get("data") if source in (None, "base64") else None)
    if data:
        return from_url(data, modality, mime) if data.startswith("data:") else blob(data, mime, modality)
    url = block.get("url") or (block.get("data") if source == "url" else None)
    if url:
        return from_url(url, modality, mime)
    file_id = block.get("file_id") or (block.get("id") if source == "id" else None)
    if file_id:
        return file(file_id, mime, modality)
    if kind == "text-plain" and block.get("text"):
        return text(block["text"])
    return None


def content_parts(content: Any) -> list[Part]:
    """Message content (a string or a list of blocks) as parts; unknown blocks pass through as-is."""
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [text(content)]
    if not isinstance(content, (list, tuple)):
        return [text(content)]
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(text(block))
            continue
        if not isinstance(block, Mapping):
            block = block.model_dump() if hasattr(block, "model_dump") else {"type": "text", "text": str(block)}
        part = openai_part(block) or standard_block(block)
        parts.append(part if part is not None else dict(block))
    return parts
