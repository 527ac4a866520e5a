"""Span attributes -> the span's input/output for people, whatever the instrumentation.

Pure functions (no I/O, no HTML): :func:`normalize` maps one span's attribute map to a
:class:`SpanIO` of typed messages, documents and values, shared by the HTML templates and the JSON
API. Conventions read:

* OTel GenAI: ``gen_ai.input.messages`` / ``gen_ai.output.messages`` / ``gen_ai.system_instructions``
  JSON (typed parts), ``gen_ai.tool.definitions``, tool spans' ``gen_ai.tool.call.arguments|result``;
* OpenInference: flattened ``llm.input_messages.N.message.*`` / ``llm.output_messages.N.message.*``,
  ``input.value`` / ``output.value`` (+ ``*.mime_type``), ``retrieval.documents.N.document.*``,
  ``llm.tools.N.tool.json_schema``;
* OpenLLMetry: ``gen_ai.prompt.N.*`` / ``gen_ai.completion.N.*``, ``traceloop.entity.input|output``.

Everything here is untrusted text: this module only restructures it; escaping is the templates' job.
Media references are classified (image/audio/other) so templates never guess from raw strings.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Literal

ATTACHMENT_RE = re.compile(r"^/api/attachments/([0-9a-f]{64})$")
ATTACHMENT_ANY_RE = re.compile(r"/api/attachments/([0-9a-f]{64})")
# Inline data URIs allowed as <img src>: raster formats only (never SVG, never HTML).
SAFE_DATA_IMAGE_RE = re.compile(r"^data:image/(png|jpeg|jpg|gif|webp);base64,[A-Za-z0-9+/=\s]+$")
HTTP_URL_RE = re.compile(r"^https?://[^\s\"'<>]+$", re.IGNORECASE)
IMAGE_EXT_RE = re.compile(r"\.(png|jpe?g|gif|webp|avif|bmp)(\?|#|$)", re.IGNORECASE)
AUDIO_EXT_RE = re.compile(r"\.(wav|mp3|ogg|oga|flac|m4a|aac|webm|opus)(\?|#|$)", re.IGNORECASE)
Modality = Literal["image", "audio", "video", "file"]


@dataclass
class Media:
    """A reference to media: an attachment (``/api/attachments/<sha>``), an http(s) URL or a small
    inline data URI. ``src`` is set only when it is safe to load in the page (same-origin attachment,
    http(s) URL, or raster data URI); otherwise the media is described, not loaded."""

    modality: Modality
    url: str
    mime_type: str = ""
    size: int | None = None
    name: str = ""
    sha256: str = ""
    src: str = ""  # what the page may load (img/audio src or download href); '' = not loadable
    inline_bytes: int = 0  # size of a data URI left inline

    @property
    def kind(self) -> str:
        return "media"


@dataclass
class Part:
    """One piece of a message.

    ``type``: text | json | tool_call | tool_result | media | reasoning | refusal.
    ``text`` holds text, pretty JSON, tool arguments or a tool result."""

    type: str
    text: str = ""
    name: str = ""
    id: str = ""
    media: Media | None = None


@dataclass
class Message:
    role: str
    parts: list[Part] = field(default_factory=list)
    name: str = ""
    tool_call_id: str = ""
    finish_reason: str = ""


@dataclass
class Document:
    content: str
    id: str = ""
    score: float | None = None
    metadata: str = ""


@dataclass
class Value:
    """A raw input/output value; ``json`` when it parsed (then ``text`` is pretty-printed)."""

    text: str
    json: bool = False


@dataclass
class SpanIO:
    conventions: list[str] = field(default_factory=list)
    system: list[Message] = field(default_factory=list)
    input: list[Message] = field(default_factory=list)
    output: list[Message] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    tools: list[Value] = field(default_factory=list)
    input_value: Value | None = None
    output_value: Value | None = None
    attachments: list[Media] = field(default_factory=list)  # every media reference in the span

    def empty(self) -> bool:
        return not (self.system or self.input or self.output or self.documents or self.tools
                    or self.input_value or self.output_value)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def other_attachments(self) -> list[Media]:
        """Attachments mentioned elsewhere in the span than in the rendered messages."""
        shown = {p.media.sha256 for m in self.system + self.input + self.output for p in m.parts if p.media}
        return [a for a in self.attachments if a.sha256 not in shown]


# --- helpers ----------------------------------------------------------------------------------
def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return None


def pretty(value: Any) -> str:
    """JSON values pretty-printed; strings that hold JSON are parsed and pretty-printed too."""
    if isinstance(value, str):
        parsed = _loads(value) if value[:1] in "[{" else None
        if parsed is None:
            return value
        value = parsed
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)
    except (ValueError, TypeError, RecursionError):
        return str(value)


def as_value(text: str, mime: str = "") -> Value:
    if mime == "application/json" or text[:1] in "[{":
        parsed = _loads(text)
        if parsed is not None and isinstance(parsed, (dict, list)):
            return Value(pretty(parsed), True)
    return Value(text, False)


def _str(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    return pretty(v)


def media_from_url(url: str, modality: str = "", mime: str = "", size: Any = None, name: str = "") -> Media:
    """Classify a media reference and decide what, if anything, the page may load."""
    url = url.strip()
    mod = (modality or "").lower()
    mime = (mime or "").lower()
    m = ATTACHMENT_RE.match(url)
    if m:
        if not mod:
            mod = mime.split("/")[0] if mime else "file"
        return Media(_modality(mod, mime), url, mime, _int(size), name, m.group(1), url)
    if url.startswith("data:"):
        head = url[5:60].split(",", 1)[0].lower()
        dmime = head.split(";")[0]
        if SAFE_DATA_IMAGE_RE.match(url):
            return Media("image", "", dmime, _int(size), name, "", url, len(url))
        # Anything else inline (SVG, HTML, audio...) is described, never loaded.
        return Media(_modality(mod or dmime.split("/")[0], dmime), "", dmime, _int(size), name, "", "", len(url))
    if HTTP_URL_RE.match(url):
        if not mod:
            mod = "image" if IMAGE_EXT_RE.search(url) else "audio" if AUDIO_EXT_RE.search(url) else "file"
        return Media(_modality(mod, mime), url, mime, _int(size), name, "", url)
    # javascript:, file:, relative paths, garbage: shown as text only.
    return Media(_modality(mod, mime), url, mime, _int(size), name, "", "")


def _modality(mod: str, mime: str) -> Modality:
    mod = mod.lower()
    if mod in ("image", "audio", "video"):
        return mod  # type: ignore[return-value]
    top = mime.split("/")[0]
    if top in ("image", "audio", "video"):
        return top  # type: ignore[return-value]
    return "file"


def _int(v: Any) -> int | None:
    try:
        return int(v) if v is not None and v != "" else None
    except (TypeError, ValueError):
        return None


def _index_tree(attrs: dict[str, str], prefix: str) -> dict[int, dict[str, str]]:
    """``prefix.N.rest`` keys -> {N: {rest: value}}, N sorted numerically, gaps tolerated."""
    out: dict[int, dict[str, str]] = {}
    plen = len(prefix) + 1
    for k, v in attrs.items():
        if not k.startswith(prefix + "."):
            continue
        idx, _, rest = k[plen:].partition(".")
        if not idx.isdigit() or not rest:
            continue
        out.setdefault(int(idx), {})[rest] = v
    return dict(sorted(out.items()))


# --- content parts (OTel GenAI parts, OpenAI / Anthropic content blocks) ------------------------
def parts_from_content(content: Any) -> list[Part]:
    """Message content in any common shape -> parts."""
    if content is None:
        return []
    if isinstance(content, str):
        if content[:1] == "[":
            parsed = _loads(content)
            if isinstance(parsed, list) and parsed and all(isinstance(p, dict) and "type" in p for p in parsed):
                return [p for item in parsed for p in _part(item)]
        if content[:1] == "{":
            parsed = _loads(content)
            if isinstance(parsed, dict):
                return [Part("json", pretty(parsed))]
        return [Part("text", content)] if content != "" else []
    if isinstance(content, list):
        out: list[Part] = []
        for item in content:
            out.extend(_part(item) if isinstance(item, dict) else [Part("text", _str(item))])
        return out
    if isinstance(content, dict):
        return _part(content) if "type" in content else [Part("json", pretty(content))]
    return [Part("text", _str(content))]


def _part(p: dict[str, Any]) -> list[Part]:
    t = str(p.get("type", "")).lower()
    if t in ("text", "input_text", "output_text"):
        return [Part("text", _str(p.get("content", p.get("text", ""))))]
    if t in ("reasoning", "thinking"):
        return [Part("reasoning", _str(p.get("content", p.get("thinking", p.get("text", "")))))]
    if t == "refusal":
        return [Part("refusal", _str(p.get("content", p.get("refusal", ""))))]
    if t in ("tool_call", "function_call", "tool_use"):
        args = p.get("arguments", p.get("input", p.get("function", {}).get("arguments") if isinstance(p.get("function"), dict) else None))
        name = p.get("name") or (p.get("function") or {}).get("name", "") if isinstance(p.get("function", {}), dict) else p.get("name", "")
        return [Part("tool_call", pretty(args) if args is not None else "", _str(name), _str(p.get("id", p.get("call_id", ""))))]
    if t in ("tool_call_response", "tool_result", "function_call_output"):
        resp = p.get("response", p.get("result", p.get("content", p.get("output"))))
        return [Part("tool_result", pretty(resp) if not isinstance(resp, str) else pretty(resp), "",
                     _str(p.get("id", p.get("tool_use_id", p.get("call_id", "")))))]
    if t in ("blob", "uri", "file", "image", "audio", "video", "image_url", "input_image", "input_audio", "document"):
        return [Part("media", media=_media_part(t, p))]
    return [Part("json", pretty(p))]


def _media_part(t: str, p: dict[str, Any]) -> Media:
    mime = _str(p.get("mime_type") or p.get("media_type") or p.get("mimeType") or "")
    modality = _str(p.get("modality") or "")
    size = p.get("size")
    name = _str(p.get("filename") or p.get("name") or "")
    if t == "image_url":
        iu = p.get("image_url")
        url = iu.get("url", "") if isinstance(iu, dict) else _str(iu)
        return media_from_url(_str(url), "image", mime, size, name)
    if t == "input_image":
        return media_from_url(_str(p.get("image_url") or p.get("file_id") or ""), "image", mime, size, name)
    if t == "input_audio":
        ia = p.get("input_audio") if isinstance(p.get("input_audio"), dict) else p
        fmt = _str(ia.get("format", ""))
        return media_from_url(_str(ia.get("data", "")), "audio", mime or (f"audio/{fmt}" if fmt else ""), size, name)
    if t in ("image", "audio", "video", "document") and isinstance(p.get("source"), dict):  # Anthropic
        src = p["source"]
        mime = mime or _str(src.get("media_type", ""))
        if src.get("type") == "base64":
            data = _str(src.get("data", ""))
            url = data if data.startswith(("/api/attachments/", "data:")) else f"data:{mime};base64,{data}"
        else:
            url = _str(src.get("url", ""))
        return media_from_url(url, t if t != "document" else "file", mime, size, name)
    if t == "blob":  # OTel GenAI inline bytes (base64) not extracted
        content = _str(p.get("content", ""))
        url = content if content.startswith(("/api/attachments/", "data:")) else f"data:{mime or 'application/octet-stream'};base64,{content}"
        return media_from_url(url, modality, mime, size, name)
    url = _str(p.get("uri") or p.get("url") or p.get("file_id") or p.get("data") or "")
    return media_from_url(url, modality or (t if t in ("image", "audio", "video") else ""), mime, size, name)


# --- OTel GenAI ---------------------------------------------------------------------------------
def _genai_messages(raw: str) -> list[Message] | None:
    data = _loads(raw)
    if isinstance(data, dict):
        data = data.get("messages", [data])
    if not isinstance(data, list):
        return None
    out: list[Message] = []
    for m in data:
        if not isinstance(m, dict):
            out.append(Message("unknown", [Part("text", _str(m))]))
            continue
        if "parts" in m:
            raw_parts = m.get("parts") or []
            raw_parts = raw_parts if isinstance(raw_parts, list) else [raw_parts]
            parts = [p for item in raw_parts for p in (_part(item) if isinstance(item, dict) else [Part("text", _str(item))])]
        else:  # OpenAI-style message objects in the same attribute
            parts = parts_from_content(m.get("content"))
            tcs = m.get("tool_calls") or []
            for tc in tcs if isinstance(tcs, list) else []:
                if isinstance(tc, dict):
                    fn = tc.get("function") if isinstance(tc.get("function"), dict) else tc
                    parts.append(Part("tool_call", pretty(fn.get("arguments", "")), _str(fn.get("name", "")), _str(tc.get("id", ""))))
        role = _str(m.get("role", "unknown")) or "unknown"
        if role == "tool" and m.get("tool_call_id") and parts and all(p.type in ("text", "json") for p in parts):
            parts = [Part("tool_result", pretty("\n".join(p.text for p in parts)), "", _str(m.get("tool_call_id")))]
        out.append(Message(role, parts, _str(m.get("name", "")), _str(m.get("tool_call_id", "")),
                           _str(m.get("finish_reason", ""))))
    return out


def _system_instructions(raw: str) -> list[Message]:
    data = _loads(raw)
    if data is None:
        return [Message("system", [Part("text", raw)])] if raw else []
    return [Message("system", parts_from_content(data if isinstance(data, list) else [data] if isinstance(data, dict) else _str(data)))]


# --- OpenInference ------------------------------------------------------------------------------
def _oi_messages(attrs: dict[str, str], prefix: str) -> list[Message]:
    out: list[Message] = []
    for _, m in _index_tree(attrs, prefix).items():
        role = m.get("message.role", "unknown") or "unknown"
        parts: list[Part] = []
        contents = _index_tree(m, "message.contents")
        if contents:
            for _, c in contents.items():
                ctype = c.get("message_content.type", "text")
                if ctype == "image" or "message_content.image.image.url" in c:
                    parts.append(Part("media", media=media_from_url(c.get("message_content.image.image.url", ""), "image")))
                elif ctype == "audio" or "message_content.audio.audio.url" in c:
                    parts.append(Part("media", media=media_from_url(c.get("message_content.audio.audio.url", ""), "audio",
                                                                    c.get("message_content.audio.audio.mime_type", ""))))
                else:
                    parts.extend(parts_from_content(c.get("message_content.text", "")))
        elif "message.content" in m:
            parts.extend(parts_from_content(m["message.content"]))
        for _, tc in _index_tree(m, "message.tool_calls").items():
            parts.append(Part("tool_call", pretty(tc.get("tool_call.function.arguments", "")),
                              tc.get("tool_call.function.name", ""), tc.get("tool_call.id", "")))
        tool_call_id = m.get("message.tool_call_id", "")
        if role == "tool" and tool_call_id and all(p.type in ("text", "json") for p in parts):
            parts = [Part("tool_result", pretty("\n".join(p.text for p in parts)), "", tool_call_id)]
        out.append(Message(role, parts, m.get("message.name", ""), tool_call_id, m.get("message.finish_reason", "")))
    return out


def _oi_documents(attrs: dict[str, str], prefix: str = "retrieval.documents") -> list[Document]:
    docs = []
    for _, d in _index_tree(attrs, prefix).items():
        score: float | None
        try:
            score = float(d["document.score"]) if "document.score" in d else None
        except ValueError:
            score = None
        meta = d.get("document.metadata", "")
        docs.append(Document(d.get("document.content", ""), d.get("document.id", ""), score, pretty(meta) if meta else ""))
    return docs


def _json_documents(raw: str) -> list[Document]:
    """``retrieval.documents`` as one JSON array (as some GenAI instrumentations write it)."""
    data = _loads(raw)
    if not isinstance(data, list):
        return []
    docs = []
    for d in data:
        if isinstance(d, dict):
            score = d.get("score")
            meta = d.get("metadata")
            docs.append(Document(_str(d.get("content", d.get("page_content", d.get("text", "")))), _str(d.get("id", "")),
                                 float(score) if isinstance(score, (int, float)) else None, pretty(meta) if meta else ""))
        else:
            docs.append(Document(_str(d)))
    return docs


# --- OpenLLMetry --------------------------------------------------------------------------------
def _ollm_messages(attrs: dict[str, str], prefix: str) -> list[Message]:
    out: list[Message] = []
    for _, m in _index_tree(attrs, prefix).items():
        role = m.get("role", "assistant" if prefix.endswith("completion") else "user") or "unknown"
        parts = parts_from_content(m.get("content")) if "content" in m else []
        for _, tc in _index_tree(m, "tool_calls").items():
            parts.append(Part("tool_call", pretty(tc.get("arguments", "")), tc.get("name", ""), tc.get("id", "")))
        tool_call_id = m.get("tool_call_id", "")
        if role == "tool" and tool_call_id and all(p.type in ("text", "json") for p in parts):
            parts = [Part("tool_result", pretty("\n".join(p.text for p in parts)), "", tool_call_id)]
        out.append(Message(role, parts, m.get("name", ""), tool_call_id, m.get("finish_reason", "")))
    return out


# --- entry point --------------------------------------------------------------------------------
def _split_system(msgs: list[Message]) -> tuple[list[Message], list[Message]]:
    return [m for m in msgs if m.role in ("system", "developer")], [m for m in msgs if m.role not in ("system", "developer")]


def normalize(attrs: dict[str, str]) -> SpanIO:
    """One span's attributes -> its input/output for people. Never raises: a payload shaped in a
    way this module does not expect leaves the messages empty, and the page still shows every
    attribute as text."""
    try:
        return _normalize(attrs)
    except Exception:  # noqa: BLE001 - hostile or novel payloads must not break the page
        io = SpanIO(conventions=["unparsed"])
        io.attachments = find_attachments(attrs.values())
        return io


# (convention, reader, input prefix, output prefix) for messages flattened into indexed keys.
_FLATTENED = (
    ("openinference", _oi_messages, "llm.input_messages", "llm.output_messages"),
    ("openllmetry", _ollm_messages, "gen_ai.prompt", "gen_ai.completion"),
)


def _normalize(attrs: dict[str, str]) -> SpanIO:
    io = SpanIO()
    # OTel GenAI (current semconv)
    if "gen_ai.input.messages" in attrs or "gen_ai.output.messages" in attrs:
        inp = _genai_messages(attrs.get("gen_ai.input.messages", "[]"))
        outp = _genai_messages(attrs.get("gen_ai.output.messages", "[]"))
        if inp is not None or outp is not None:
            io.conventions.append("otel-genai")
            io.system, io.input = _split_system(inp or [])
            io.output = outp or []
    if "gen_ai.system_instructions" in attrs:
        io.system = _system_instructions(attrs["gen_ai.system_instructions"]) + io.system
    # Flattened conventions (OpenInference, OpenLLMetry), where the current semconv left a gap.
    for convention, read, input_prefix, output_prefix in _FLATTENED:
        found = False
        if not io.input and any(k.startswith(input_prefix + ".") for k in attrs):
            io.system, io.input = _split_system(read(attrs, input_prefix))
            found = True
        if not io.output and any(k.startswith(output_prefix + ".") for k in attrs):
            io.output = read(attrs, output_prefix)
            found = True
        if found:
            io.conventions.append(convention)
    # Tool spans (GenAI execute_tool)
    if not io.input and "gen_ai.tool.call.arguments" in attrs:
        io.input_value = as_value(attrs["gen_ai.tool.call.arguments"])
    if not io.output and "gen_ai.tool.call.result" in attrs:
        io.output_value = as_value(attrs["gen_ai.tool.call.result"])
    # Documents
    io.documents = _oi_documents(attrs)
    if not io.documents and attrs.get("retrieval.documents", "")[:1] == "[":
        io.documents = _json_documents(attrs["retrieval.documents"])
    # Tool definitions
    if "gen_ai.tool.definitions" in attrs:
        io.tools = [as_value(attrs["gen_ai.tool.definitions"])]
    io.tools += [as_value(t.get("tool.json_schema", "")) for t in _index_tree(attrs, "llm.tools").values() if t.get("tool.json_schema")]
    # Raw values: shown when no messages were found (chains, agents, tools)
    if not io.input and io.input_value is None:
        if "input.value" in attrs:
            io.input_value = as_value(attrs["input.value"], attrs.get("input.mime_type", ""))
        elif "traceloop.entity.input" in attrs:
            io.input_value = as_value(attrs["traceloop.entity.input"])
    if not io.output and io.output_value is None:
        if "output.value" in attrs:
            io.output_value = as_value(attrs["output.value"], attrs.get("output.mime_type", ""))
        elif "traceloop.entity.output" in attrs:
            io.output_value = as_value(attrs["traceloop.entity.output"])
    io.attachments = find_attachments(attrs.values(), io)
    return io


def find_attachments(values: Iterable[str], io: SpanIO | None = None) -> list[Media]:
    """Every ``/api/attachments/<sha>`` mentioned in the span, once, with what the messages say."""
    known: dict[str, Media] = {}
    if io is not None:
        for m in io.system + io.input + io.output:
            for p in m.parts:
                if p.media is not None and p.media.sha256:
                    known.setdefault(p.media.sha256, p.media)
    for v in values:
        if "/api/attachments/" not in v:
            continue
        for sha in ATTACHMENT_ANY_RE.findall(v):
            known.setdefault(sha, media_from_url(f"/api/attachments/{sha}"))
    return list(known.values())


def apply_attachment_meta(io: SpanIO, meta: dict[str, dict[str, Any]]) -> None:
    """Fill mime type / size / modality of attachment references from the attachments table."""
    medias = [p.media for m in io.system + io.input + io.output for p in m.parts if p.media] + io.attachments
    for media in medias:
        info = meta.get(media.sha256) if media.sha256 else None
        if not info:
            continue
        media.mime_type = media.mime_type or info.get("mime_type", "")
        media.size = media.size if media.size is not None else info.get("size")
        if media.modality == "file":
            media.modality = _modality("", media.mime_type)


def summary_text(messages: list[Message], limit: int = 400) -> str:
    """The text of the last message, shortened (for session timelines)."""
    for m in reversed(messages):
        text = "\n".join(p.text for p in m.parts if p.type in ("text", "json") and p.text)
        if text:
            return text if len(text) <= limit else text[:limit] + "…"
    return ""
