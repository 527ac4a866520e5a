"""Object store on S3 or any S3-compatible service (MinIO, Ceph, R2, moto ...) through boto3.

Objects live at ``<prefix><key>`` in the bucket; the content type is the object's Content-Type
and metadata is S3 user metadata (``x-amz-meta-*``), so other tools see both.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tracelake.objectstore.base import ObjectInfo, ObjectNotFound, ObjectStoreError, check_key, check_prefix

_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchObject"}


def make_client(endpoint_url: str | None = None, region: str | None = None,
                access_key_id: str | None = None, secret_access_key: str | None = None) -> Any:
    """A boto3 S3 client; unset values fall back to boto3's own chain (AWS_* env vars, config)."""
    import boto3
    from botocore.config import Config

    # Path-style addressing when an endpoint is given: MinIO and most self-hosted stores need it.
    config = Config(s3={"addressing_style": "path"} if endpoint_url else {},
                    retries={"max_attempts": 5, "mode": "standard"},
                    connect_timeout=5, read_timeout=30, max_pool_connections=32)
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region, aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key, config=config)


class S3ObjectStore:
    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None, endpoint_url: str | None = None,
                 region: str | None = None, access_key_id: str | None = None,
                 secret_access_key: str | None = None) -> None:
        if not bucket:
            raise ValueError("an S3 object store needs a bucket: s3://bucket/prefix")
        prefix = prefix.strip("/")
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.url = f"s3://{bucket}/{self.prefix}"
        self.client = client or make_client(endpoint_url, region, access_key_id, secret_access_key)

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    @staticmethod
    def _missing(exc: Exception) -> bool:
        response = getattr(exc, "response", None) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        status = str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        return code in _MISSING or status == "404"

    def _call(self, method: str, key: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            if self._missing(exc):
                raise ObjectNotFound(key) from exc
            raise ObjectStoreError(f"S3 {method} {self.url}{key}: {exc}") from exc
        except BotoCoreError as exc:
            raise ObjectStoreError(f"S3 {method} {self.url}{key}: {exc}") from exc

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream",
            metadata: Mapping[str, str] | None = None) -> None:
        self._call("put_object", key, Key=self._key(key), Body=bytes(data), ContentType=content_type,
                   Metadata=dict(metadata or {}))

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        if length == 0:
            self._call("head_object", key, Key=self._key(key))  # still raise for a missing key
            return b""
        extra: dict[str, str] = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            extra["Range"] = f"bytes={offset}-{end}"
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key), **extra)
        except ClientError as exc:
            if self._missing(exc):
                raise ObjectNotFound(key) from exc
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""  # offset at or past the end
            raise ObjectStoreError(f"S3 get_object {self.url}{key}: {exc}") from exc
        with response["Body"] as body:
            return body.read()

    def head(self, key: str) -> ObjectInfo | None:
        try:
            r = self._call("head_object", key, Key=self._key(key))
        except ObjectNotFound:
            return None
        return ObjectInfo(key, int(r["ContentLength"]), r.get("ContentType") or "application/octet-stream",
                          dict(r.get("Metadata") or {}))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", ()):
                    yield ObjectInfo(item["Key"][len(self.prefix):], int(item["Size"]))
        except Exception as exc:  # botocore errors, surfaced as ours
            raise ObjectStoreError(f"S3 list {self.url}{prefix}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self._call("delete_object", key, Key=self._key(key))
        except ObjectNotFound:
            pass

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.url!r})"
