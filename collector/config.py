"""Small typed configs for the collector's parts, built from the flat Settings in one place.

Each part (receivers, batcher, extractor) reads only its own fields; :func:`from_settings` is the
one place that knows the names of the process-wide settings.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BatchConfig:
    """The group commit (ack-after-commit mode) and the spool loaders' batches."""

    max_batch_spans: int = 32_768
    linger_s: float = 0.005
    max_queue_spans: int = 262_144
    max_queue_bytes: int = 512 * 1024 * 1024
    writers: int = 2


@dataclass(frozen=True)
class ReceiverConfig:
    """What both OTLP receivers need."""

    max_request_bytes: int = 20 * 1024 * 1024
    ack_timeout_s: float = 30.0
    retry_after_s: int = 1


@dataclass(frozen=True)
class SpoolConfig:
    """The ingest spool (docs/architecture.md, "Ingest spool"). ``directory`` None: ack after commit."""

    directory: Path | None = None
    max_bytes: int = 4 * 1024**3
    segment_bytes: int = 64 * 1024 * 1024
    segment_max_age_s: float = 0.5
    loaders: int = 2


@dataclass(frozen=True)
class AttachmentLimits:
    """The attachment extractor's limits (docs/attachments.md)."""

    min_bytes: int = 1024
    max_attachment_bytes: int = 10 * 1024 * 1024
    max_request_media_bytes: int = 15 * 1024 * 1024


@dataclass(frozen=True)
class CollectorConfig:
    receiver: ReceiverConfig = ReceiverConfig()
    batch: BatchConfig = BatchConfig()
    spool: SpoolConfig = SpoolConfig()


def from_settings(settings: Any) -> CollectorConfig:
    """The collector's config from :class:`tracelake.config.Settings`."""
    return CollectorConfig(
        receiver=ReceiverConfig(max_request_bytes=settings.max_request_bytes, ack_timeout_s=settings.ack_timeout_s,
                                retry_after_s=settings.retry_after_s),
        batch=BatchConfig(max_batch_spans=settings.batch_max_spans, linger_s=settings.batch_linger_ms / 1000,
                          max_queue_spans=settings.max_queue_spans, max_queue_bytes=settings.max_queue_bytes,
                          writers=settings.writers),
        spool=spool_config(settings),
    )


def spool_config(settings: Any) -> SpoolConfig:
    """Spool on ``spool_dir`` (default ``<data_dir>/spool``) unless ``ack_mode`` is ``commit``."""
    directory = settings.spool_directory()
    if directory is None:
        return SpoolConfig(directory=None)
    return SpoolConfig(directory=directory, max_bytes=settings.spool_max_bytes, segment_bytes=settings.spool_segment_bytes,
                       segment_max_age_s=settings.spool_segment_ms / 1000, loaders=settings.writers)



def attachment_limits(settings: Any) -> AttachmentLimits:
    return AttachmentLimits(settings.attachment_min_bytes, settings.max_attachment_bytes,
                            settings.max_request_media_bytes)
