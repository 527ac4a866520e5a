"""A ClickHouse server (or cluster entry point) through clickhouse-connect."""
from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import pyarrow as pa

from tracelake.store.otlp import (carries_scores, format_settings, insert_from_body_sql, scores_from_body_sql,
                                  scores_token)
from tracelake.store.base import Params, StoreError, StoreUnavailable
from tracelake.store.limits import QueryLimits


class ClickHouseStore:
    """``http://user:password@host:8123/database`` (https too); ``?compress=1`` for lz4."""

    def __init__(self, url: str, database: str = "tracelake", connect_timeout: float = 5.0,
                 limits: QueryLimits | None = None) -> None:
        import clickhouse_connect

        self.limits = limits or QueryLimits.from_settings()
        # readonly=2: reads only, and clickhouse-connect may still send its own session settings.
        self._readonly_settings = {"readonly": 2, **self.limits.untrusted()}

        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self.database = parts.path.strip("/") or database
        self.description = f"ClickHouse server at {parts.scheme}://{parts.hostname}:{parts.port or 8123}/{self.database}"
        common = dict(host=parts.hostname or "localhost", port=parts.port or 8123,
                      username=unquote(parts.username or "default"), password=unquote(parts.password or ""),
                      secure=parts.scheme == "https", compress=query.get("compress", ["0"])[0] in ("1", "lz4", "true"),
                      connect_timeout=connect_timeout, send_receive_timeout=300, autogenerate_session_id=False)
        try:
            bootstrap = clickhouse_connect.get_client(**common)
            bootstrap.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")
            bootstrap.close()
            self._client = clickhouse_connect.get_client(database=self.database, **common)
        except Exception as exc:
            raise StoreUnavailable(f"cannot reach {self.description}: {exc}") from exc

    @staticmethod
    def _wrap(exc: Exception) -> StoreError:
        text = str(exc)
        transient = any(s in text for s in ("Connection refused", "timed out", "Max retries", "connection",
                                             "Connection reset", "503", "Service Unavailable"))
        return (StoreUnavailable if transient else StoreError)(text)

    def execute(self, sql: str, params: Params = None) -> None:
        try:
            self._client.command(sql, parameters=params)
        except Exception as exc:
            raise self._wrap(exc) from exc

    def query_arrow(self, sql: str, params: Params = None) -> pa.Table:
        try:
            return self._client.query_arrow(sql, parameters=params, use_strings=True)
        except Exception as exc:
            raise self._wrap(exc) from exc

    def query_readonly(self, sql: str, params: Params = None) -> pa.Table:
        return self._run_untrusted(sql, params, self._readonly_settings)

    def _run_untrusted(self, sql: str, params: Params, settings: dict, check=None) -> pa.Table:
        """Untrusted SQL behind the store's own function check (tracelake.auth.functions), as on
        the embedded store: the server's user_files_path bounds file(), not dictGet() and the
        other functions that reach outside."""
        from tracelake.auth.functions import run_untrusted

        def run(q: str, p: Params) -> pa.Table:
            try:
                return self._client.query_arrow(q, parameters=p, settings=settings, use_strings=True)
            except Exception as exc:
                raise self._wrap(exc) from exc

        return run_untrusted(run, sql, params, escape_strings=False, check=check)

    def query_scoped(self, sql: str, params: Params, filters: dict[str, str], readonly: bool,
                     check=None) -> pa.Table:
        """Run with ``filters`` as additional_table_filters, locked by readonly=1 when ``readonly``
        (both sent with the query, so the query's own SETTINGS cannot change them). Readonly SQL
        is untrusted: it passes the store's function check, then ``check(canonical, ast)``."""
        from tracelake.auth.scope import filters_setting

        settings: dict = {**self._readonly_settings, "readonly": 1} if readonly else dict(self.limits.ui())
        if filters:
            settings["additional_table_filters"] = filters_setting(filters)
        if readonly:
            return self._run_untrusted(sql, params, settings, check)
        try:
            return self._client.query_arrow(sql, parameters=params, settings=settings, use_strings=True)
        except Exception as exc:
            raise self._wrap(exc) from exc

    def insert_arrow(self, table: str, batch: pa.Table) -> None:
        try:
            self._client.insert_arrow(table, batch)
        except Exception as exc:
            raise self._wrap(exc) from exc

    def insert_otlp(self, table: str, stream: bytes, dedup_token: str | None = None) -> None:
        # The server decodes the protobuf itself: the batch is the body of one INSERT.
        try:
            self._client.command(insert_from_body_sql(table), data=stream, settings=format_settings(dedup_token))
            if carries_scores(stream):  # score spans go to the scores table (docs/scores.md)
                self._client.command(scores_from_body_sql(), data=stream, settings=format_settings(scores_token(dedup_token)))
        except Exception as exc:
            raise self._wrap(exc) from exc

    def insert_otlp_file(self, table: str, path: str, dedup_token: str | None = None) -> None:
        with open(path, "rb") as f:
            stream = f.read()
        self.insert_otlp(table, stream, dedup_token)

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except Exception:
            return False

    def close(self) -> None:
        self._client.close()
