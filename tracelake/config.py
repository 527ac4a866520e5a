"""One settings model for every server process; flags override ``TRACELAKE_*`` env vars."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tracelake.durations import parse_duration


class Settings(BaseSettings):
    """Configuration of ``tracelake server`` / ``collector`` / ``ui``.

    Every field is also read from the environment as ``TRACELAKE_<FIELD>`` (upper case).
    """

    model_config = SettingsConfigDict(env_prefix="TRACELAKE_", extra="ignore")

    data_dir: Path = Field(Path(".tracelake"), description="Where the embedded store keeps its data.")
    host: str = Field("127.0.0.1", description="Interface to listen on for every port.")
    otlp_grpc_port: int = Field(4317, ge=0, le=65535, description="OTLP/gRPC port (0: pick a free one).")
    otlp_http_port: int = Field(4318, ge=0, le=65535, description="OTLP/HTTP port (0: pick a free one).")
    ui_port: int = Field(4380, ge=0, le=65535, description="UI and /api/ port (0: pick a free one).")
    clickhouse_url: str | None = Field(None, description="Use this ClickHouse server instead of the embedded store.")
    prices_file: Path | None = Field(None, description="JSON of model -> [input, output] USD per million tokens.")

    max_request_bytes: int = Field(20 * 1024 * 1024, gt=0, description="Largest OTLP request, after decompression.")
    max_queue_spans: int = Field(262_144, gt=0, description="Spans accepted but not yet committed before refusing with 503.")
    max_queue_bytes: int = Field(512 * 1024 * 1024, gt=0, description="Bytes accepted but not yet committed before refusing.")
    batch_max_spans: int = Field(32_768, gt=0, description="Most spans in one INSERT.")
    writers: int = Field(2, ge=1, le=16, description="Concurrent INSERTs, each on its own connection (2 suits 2 cores).")
    batch_linger_ms: float = Field(5.0, ge=0, description="How long the writer waits for more requests to join a batch.")
    ack_timeout_s: float = Field(30.0, gt=0, description="Answer 503 if a commit takes longer than this.")
    retry_after_s: int = Field(1, ge=1, description="Retry-After sent with 503 / UNAVAILABLE.")

    # Attachments (docs/attachments.md): media extracted from spans into an object store.
    object_store: str | None = Field(None, description="Object store URL: file:///abs/dir or s3://bucket/prefix "
                                     "(default: file://<data_dir>/attachments).")
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint for MinIO and other S3-compatible stores.")
    s3_region: str | None = Field(None, description="S3 region (default: boto3's, from AWS_REGION / config).")
    s3_access_key_id: str | None = Field(None, description="S3 access key (default: boto3's chain, AWS_ACCESS_KEY_ID ...).")
    s3_secret_access_key: SecretStr | None = Field(None, description="S3 secret key (default: boto3's chain).")
    extract_attachments: bool = Field(True, description="Move media out of span payloads into the object store.")
    attachment_min_bytes: int = Field(1024, ge=0, description="Media smaller than this (decoded) stays inline.")
    max_attachment_bytes: int = Field(10 * 1024 * 1024, gt=0,
                                      description="Larger media is not stored; a marker with its type and size stays.")
    max_request_media_bytes: int = Field(15 * 1024 * 1024, gt=0,
                                         description="Media per OTLP request past which the request is refused (413).")

    # Ingest spool (docs/architecture.md "Ingest spool"): ack once durable on the collector's disk.
    ack_mode: Literal["spool", "commit"] = Field(
        "spool", description="spool: ack once the request is fsynced to the collector's spool, load into ClickHouse "
        "after; commit: ack only after the INSERT holding it returned (for collectors without a persistent disk).")
    spool_dir: Path | None = Field(None, description="Spool directory, one per collector process (default <data_dir>/spool).")
    spool_max_bytes: int = Field(4 * 1024**3, gt=0, description="Spool size on disk past which requests get 503 / UNAVAILABLE.")
    spool_segment_bytes: int = Field(64 * 1024 * 1024, gt=0, description="A spool segment is sealed and loaded once it holds this many bytes.")
    spool_segment_ms: float = Field(500.0, gt=0, description="A spool segment is sealed and loaded this long after its first request at the latest "
                                    "(bounds how late acked spans become visible).")
    # Access (docs/security.md): keys, roles, sign-in, per-project reads.
    auth: bool | None = Field(None, description="Require keys on every port. Default: on when host is not a "
                              "loopback address, off on 127.0.0.1 / ::1 / localhost.")
    admin_key: SecretStr | None = Field(None, description="The admin key to register at start (automation); "
                                        "otherwise one is generated and printed once on first start.")
    key_cache_ttl_s: float = Field(2.0, ge=0, le=60, description="How long a process trusts a resolved key; "
                                   "the longest a revoke made in another process takes to apply here.")
    session_ttl_s: int = Field(12 * 3600, ge=60, description="Lifetime of a UI sign-in (session cookie).")
    auth_proxy_header: str | None = Field(None, description="Trust this header (e.g. X-Forwarded-User) for SSO "
                                          "behind a proxy; off by default.")
    auth_proxy_users: dict[str, str] = Field(default_factory=dict, description="Proxy user -> 'role:project' "
                                             "(JSON in the environment), e.g. {\"ana\": \"viewer:shop\"}.")
    auth_proxy_trusted: list[str] = Field(["127.0.0.1", "::1"], description="Peer addresses allowed to set the "
                                          "proxy header (the proxy itself).")
    # Archive tier (docs/archive.md): retention rules, Delta Lake archive in the object store.
    retention_file: Path | None = Field(None, description="Retention rules (YAML); enables the archiver in "
                                        "`tracelake server`. Validated at start.")
    archive_every: str = Field("1h", description="How often `tracelake server` runs the archiver (30m, 1h, 1d ...).")
    archive_chunk_spans: int = Field(500_000, gt=0, description="Spans per archive file (a slice ClickHouse sorts and writes at once).")
    attachment_gc_grace: str = Field("24h", description="Unreferenced attachment blobs are deleted after this long.")
    # Erasure and restore (erase helper; docs/archive.md "Erasure and restore").
    erase_spool_wait_s: float = Field(30.0, ge=0, description="An erasure waits up to this long for the ingest "
                                      "spool to be loaded before matching; the receipt says whether it was.")
    erase_parts_wait_s: float = Field(120.0, ge=0, description="An erasure waits up to this long for ClickHouse to "
                                      "remove the parts its deletes replaced; the receipt names any left.")
    restore_pin_for: str = Field("7d", description="How long a restored trace stays pinned hot by default.")
    # Alerts (docs/alerts.md): rules evaluated on a schedule, messages to webhooks, Slack and e-mail.
    alerts_file: Path | None = Field(None, description="Alert rules (YAML); then the source of truth (the Alerts "
                                     "page shows them read-only). Validated at start.")
    alerts_evaluate: bool = Field(True, description="Evaluate the alert rules and send messages in this process; "
                                  "turn it off in all but one process when several serve the UI over one ClickHouse.")
    alerts_every: str = Field("1m", description="How often `tracelake server` evaluates the alert rules (30s, 1m, 5m ...).")
    alerts_public_url: str | None = Field(None, description="The UI's address as people reach it, for the links in "
                                          "alert messages (default http://<host>:<ui_port>).")
    alerts_retry_base_s: float = Field(10.0, gt=0, description="First wait before a failed message is sent again; "
                                       "doubled at each attempt.")
    alerts_retry_max_s: float = Field(600.0, gt=0, description="Longest wait between two attempts of a message.")
    alerts_retry_attempts: int = Field(12, ge=1, le=100, description="Attempts of a message before it is given up "
                                       "(the delivery log says so).")
    alerts_send_timeout_s: float = Field(10.0, gt=0, le=120, description="How long one attempt waits for the "
                                         "receiver's answer.")
    smtp_host: str | None = Field(None, description="SMTP server for e-mail destinations (none: e-mail is not sent).")
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port.")
    smtp_user: str | None = Field(None, description="SMTP user name (none: no login).")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_from: str = Field("tracelake@localhost", description="Sender address of alert e-mails.")
    smtp_starttls: bool = Field(True, description="Upgrade the SMTP connection with STARTTLS before sending.")
    # Resource limits (docs/security.md "Resource limits"): no caller can take the server from the others.
    sql_max_concurrent_per_caller: int = Field(2, ge=1, description="/api/sql requests one caller (key, proxy user, "
                                               "or address without auth) may have running; more get 429 at once.")
    sql_max_concurrent: int = Field(6, ge=1, description="/api/sql requests running at once, all callers together.")
    ui_max_concurrent_per_caller: int = Field(6, ge=1, description="Other store-reading requests (pages, JSON API) "
                                              "one caller may have running; more get 429 at once.")
    max_concurrent_requests: int = Field(16, ge=1, le=32, description="Store-reading requests (SQL included) running "
                                         "at once, all callers; below the 40 worker threads, so /healthz, sign-in and "
                                         "the collector always find one.")
    sql_max_memory_bytes: int = Field(1024**3, ge=0, description="Memory one /api/sql query may use (0: no cap).")
    sql_max_execution_s: float = Field(30.0, gt=0, description="Longest /api/sql query; ClickHouse stops it after this.")
    sql_max_result_rows: int = Field(100_000, gt=0, description="Rows an /api/sql answer holds at most; the answer "
                                     "says `truncated` when it was cut.")
    sql_max_result_bytes: int = Field(64 * 1024**2, gt=0, description="Bytes (uncompressed, in ClickHouse) an "
                                      "/api/sql result holds at most; cut like rows.")
    sql_max_rows_to_read: int = Field(2_000_000_000, ge=0, description="Rows one /api/sql query may read (0: no "
                                      "cap); ClickHouse refuses a query it knows will read more before starting.")
    ui_max_memory_bytes: int = Field(4 * 1024**3, ge=0, description="Memory one query of the UI/API may use for a "
                                     "caller limited to projects (0: no cap).")
    engine_max_memory_bytes: int | None = Field(None, ge=0, description="Memory the embedded engine (chdb) may use "
                                                "for all queries and inserts together; default 60% of the memory "
                                                "it sees (RAM or cgroup limit).")
    # Failed authentication (docs/security.md "Failed authentication").
    auth_fail_per_source: int = Field(20, ge=1, description="Failed keys or sign-ins from one address (IPv6: its "
                                      "/64) per window before it gets 429 without its keys being checked.")
    auth_fail_per_key: int = Field(20, ge=1, description="Failed attempts naming one key id per window before "
                                   "further wrong secrets for it get 429 (the right key keeps working).")
    auth_fail_window_s: float = Field(60.0, gt=0, le=3600, description="The window of both counts; a refused "
                                      "address waits for its window to end (Retry-After).")

    def spool_directory(self) -> Path | None:
        """The collector's spool (``spool_dir``, default ``<data_dir>/spool``); None in commit ack mode."""
        if self.ack_mode == "commit":
            return None
        return Path(self.spool_dir or Path(self.data_dir) / "spool").resolve()

    @field_validator("archive_every", "attachment_gc_grace", "alerts_every")
    @classmethod
    def _archive_duration(cls, value: str) -> str:
        parse_duration(value, allow_forever=False)  # ValueError names the bad value
        return value
