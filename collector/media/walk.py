"""The walk over one request: find payloads in string attributes, store-bound blobs, references.

A :class:`RequestWalk` holds the state of one request (pending blobs, media bytes so far, the
current span); the extractor drives it span by span and attribute by attribute.
"""
from __future__ import annotations

import binascii
import hashlib
import re
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from tracelake.attachments import mime as mimes
from tracelake.attachments import reference
from tracelake.collector.media.detect import min_chars

if TYPE_CHECKING:
    from tracelake.collector.media.extractor import MediaExtractor

ERROR_KEY = "tracelake.error"  # added to an OTel GenAI part that could not be extracted
OMITTED_KEY = "tracelake.omitted"  # added to an OTel GenAI part over the per-attachment limit

_JSON_DEPTH = 64  # deeper JSON is left alone (no recursion bombs)
_NESTED_JSON = 2  # JSON strings inside JSON values are opened this many levels deep

# A data URI embedded in text; the payload runs to the first non-base64 character.
_DATA_URI = re.compile(r"data:([A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+)?((?:;[A-Za-z0-9!#$&^_.+-]+=[^;,\s\"'\\]*)*)"
                       r";base64,([A-Za-z0-9+/_-]+={0,2})")
_B64 = re.compile(r"[A-Za-z0-9+/_\-\s]+={0,2}\s*")
_MEDIA_KEYS = ("mime_type", "mimeType", "media_type", "mediaType")


@dataclass
class Found:
    """What one span yielded: references and problems, for its tracelake.* attributes."""

    refs: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Blob:
    data: bytes
    mime: str
    trace_id: str
    span_id: str
    text_keys: list[tuple[tuple[bytes, str | None], str]] = field(default_factory=list)  # (key, type)


@dataclass(frozen=True)
class Use:
    """A blob lifted from a span of ``project``: what gives that project access to it (one
    per (sha, project) and request; the span named is the first that carried it)."""

    sha: str
    project: str
    mime: str
    size: int
    trace_id: str
    span_id: str


class _Outcome:
    """Result of looking at one payload: a stored reference, a problem, or too large."""

    __slots__ = ("sha", "mime", "size", "error", "omitted")

    def __init__(self, sha: str = "", mime: str = "", size: int = 0, error: str = "", omitted: bool = False):
        self.sha, self.mime, self.size, self.error, self.omitted = sha, mime, size, error, omitted


def _decoded_size(payload: str) -> int:
    """Decoded length of a base64 text without decoding it."""
    return len(payload.rstrip("=")) * 3 // 4  # rstrip looks at the end only


_URLSAFE = bytes.maketrans(b"-_", b"+/")
_STD_B64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


def _ascii(payload: str) -> bytes:
    try:
        return payload.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("invalid base64: non-ASCII characters") from None


def _b64decode(raw: bytes) -> bytes:
    """Strict base64 (either alphabet, padding optional, line breaks allowed) -> bytes."""
    if b"\n" in raw or b" " in raw or b"\r" in raw:  # MIME-style line breaks
        raw = b"".join(raw.split())
    raw = raw.rstrip(b"=")
    if len(raw) % 4 == 1:
        raise ValueError("invalid base64: truncated")
    if b"-" in raw or b"_" in raw:
        raw = raw.translate(_URLSAFE)
    raw += b"=" * (-len(raw) % 4)
    try:
        if sys.version_info >= (3, 11):  # the check in C; base64.b64decode(validate=True) runs a regex first
            return binascii.a2b_base64(raw, strict_mode=True)
        if not _STD_B64.fullmatch(raw):
            raise binascii.Error("non-base64 characters")
        return binascii.a2b_base64(raw)
    except binascii.Error as exc:
        raise ValueError(f"invalid base64: {exc}") from None


def omitted_marker(mime: str, size: int, limit: int) -> str:
    """What stands in for media over the per-attachment limit (documented in docs/attachments.md)."""
    return f"[tracelake: {mime} attachment of {size} bytes omitted, over the {limit}-byte limit]"


class RequestWalk:
    """State of one request's walk: pending blobs (sha -> blob) and the current span."""

    def __init__(self, extractor: MediaExtractor) -> None:
        self.x = extractor
        self.limits = extractor.limits
        self.min_chars = min_chars(self.limits.min_bytes)
        self.has_run = extractor.has_run
        self.pending: dict[str, Blob] = {}  # blobs to store (decoded in this request)
        self.sizes: dict[str, int] = {}  # every distinct blob referenced, stored already or not
        self.media_bytes = 0
        self.found = Found()
        self.trace_id = self.span_id = ""
        self.project = ""  # the current span's project (as the Project column will say)
        self.uses: dict[tuple[str, str], Use] = {}  # (sha, project) -> the first span that carried it
        self.attribute = ""

    # -- one payload ---------------------------------------------------------------------------

    def payload(self, payload: str, declared: str | None, path: str) -> _Outcome | None:
        """Extract one base64 payload; None when it stays (too small, or not media at all)."""
        size = _decoded_size(payload)
        if size < self.limits.min_bytes:
            return None
        mime = mimes.normalize(declared)
        if size > self.limits.max_attachment_bytes:
            out = _Outcome(mime=mime or mimes.OCTET_STREAM, size=size, omitted=True)
            self.error(path, "too_large", f"{size} bytes, over max_attachment_bytes={self.limits.max_attachment_bytes}",
                       mime_type=out.mime, size=size)
            return out
        try:
            raw = _ascii(payload)
            # A payload seen before (the same image in every turn of a conversation) is found by
            # the digest of its text: no decoding, sniffing or hashing of the bytes again.
            text_key = (hashlib.sha256(raw).digest(), mime)
            known = self.x.known_texts.get(text_key)
            if known is not None:
                return self.ref(path, *known)
            data = _b64decode(raw)
        except ValueError as exc:
            self.error(path, "invalid_base64", str(exc), mime_type=mime)
            return _Outcome(error=str(exc))
        problem = mimes.contradiction(mime, data)
        if problem:
            self.error(path, "mime_mismatch", problem, mime_type=mime, size=len(data))
            return _Outcome(error=problem)
        mime = mime or mimes.sniff(data) or mimes.OCTET_STREAM
        sha = hashlib.sha256(data).hexdigest()
        blob = self.pending.get(sha)
        if blob is None:
            blob = self.pending[sha] = Blob(data, mime, self.trace_id, self.span_id)
        blob.text_keys.append((text_key, mime))
        return self.ref(path, sha, mime, len(data))

    def ref(self, path: str, sha: str, mime: str, size: int) -> _Outcome:
        if sha not in self.sizes:  # the request limit counts each distinct blob once
            self.sizes[sha] = size
            self.media_bytes += size
        if (sha, self.project) not in self.uses:
            self.uses[(sha, self.project)] = Use(sha, self.project, mime, size, self.trace_id, self.span_id)
        self.found.refs.append({"uri": reference(sha), "mime_type": mime, "size": size,
                                "attribute": self.attribute, "path": path})
        return _Outcome(sha=sha, mime=mime, size=size)

    def error(self, path: str, kind: str, message: str, **extra: Any) -> None:
        entry = {"attribute": self.attribute, "path": path, "error": kind, "message": message}
        entry.update({k: v for k, v in extra.items() if v is not None})
        self.found.errors.append(entry)

    # -- strings -------------------------------------------------------------------------------

    def text(self, s: str, path: str, depth: int = 0) -> str | None:
        """A string's new value, or None when it does not change."""
        if not self.has_run(s):
            return None
        lead = s.lstrip()[:1]
        if lead in ("{", "[") and depth <= _NESTED_JSON:
            try:
                doc = orjson.loads(s)
            except orjson.JSONDecodeError:
                pass
            else:
                if isinstance(doc, (dict, list)) and self.json(doc, path, 0, depth):
                    return orjson.dumps(doc).decode()
                return None
        if s.startswith("data:"):
            return self.data_uri(s, path)
        return self.embedded(s, path)

    def data_uri(self, s: str, path: str) -> str | None:
        """A value that is one whole data URI."""
        header, sep, payload = s.partition(",")
        if not sep or not header.endswith(";base64"):
            return None
        declared = header[5:].split(";", 1)[0] or None
        out = self.payload(payload, declared, path)
        if out is None or out.error:
            return None
        if out.omitted:
            return omitted_marker(out.mime, out.size, self.limits.max_attachment_bytes)
        return reference(out.sha)

    def embedded(self, s: str, path: str) -> str | None:
        """Data URIs inside longer text, replaced where they stand."""
        changed = False

        def replace(m: re.Match[str]) -> str:
            nonlocal changed
            out = self.payload(m.group(3), m.group(1), path)
            if out is None or out.error:
                return m.group(0)
            changed = True
            if out.omitted:
                return omitted_marker(out.mime, out.size, self.limits.max_attachment_bytes)
            return reference(out.sha)

        new = _DATA_URI.sub(replace, s)
        return new if changed else None

    # -- JSON ----------------------------------------------------------------------------------

    def json(self, node: Any, path: str, level: int, depth: int) -> bool:
        """Rewrite media inside a parsed JSON value in place; True when anything changed."""
        if level > _JSON_DEPTH:
            return False
        changed = False
        if isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, str):
                    new = self.text(item, f"{path}[{i}]", depth + 1)
                    if new is not None:
                        node[i] = new
                        changed = True
                elif isinstance(item, (dict, list)):
                    changed |= self.json(item, f"{path}[{i}]", level + 1, depth)
            return changed
        if not isinstance(node, dict):
            return False
        if node.get("type") == "blob" and isinstance(node.get("content"), str):
            return self.blob_part(node, path)
        raw_key = self.raw_base64_key(node)
        if raw_key is not None:
            changed |= self.raw(node, raw_key, path)
        for key, value in node.items():
            if key == raw_key:
                continue
            sub = f"{path}.{key}"
            if isinstance(value, str):
                new = self.text(value, sub, depth + 1)
                if new is not None:
                    node[key] = new
                    changed = True
            elif isinstance(value, (dict, list)):
                if key == "input_audio" and isinstance(value, dict) and isinstance(value.get("data"), str):
                    changed |= self.raw(value, "data", f"{sub}", declared=mimes.from_audio_format(value.get("format")))
                else:
                    changed |= self.json(value, sub, level + 1, depth)
        return changed

    @staticmethod
    def raw_base64_key(node: dict[str, Any]) -> str | None:
        """The key holding raw base64 in this object, if any: Anthropic and Gemini sources
        (a declared type beside ``data``), OpenAI output audio (``data`` + ``transcript``)."""
        if isinstance(node.get("data"), str) and (
                node.get("type") == "base64" or any(k in node for k in _MEDIA_KEYS)
                or "transcript" in node or "expires_at" in node):
            return "data"
        return None

    def raw(self, node: dict[str, Any], key: str, path: str, declared: str | None = None) -> bool:
        value = node[key]
        if value.startswith("data:"):  # some clients put a data URI where base64 is expected
            new = self.data_uri(value, f"{path}.{key}")
            if new is not None:
                node[key] = new
            return new is not None
        if declared is None:
            declared = next((node[k] for k in _MEDIA_KEYS if isinstance(node.get(k), str)), None)
        if len(value) < self.min_chars or not _B64.fullmatch(value[:4096]):
            # Not base64 at all (plain text under 'data'): not ours to judge, unless it is big
            # and sits where only base64 belongs.
            if len(value) >= self.min_chars and (node.get("type") == "base64" or mimes.has_signature(declared)):
                self.error(f"{path}.{key}", "invalid_base64", "not base64 text", mime_type=mimes.normalize(declared))
            return False
        out = self.payload(value, declared, f"{path}.{key}")
        if out is None or out.error:
            return False
        node[key] = (omitted_marker(out.mime, out.size, self.limits.max_attachment_bytes) if out.omitted
                     else reference(out.sha))
        return True

    def blob_part(self, part: dict[str, Any], path: str) -> bool:
        """An OTel GenAI ``blob`` part -> a ``uri`` part pointing at the store."""
        declared = part.get("mime_type") if isinstance(part.get("mime_type"), str) else None
        out = self.payload(part["content"], declared, f"{path}.content")
        if out is None:
            return False
        if out.error:
            part[ERROR_KEY] = out.error
            return True
        if out.omitted:
            del part["content"]
            part["mime_type"] = declared or out.mime
            part["size"] = out.size
            part[OMITTED_KEY] = f"over the {self.limits.max_attachment_bytes}-byte attachment limit"
            return True
        rest = {k: v for k, v in part.items() if k not in ("type", "content", "modality", "mime_type", "uri", "size")}
        modality = part.get("modality") or _modality(out.mime)
        part.clear()
        part["type"] = "uri"
        if modality:
            part["modality"] = modality
        part["mime_type"] = declared or out.mime
        part["uri"] = reference(out.sha)
        part["size"] = out.size
        part.update(rest)
        return True


def _modality(mime: str) -> str | None:
    major = mime.split("/", 1)[0]
    return major if major in ("image", "audio", "video") else None
