"""The archiver's typed configuration, built from the flat :class:`tracelake.config.Settings` in
one place (:meth:`ArchiverConfig.from_settings`), as ``collector/config.py`` does for the collector.

Archiver, Eraser and Restorer read only this; nothing else in the archiver knows setting names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from tracelake.archiver.delta import ArchiveLocation
from tracelake.durations import parse_duration


@dataclass(frozen=True)
class ArchiverConfig:
    location: ArchiveLocation  # the Delta table, under the object store
    object_store_url: str  # attachments' blobs (the archiver's GC and erasure delete them)
    chunk_spans: int = 500_000  # spans per archive file
    every: timedelta = timedelta(hours=1)  # the schedule of `tracelake server`
    attachment_grace: timedelta = timedelta(hours=24)  # unreferenced blobs older than this are deleted
    erase_spool_wait_s: float = 30.0  # an erasure waits this long for the ingest spool to drain
    erase_parts_wait_s: float = 120.0  # ... and this long for replaced ClickHouse parts to go
    restore_pin_for: str = "7d"  # a restore's default pin; read per request (a bad value is that request's 400)
    retention_file: Path | None = None  # rules from a file: the source of truth, not editable from the page
    spool_dir: Path | None = None  # the collector's spool beside an embedded store (erasure waits for it)
    # open_object_store()'s S3 arguments; never printed (the secret).
    object_store_options: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_settings(cls, settings: Any) -> "ArchiverConfig":
        from tracelake.objectstore import default_url

        secret = settings.s3_secret_access_key
        options = {"endpoint_url": settings.s3_endpoint_url, "region": settings.s3_region,
                   "access_key_id": settings.s3_access_key_id,
                   "secret_access_key": secret.get_secret_value() if secret is not None else None}
        url = settings.object_store or default_url(settings.data_dir)
        every = parse_duration(settings.archive_every, allow_forever=False)
        grace = parse_duration(settings.attachment_gc_grace, allow_forever=False)
        assert every is not None and grace is not None  # allow_forever=False
        return cls(location=ArchiveLocation.for_url(url, **options), object_store_url=url,
                   chunk_spans=settings.archive_chunk_spans, every=every, attachment_grace=grace,
                   erase_spool_wait_s=settings.erase_spool_wait_s, erase_parts_wait_s=settings.erase_parts_wait_s,
                   restore_pin_for=settings.restore_pin_for, retention_file=settings.retention_file,
                   spool_dir=None if settings.clickhouse_url else settings.spool_directory(),
                   object_store_options=options)

    def open_object_store(self) -> Any:
        """The object store of attachments (raises when it cannot be opened)."""
        from tracelake.objectstore import open_object_store

        return open_object_store(self.object_store_url, **self.object_store_options)


__all__ = ["ArchiverConfig"]
