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

Modules, one job each: ``detect`` (the sampled scan), ``walk`` (one request's attributes, JSON and
payloads), ``extractor`` (the body hook, its caches, the object store and index, construction
from settings).
"""
from tracelake.collector.errors import MediaError, MediaRefused, MediaStoreUnavailable
from tracelake.collector.media.detect import RunDetector, might_have_media, min_chars
from tracelake.collector.media.extractor import (
    ATTACHMENTS_ATTR,
    ERRORS_ATTR,
    ExtractorStats,
    Limits,
    MediaExtractor,
    build_body_hook,
)
from tracelake.collector.media.walk import ERROR_KEY, OMITTED_KEY, omitted_marker

__all__ = ["ATTACHMENTS_ATTR", "ERRORS_ATTR", "ERROR_KEY", "OMITTED_KEY", "ExtractorStats", "Limits", "MediaError",
           "MediaExtractor", "MediaRefused", "MediaStoreUnavailable", "RunDetector", "build_body_hook",
           "might_have_media", "min_chars", "omitted_marker"]
