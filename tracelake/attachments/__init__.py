"""tracelake.attachments: media moved out of spans into the object store, and served back.

The collector side (extraction) is :mod:`tracelake.collector.media`; this package holds what
both sides share (key layout, reference format, media types), the ClickHouse index of
attachments and the ``GET /api/attachments/{sha256}`` endpoint. See docs/attachments.md.
"""
from __future__ import annotations

import re
from typing import Any

# 64 lower-case hex digits, nothing else: checked before any storage is touched.
SHA256_RE = re.compile(r"[0-9a-f]{64}")
REF_PREFIX = "/api/attachments/"
KEY_PREFIX = "blobs/sha256/"


def object_key(sha256: str) -> str:
    """Where a blob lives in the object store: ``blobs/sha256/ab/cd/abcd...``."""
    if not SHA256_RE.fullmatch(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256[:80]!r}")
    return f"{KEY_PREFIX}{sha256[:2]}/{sha256[2:4]}/{sha256}"


def reference(sha256: str) -> str:
    """What replaces the media in the span: ``/api/attachments/<sha256>``."""
    return REF_PREFIX + sha256


def install(app: Any) -> None:
    """Add ``/api/attachments/{sha256}`` to the UI/API app (called by tracelake.web.create_app)."""
    from tracelake.attachments.http import router

    if getattr(app.state, "object_store", None) is None:
        from tracelake.objectstore import from_settings

        app.state.object_store = from_settings(app.state.settings)
    app.include_router(router)


__all__ = ["KEY_PREFIX", "REF_PREFIX", "SHA256_RE", "install", "object_key", "reference"]
