"""tracelake.objectstore: put/get/head/list/delete of keys under a URL.

``file:///abs/dir`` (a local directory, the default under the data directory) or
``s3://bucket/prefix`` (boto3; endpoint, region and credentials from arguments, URL query
parameters ``endpoint_url`` / ``region``, or boto3's own chain of AWS_* env vars).
Used by attachments and the archiver.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tracelake.objectstore.base import (
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    check_key,
)

__all__ = ["InvalidKey", "ObjectInfo", "ObjectNotFound", "ObjectStore", "ObjectStoreError", "check_key",
           "default_url", "from_settings", "open_object_store"]


def open_object_store(url: str, *, endpoint_url: str | None = None, region: str | None = None,
                      access_key_id: str | None = None, secret_access_key: str | None = None) -> ObjectStore:
    """The store a URL names. A bare path is a local directory."""
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
            raise ValueError(f"file URLs need an absolute path (file:///dir), got {url!r}")
        path = unquote(parts.path) if parts.scheme else url
        if not path:
            raise ValueError(f"no directory in object store URL {url!r}")
        from tracelake.objectstore.local import LocalObjectStore

        return LocalObjectStore(os.path.expanduser(path))
    if parts.scheme == "s3":
        from tracelake.objectstore.s3 import S3ObjectStore

        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        return S3ObjectStore(parts.netloc, unquote(parts.path), endpoint_url=endpoint_url or query.get("endpoint_url"),
                             region=region or query.get("region"), access_key_id=access_key_id,
                             secret_access_key=secret_access_key)
    raise ValueError(f"unsupported object store URL {url!r}: use file:///dir or s3://bucket/prefix")


def default_url(data_dir: str | os.PathLike[str]) -> str:
    return (Path(data_dir).resolve() / "attachments").as_uri()


def from_settings(settings: Any) -> ObjectStore:
    """The store configured by :class:`tracelake.config.Settings` (object_store, s3_*)."""
    secret = settings.s3_secret_access_key
    return open_object_store(settings.object_store or default_url(settings.data_dir),
                             endpoint_url=settings.s3_endpoint_url, region=settings.s3_region,
                             access_key_id=settings.s3_access_key_id,
                             secret_access_key=secret.get_secret_value() if secret is not None else None)
