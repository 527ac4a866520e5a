"""The object store protocol shared by attachments and the archiver: keys, bytes, metadata.

Keys are relative, ``/``-separated paths (``blobs/sha256/ab/cd/<sha>``). No segment may be empty,
start with ``.`` (so no ``..``, and room for the local store's sidecars) or hold a backslash, NUL
or control character: a key can never name anything outside the store, on disk or in a bucket.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

_SEGMENT = re.compile(r"[^./\\\x00-\x1f\x7f][^/\\\x00-\x1f\x7f]*")


class ObjectStoreError(RuntimeError):
    """The store refused or could not run an operation."""


class ObjectNotFound(ObjectStoreError, KeyError):
    """No object under this key."""


class InvalidKey(ObjectStoreError, ValueError):
    """The key is not a safe relative path."""


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise :class:`InvalidKey`."""
    if not key or len(key) > 1024 or not all(_SEGMENT.fullmatch(s) for s in key.split("/")):
        raise InvalidKey(f"invalid object key {key[:100]!r}")
    return key


def check_prefix(prefix: str) -> str:
    """A list prefix: '' or a key, optionally ending in '/' (a partial last segment is allowed)."""
    if prefix:
        check_key(prefix.rstrip("/") or "x")
    return prefix


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str = "application/octet-stream"
    metadata: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class ObjectStore(Protocol):
    """A flat namespace of immutable-ish objects; both implementations are thread-safe.

    ``metadata`` keys should be lower-case ASCII (S3 user metadata rules) and values short text.
    """

    url: str

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream",
            metadata: Mapping[str, str] | None = None) -> None:
        """Store ``data`` under ``key`` atomically (readers see the old object or the new one)."""

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        """``length`` bytes from ``offset`` (to the end when None). Raises ObjectNotFound."""

    def head(self, key: str) -> ObjectInfo | None:
        """Size, content type and metadata, or None when there is no such object."""

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, in key order (metadata not filled)."""

    def delete(self, key: str) -> None:
        """Remove the object; no error when it does not exist."""
