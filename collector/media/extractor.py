"""The attachment extractor: the collector's body hook, its blob caches, and its construction
from settings."""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracelake.attachments import object_key
from tracelake.attachments.index import AttachmentIndex, AttachmentRow
from tracelake.auth.schema import VERIFIED_PROJECT_ATTR
from tracelake.collector.config import AttachmentLimits as Limits
from tracelake.collector.config import attachment_limits
from tracelake.collector.errors import MediaRefused, MediaStoreUnavailable
from tracelake.collector.media.detect import RunDetector, min_chars
from tracelake.collector.media.walk import Blob, Found, RequestWalk, Use
from tracelake.objectstore import ObjectStore, ObjectStoreError

log = logging.getLogger(__name__)

ATTACHMENTS_ATTR = "tracelake.attachments"
ERRORS_ATTR = "tracelake.attachment_errors"


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


def _first_strings(attributes: Any, keys: tuple[str, ...]) -> dict[str, str]:
    """The first value of each of ``keys`` among OTLP attributes, as text (as ClickHouse maps read it)."""
    out: dict[str, str] = {}
    for kv in attributes:
        if kv.key in keys and kv.key not in out:
            kind = kv.value.WhichOneof("value")
            out[kv.key] = kv.value.string_value if kind == "string_value" else (
                str(kv.value.int_value) if kind == "int_value" else "")
    return out


_RESOURCE_KEYS = (VERIFIED_PROJECT_ATTR, "tracelake.project", "openinference.project.name")
_SPAN_KEYS = ("tracelake.project",)


def span_project(resource: dict[str, str], span_attributes: Any) -> str:
    """A span's project exactly as otel_traces' ``Project`` column will compute it (schema.PROJECT
    behind the collector's stamp, migration 31): the key's project stamped on the resource, else
    the span's or the resource's claim, else 'default'."""
    if resource.get(VERIFIED_PROJECT_ATTR):
        return resource[VERIFIED_PROJECT_ATTR]
    claimed = _first_strings(span_attributes, _SPAN_KEYS).get("tracelake.project", "")
    return (claimed or resource.get("tracelake.project") or resource.get("openinference.project.name")
            or "default")


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
        self.has_run = RunDetector(min_chars(self.limits.min_bytes))
        self._known = _Lru(known_capacity)  # shas in the object store: no HEAD, no PUT
        self._indexed = _Lru(known_capacity)  # (sha, project) pairs with an index row: access recorded
        # (text digest, declared type) -> (sha, type, size) of blobs known stored: no decoding
        self.known_texts = _Lru(known_capacity)

    def __call__(self, body: bytes) -> bytes:
        if not self.has_run(body):
            return body
        try:
            request = ExportTraceServiceRequest.FromString(body)
            walk = RequestWalk(self)
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
        for use in walk.uses.values():  # after the blobs are stored: access follows storage
            self._index(use)
        return request.SerializeToString()

    def _walk(self, request: ExportTraceServiceRequest, walk: RequestWalk) -> bool:
        changed = False
        for rs in request.resource_spans:
            resource = _first_strings(rs.resource.attributes, _RESOURCE_KEYS)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    walk.found = Found()
                    walk.trace_id, walk.span_id = span.trace_id.hex(), span.span_id.hex()
                    walk.project = span_project(resource, span.attributes)
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

    def _attributes(self, attributes: Any, where: str, walk: RequestWalk) -> bool:
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

    def _annotate(self, span: Any, found: Found) -> None:
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

    def _store(self, sha: str, blob: Blob) -> None:
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

    def _index(self, use: Use) -> None:
        """One index row per (blob, project) it was lifted from: the row is what lets that project
        read the blob (tracelake.auth.web). A blob already stored for another project is
        deduplicated in storage, never in access."""
        if self.index is None or (use.sha, use.project) in self._indexed:
            return
        self.index.record(AttachmentRow(use.sha, use.mime, use.size, object_key(use.sha), use.trace_id,
                                        use.span_id, project=use.project))
        self._indexed.put((use.sha, use.project))

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
    if not settings.extract_attachments:
        return None
    if object_store is None:
        from tracelake.objectstore import from_settings

        object_store = from_settings(settings)
    limits = attachment_limits(settings)
    index = AttachmentIndex(store) if store is not None else None
    return MediaExtractor(object_store, limits, index)

