"""The archive's Delta Lake table: where it lives, its schema, and write / delete / vacuum.

One table, ``<object store>/archive/otel_traces``, written only by the archiver (a single writer:
on S3 that is what makes ``AWS_S3_ALLOW_UNSAFE_RENAME`` safe, see docs/archive.md). Partitioned by
``Day`` (UTC day of the trace's start) then ``Project``; rows sorted by TraceId inside each file,
small row groups, so a lookup by trace id reads one row group of one file.

Columns are named for any Delta reader (Spark, DuckDB, Polars, Trino, ClickHouse): events and links
are lists of structs, times are Int64 ``*UnixNano`` as in OTLP (Delta timestamps are
microseconds: a timestamp column would lose the nanoseconds, and a second one costs ~4 % of the
bytes for what any engine computes from the nanoseconds). The ClickHouse view
(:func:`tracelake.store.archive_schema.archive_view_sql`) maps them back to otel_traces' names.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pyarrow as pa

APP_ID = "tracelake-archiver"  # the Delta app transaction id: its version is the last run's Seq
TABLE_NAME = "otel_traces"
PARTITIONS = ["Day", "Project"]

_MAP = pa.map_(pa.string(), pa.string())
EVENT = pa.struct([("TimeUnixNano", pa.int64()), ("Name", pa.string()), ("Attributes", _MAP)])
LINK = pa.struct([("TraceId", pa.string()), ("SpanId", pa.string()), ("TraceState", pa.string()),
                  ("Attributes", _MAP)])
SCHEMA = pa.schema([
    ("StartTimeUnixNano", pa.int64()),
    ("TraceId", pa.string()),
    ("SpanId", pa.string()),
    ("ParentSpanId", pa.string()),
    ("TraceState", pa.string()),
    ("SpanName", pa.string()),
    ("SpanKind", pa.string()),
    ("ServiceName", pa.string()),
    ("ResourceAttributes", _MAP),
    ("ScopeName", pa.string()),
    ("ScopeVersion", pa.string()),
    ("SpanAttributes", _MAP),
    ("Duration", pa.int64()),
    ("StatusCode", pa.string()),
    ("StatusMessage", pa.string()),
    ("Events", pa.list_(EVENT)),
    ("Links", pa.list_(LINK)),
    ("LlmOperation", pa.string()),
    ("LlmProvider", pa.string()),
    ("LlmModel", pa.string()),
    ("InputTokens", pa.int64()),
    ("OutputTokens", pa.int64()),
    ("CostUsd", pa.float64()),
    ("SessionId", pa.string()),
    ("UserId", pa.string()),
    ("RunId", pa.string()),
    ("Day", pa.string()),
    ("Project", pa.string()),
])


class ArchiveStoreError(RuntimeError):
    """The object store holding the archive refused or could not be reached."""


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


_SAFE_PART = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class DataFile:
    """A Parquet file written into the table (not yet committed): one Delta ``add`` action."""

    path: str  # relative to the table root
    size: int
    partition: dict[str, str]
    rows: int
    stats: str  # Delta statistics JSON
    modified_ms: int


@dataclass(frozen=True)
class ArchiveLocation:
    """Where the Delta table is, how delta-rs reaches it, and how ClickHouse reads it."""

    uri: str  # /abs/path or s3://bucket/prefix/archive/otel_traces
    storage_options: dict[str, str] = field(default_factory=dict)
    clickhouse_source: str = ""  # table engine: DeltaLakeLocal(...) / DeltaLake(...)
    is_local: bool = True
    clickhouse_url: str = ""  # the table root as ClickHouse's file() / s3() address it, ending in /
    clickhouse_credentials: tuple[str, ...] = ()  # s3(): key, secret

    def clickhouse_function(self, relative: str, fmt: str) -> str:
        """``file(...)`` / ``s3(...)`` for a file of the table (``relative`` is ours: partition
        directory and generated name, never user text; partition values are sanitized)."""
        args = [_sql_string(self.clickhouse_url + relative)]
        if self.is_local:
            return f"file({args[0]}, {_sql_string(fmt)})"
        args += [_sql_string(c) for c in self.clickhouse_credentials]
        return f"s3({', '.join(args)}, {_sql_string(fmt)})"

    @staticmethod
    def partition_path(day: str, project: str) -> str:
        """``Day=.../Project=.../`` as writers lay partitions out. Readers take partition values
        from the Delta log, not from the path, so a project name outside ``[A-Za-z0-9_.-]`` is
        written as a hash rather than escaped (no percent-encoding for engines to disagree on)."""
        if not _SAFE_PART.fullmatch(project):
            project = "_" + hashlib.sha256(project.encode()).hexdigest()[:16]
        if not _SAFE_PART.fullmatch(day):
            raise ValueError(f"unexpected Day partition {day!r}")
        return f"Day={day}/Project={project}/"

    @classmethod
    def for_url(cls, url: str, *, endpoint_url: str | None = None, region: str | None = None,
                access_key_id: str | None = None, secret_access_key: str | None = None) -> "ArchiveLocation":
        """The archive under an object store URL (file:///dir, /dir or s3://bucket/prefix)."""
        parts = urlsplit(url)
        if parts.scheme in ("", "file"):
            root = Path(unquote(parts.path) if parts.scheme else url).expanduser().resolve()
            path = root / "archive" / TABLE_NAME
            return cls(str(path), {}, f"DeltaLakeLocal({_sql_string(str(path))})", True, str(path) + "/")
        if parts.scheme != "s3":
            raise ValueError(f"unsupported archive location {url!r}: use file:///dir or s3://bucket/prefix")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        endpoint = endpoint_url or query.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL")
        region = region or query.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        key = access_key_id or os.environ.get("AWS_ACCESS_KEY_ID")
        secret = secret_access_key or os.environ.get("AWS_SECRET_ACCESS_KEY")
        bucket, prefix = parts.netloc, unquote(parts.path).strip("/")
        path = "/".join(p for p in (prefix, "archive", TABLE_NAME) if p)
        options = {"AWS_S3_ALLOW_UNSAFE_RENAME": "true"}  # single writer: see docs/archive.md
        if endpoint:
            options["AWS_ENDPOINT_URL"] = endpoint
            if endpoint.startswith("http://"):
                options["AWS_ALLOW_HTTP"] = "true"
        options["AWS_REGION"] = region or "us-east-1"
        if key and secret:
            options["AWS_ACCESS_KEY_ID"], options["AWS_SECRET_ACCESS_KEY"] = key, secret
        http = (f"{endpoint.rstrip('/')}/{bucket}/{path}/" if endpoint
                else f"https://{bucket}.s3.{region or 'us-east-1'}.amazonaws.com/{path}/")
        args = [_sql_string(http)] + ([_sql_string(key), _sql_string(secret)] if key and secret else [])
        return cls(f"s3://{bucket}/{path}", options, f"DeltaLake({', '.join(args)})", False, http,
                   (key, secret) if key and secret else ())


def _wrap(exc: Exception) -> ArchiveStoreError:
    return ArchiveStoreError(f"archive object store: {exc}")


class DeltaArchive:
    """Write, delete and vacuum the archive table. Not thread-safe: one archiver at a time."""

    def __init__(self, location: ArchiveLocation) -> None:
        self.location = location

    def _table(self):
        from deltalake import DeltaTable

        return DeltaTable(self.location.uri, storage_options=self.location.storage_options)

    def exists(self) -> bool:
        from deltalake import DeltaTable

        try:
            return DeltaTable.is_deltatable(self.location.uri, storage_options=self.location.storage_options)
        except Exception as exc:  # noqa: BLE001 - delta-rs raises several types for I/O
            raise _wrap(exc) from exc

    def ensure(self) -> None:
        """Create the (empty) table if there is none, so the ClickHouse view has something to read."""
        from deltalake import DeltaTable

        if self.location.is_local:
            Path(self.location.uri).mkdir(parents=True, exist_ok=True)
        if self.exists():
            return
        try:
            DeltaTable.create(self.location.uri, schema=SCHEMA, partition_by=PARTITIONS, mode="ignore",
                              name="tracelake otel_traces archive",
                              storage_options=self.location.storage_options)
        except Exception as exc:  # noqa: BLE001
            raise _wrap(exc) from exc

    def committed_seq(self) -> int:
        """The Seq of the last run whose write committed (-1 if none)."""
        try:
            version = self._table().transaction_version(APP_ID)
        except Exception as exc:  # noqa: BLE001
            raise _wrap(exc) from exc
        return -1 if version is None else int(version)

    def commit(self, files: list[DataFile], seq: int, run_id: str) -> int:
        """Add every file in ONE Delta commit tagged with app transaction (APP_ID, seq).

        Returns the table version written. A crash before the commit leaves only unreferenced
        files (vacuumed later); after it, :meth:`committed_seq` tells a rerun that it is done."""
        from deltalake import CommitProperties, Transaction
        from deltalake.transaction import AddAction

        commit = CommitProperties(app_transactions=[Transaction(APP_ID, seq)],
                                  custom_metadata={"tracelake.run": run_id})
        adds = [AddAction(f.path, f.size, f.partition, f.modified_ms, True, f.stats) for f in files]
        try:
            table = self._table()
            table.create_write_transaction(adds, mode="append", schema=SCHEMA, partition_by=PARTITIONS,
                                           commit_properties=commit)
            return self._table().version()
        except Exception as exc:  # noqa: BLE001
            raise _wrap(exc) from exc

    def delete(self, predicate: str) -> dict[str, Any]:
        """Delta delete (rewrites or drops the files holding matching rows)."""
        try:
            return self._table().delete(predicate)
        except Exception as exc:  # noqa: BLE001
            raise _wrap(exc) from exc

    def vacuum(self) -> list[str]:
        """Remove files no longer referenced, at once. Safe with one writer: nothing else commits,
        and only a reader in the middle of a query over the previous version can notice."""
        try:
            return self._table().vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False)
        except Exception as exc:  # noqa: BLE001
            raise _wrap(exc) from exc

    def partition_sizes(self) -> list[tuple[str, str, int, int]]:
        """(Day, Project, rows, bytes) per partition, from the Delta log (no data read)."""
        try:
            adds = self._table().get_add_actions(flatten=True)
        except Exception as exc:  # noqa: BLE001
            raise _wrap(exc) from exc
        table = pa.table(adds) if not isinstance(adds, pa.Table) else adds
        if table.num_rows == 0:
            return []
        days = table.column("partition.Day").to_pylist()
        projects = table.column("partition.Project").to_pylist()
        rows = table.column("num_records").to_pylist()
        sizes = table.column("size_bytes").to_pylist()
        out: dict[tuple[str, str], list[int]] = {}
        for d, p, r, s in zip(days, projects, rows, sizes):
            acc = out.setdefault((d, p), [0, 0])
            acc[0] += r or 0
            acc[1] += s or 0
        return [(d, p, r, s) for (d, p), (r, s) in sorted(out.items())]
