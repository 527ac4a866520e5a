"""Attachment extraction: media inside span payloads moves to the object store, a reference stays.

The collector calls a :class:`MediaExtractor` on every validated request body (``body_hook``).
Requests without media cost a sampled scan (~0.2 us per KB, :class:`RunDetector`) and come back
untouched: every payload worth extracting is a run of base64 characters at least as long as the
threshold, and only a request holding one is parsed and its string attributes (span and event)
walked:

* a whole value, or a JSON string inside it, that is a ``data:<mime>;base64,...`` URI
  (OpenAI ``image_url.url`` / ``file_data``, OpenInference ``...image.image.url``, OpenLLMetry
  ``gen_ai.prompt.N.content`` JSON, ``input.value``) becomes ``/api/attachments/<sha256>``;
  data URIs embedded in longer text (markdown, reprs, JSON inside JSON) are replaced in place;
* OTel GenAI ``blob`` parts become ``uri`` parts (``{"type": "uri", "modality", "mime_type",
  "uri", "size", ...}``), keeping their other keys;
* raw base64 next to a declared type: OpenAI ``input_audio.data`` (+ ``format``), Anthropic
  ``{"type": "base64", "media_type", "data"}``, Gemini ``inline_data`` / ``inlineData``.

Each blob is stored once under its sha256 (an in-memory LRU and a HEAD before each PUT make a
repeated image free), and the span gets ``tracelake.attachments`` (JSON list of what was
extracted, with type, size and place) and, when something could not be, ``tracelake.attachment_errors``.
Undecodable base64 or a type that contradicts the bytes stays as it was; media over the
per-attachment limit is replaced by a marker; a request over the per-request limit is refused.
"""
from __future__ import annotations

import binascii
import hashlib
import logging
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracelake.attachments import mime as mimes
from tracelake.attachments import object_key, reference
from tracelake.attachments.index import AttachmentIndex, AttachmentRow
from tracelake.objectstore import ObjectStore, ObjectStoreError

log = logging.getLogger(__name__)

ATTACHMENTS_ATTR = "tracelake.attachments"
ERRORS_ATTR = "tracelake.attachment_errors"
ERROR_KEY = "tracelake.error"  # added to an OTel GenAI part that could not be extracted
OMITTED_KEY = "tracelake.omitted"  # added to an OTel GenAI part over the per-attachment limit

# Characters of a base64 payload as it can sit in a span: both alphabets, padding, and line
# breaks raw or JSON-escaped (MIME-style wrapping).
_B64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_\\\n\r")
_FLAGS = bytes(49 if c in _B64_CHARS else 48 for c in range(256))  # b"1" for base64, b"0" else
_SAMPLES = 128  # consecutive base64 samples needed: prose (a space every ~7 chars) never has that many
_JSON_DEPTH = 64  # deeper JSON is left alone (no recursion bombs)
_NESTED_JSON = 2  # JSON strings inside JSON values are opened this many levels deep

# A data URI embedded in text; the payload runs to the first non-base64 character.
_DATA_URI = re.compile(r"data:([A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+)?((?:;[A-Za-z0-9!#$&^_.+-]+=[^;,\s\"'\\]*)*)"
                       r";base64,([A-Za-z0-9+/_-]+={0,2})")
_B64 = re.compile(r"[A-Za-z0-9+/_\-\s]+={0,2}\s*")
_MEDIA_KEYS = ("mime_type", "mimeType", "media_type", "mediaType")


class MediaError(Exception):
    """Base of the body hook's refusals; receivers answer ``http_status`` / ``grpc_code``."""

    http_status = 400
    grpc_code = 3  # INVALID_ARGUMENT

    @property
    def grpc_status(self) -> Any:
        import grpc

        return {8: grpc.StatusCode.RESOURCE_EXHAUSTED, 14: grpc.StatusCode.UNAVAILABLE}.get(
            self.grpc_code, grpc.StatusCode.INVALID_ARGUMENT)


class MediaRefused(MediaError):
    """The request's media exceed ``max_request_media_bytes``: 413 / RESOURCE_EXHAUSTED, not retried."""

    http_status = 413
    grpc_code = 8


class MediaStoreUnavailable(MediaError):
    """The object store failed: 503 / UNAVAILABLE, so exporters retry the request later."""

    http_status = 503
    grpc_code = 14


@dataclass(frozen=True)
class Limits:
    min_bytes: int = 1024
    max_attachment_bytes: int = 10 * 1024 * 1024
    max_request_media_bytes: int = 15 * 1024 * 1024


@dataclass
class _Found:
    """What one span yielded: references and problems, for its tracelake.* attributes."""

    refs: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Blob:
    data: bytes
    mime: str
    trace_id: str
    span_id: str
    text_keys: list[tuple[tuple[bytes, str | None], str]] = field(default_factory=list)  # (key, type)


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


class _Request:
    """State of one request's walk: pending blobs (sha -> blob) and the current span."""

    def __init__(self, extractor: MediaExtractor) -> None:
        self.x = extractor
        self.limits = extractor.limits
        self.min_chars = _min_chars(self.limits.min_bytes)
        self.has_run = extractor.has_run
        self.pending: dict[str, _Blob] = {}  # blobs to store (decoded in this request)
        self.sizes: dict[str, int] = {}  # every distinct blob referenced, stored already or not
        self.media_bytes = 0
        self.found = _Found()
        self.trace_id = self.span_id = ""
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
            blob = self.pending[sha] = _Blob(data, mime, self.trace_id, self.span_id)
        blob.text_keys.append((text_key, mime))
        return self.ref(path, sha, mime, len(data))

    def ref(self, path: str, sha: str, mime: str, size: int) -> _Outcome:
        if sha not in self.sizes:  # the request limit counts each distinct blob once
            self.sizes[sha] = size
            self.media_bytes += size
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


class RunDetector:
    """Does a text hold a run of at least ``min_chars`` base64 characters?

    Every extractable payload is such a run, so a body without one is returned untouched. The
    check samples every ``stride``-th byte in C (an extended slice, then ``translate``) and looks
    for ``min_chars // stride`` consecutive base64 samples: a real run always yields them (so no
    media is ever missed), while prose and JSON break them with spaces and punctuation. It costs
    ~0.2 us per KB where each plain ``marker in body`` scan costs ~0.5 us.
    """

    def __init__(self, min_chars: int) -> None:
        self.min_chars = min_chars
        self.stride = min_chars // _SAMPLES
        self.needle = b"1" * (min_chars // self.stride) if self.stride >= 2 else b""

    def __call__(self, data: bytes | str) -> bool:
        if len(data) < self.min_chars:
            return False
        if not self.needle:  # tiny thresholds: sampling cannot rule anything out
            return True
        sample = data[::self.stride]
        if isinstance(sample, str):
            sample = sample.encode("ascii", "replace")  # non-ASCII becomes '?', which breaks a run
        return self.needle in sample.translate(_FLAGS)


def _min_chars(min_bytes: int) -> int:
    """Length of the shortest base64 text that decodes to ``min_bytes``."""
    return max(1, (min_bytes * 4 + 2) // 3)


def might_have_media(body: bytes, min_bytes: int = 1024) -> bool:
    """The hot-path check: False means the body certainly carries nothing to extract."""
    return RunDetector(_min_chars(min_bytes))(body)


class _Lru:
    """A bounded, thread-safe LRU whose entries expire: after ``ttl_s`` a blob is looked up in the
    object store again, so one deleted meanwhile (by the archiver) is stored anew."""

    def __init__(self, capacity: int, ttl_s: float = 600.0) -> None:
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._items: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if time.monotonic() - item[0] > self.ttl_s:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: Any, value: Any = True) -> None:
        with self._lock:
            self._items[key] = (time.monotonic(), value)
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def __contains__(self, key: Any) -> bool:
        return self.get(key) is not None


@dataclass
class ExtractorStats:
    requests_parsed: int = 0
    extracted: int = 0  # references written into spans
    stored: int = 0  # blobs PUT into the object store
    stored_bytes: int = 0
    deduplicated: int = 0  # blobs already there
    errors: int = 0
    refused: int = 0


class MediaExtractor:
    """The collector's ``body_hook``: ``extractor(body) -> body``. Thread-safe."""

    def __init__(self, object_store: ObjectStore, limits: Limits | None = None,
                 index: AttachmentIndex | None = None, known_capacity: int = 16_384) -> None:
        self.object_store = object_store
        self.limits = limits or Limits()
        self.index = index
        self.stats = ExtractorStats()
        self.has_run = RunDetector(_min_chars(self.limits.min_bytes))
        self._known = _Lru(known_capacity)  # shas in the object store: no HEAD, no PUT
        # (text digest, declared type) -> (sha, type, size) of blobs known stored: no decoding
        self.known_texts = _Lru(known_capacity)

    def __call__(self, body: bytes) -> bytes:
        if not self.has_run(body):
            return body
        try:
            request = ExportTraceServiceRequest.FromString(body)
            walk = _Request(self)
            changed = self._walk(request, walk)
        except Exception:  # a bug here must never cost spans: keep the body as it came
            log.exception("attachment extraction failed; request kept unchanged")
            return body
        if not changed:
            return body
        if walk.media_bytes > self.limits.max_request_media_bytes:
            self.stats.refused += 1
            raise MediaRefused(
                f"request carries {walk.media_bytes} bytes of media, over max_request_media_bytes="
                f"{self.limits.max_request_media_bytes}: send fewer or smaller attachments per export")
        for sha, blob in walk.pending.items():
            self._store(sha, blob)
        return request.SerializeToString()

    def _walk(self, request: ExportTraceServiceRequest, walk: _Request) -> bool:
        changed = False
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    walk.found = _Found()
                    walk.trace_id, walk.span_id = span.trace_id.hex(), span.span_id.hex()
                    touched = self._attributes(span.attributes, "", walk)
                    for i, event in enumerate(span.events):
                        touched |= self._attributes(event.attributes, f"events[{i}].", walk)
                    if walk.found.refs or walk.found.errors:
                        self._annotate(span, walk.found)
                        touched = True
                    changed |= touched
        if changed:
            self.stats.requests_parsed += 1
        return changed

    def _attributes(self, attributes: Any, where: str, walk: _Request) -> bool:
        changed = False
        for kv in attributes:
            value = kv.value
            kind = value.WhichOneof("value")
            walk.attribute = where + kv.key
            if kind == "string_value":
                new = walk.text(value.string_value, "$")
                if new is not None:
                    value.string_value = new
                    changed = True
            elif kind == "array_value":
                for i, item in enumerate(value.array_value.values):
                    if item.WhichOneof("value") == "string_value":
                        new = walk.text(item.string_value, f"$[{i}]")
                        if new is not None:
                            item.string_value = new
                            changed = True
        return changed

    def _annotate(self, span: Any, found: _Found) -> None:
        self.stats.extracted += len(found.refs)
        self.stats.errors += len(found.errors)
        for key, items in ((ATTACHMENTS_ATTR, found.refs), (ERRORS_ATTR, found.errors)):
            if not items:
                continue
            text = orjson.dumps(items).decode()
            for kv in span.attributes:  # replace a value the client may have sent
                if kv.key == key:
                    kv.value.string_value = text
                    break
            else:
                kv = span.attributes.add()
                kv.key = key
                kv.value.string_value = text

    def _store(self, sha: str, blob: _Blob) -> None:
        if sha in self._known:
            self.stats.deduplicated += 1
            for text_key, mime in blob.text_keys:
                self.known_texts.put(text_key, (sha, mime, len(blob.data)))
            return
        key = object_key(sha)
        try:
            if self.object_store.head(key) is None:
                self.object_store.put(key, blob.data, content_type=blob.mime, metadata={"sha256": sha})
                self.stats.stored += 1
                self.stats.stored_bytes += len(blob.data)
            else:
                self.stats.deduplicated += 1
        except ObjectStoreError as exc:
            raise MediaStoreUnavailable(f"attachment store unavailable, retry later: {exc}") from exc
        self._known.put(sha)
        for text_key, mime in blob.text_keys:
            self.known_texts.put(text_key, (sha, mime, len(blob.data)))
        if self.index is not None:
            self.index.record(AttachmentRow(sha, blob.mime, len(blob.data), key, blob.trace_id, blob.span_id))

    def close(self) -> None:
        """Flush the attachment index (call after the collector stopped)."""
        if self.index is not None:
            self.index.close()


def build_body_hook(settings: Any, store: Any = None,
                    object_store: ObjectStore | None = None) -> Callable[[bytes], bytes] | None:
    """The extractor configured by ``settings`` (None when extraction is off).

    ``store`` (the ClickHouse Store) feeds the ``attachments`` index table; without it only the
    object store is written.
    """
    if not getattr(settings, "extract_attachments", True):
        return None
    if object_store is None:
        from tracelake.objectstore import from_settings

        object_store = from_settings(settings)
    limits = Limits(settings.attachment_min_bytes, settings.max_attachment_bytes, settings.max_request_media_bytes)
    index = AttachmentIndex(store) if store is not None else None
    return MediaExtractor(object_store, limits, index)


__all__ = ["ATTACHMENTS_ATTR", "ERRORS_ATTR", "Limits", "MediaError", "MediaExtractor", "MediaRefused",
           "MediaStoreUnavailable", "build_body_hook", "might_have_media", "omitted_marker"]
