"""A ClickHouse-HTTP endpoint served over chdb, so ClickHouseStore (clickhouse-connect) can be tested
without a ClickHouse server binary. Run as a process: ``python tests/chhttp.py --data-dir D --port 0``;
it prints ``listening <port>`` once ready.

What it handles (what clickhouse-connect and ClickHouseStore send): GET/POST on ``/``; SQL in the
``query`` URL parameter and/or the body; ``param_*`` query parameters; inserts whose body carries
data after ``INSERT ... FORMAT <fmt>`` (Native, Arrow, ...) or after an ``input()`` INSERT ... SELECT
(the data is spooled to a file and read with ``file()``); ``readonly`` through a read-only chdb
connection; a few settings (format schema, limits) applied as a SETTINGS clause. ``--delay`` slows
every INSERT down, ``/__fail`` toggles failing INSERTs and pings (the store is down, and stays down
for the collector's probe until toggled back): both for backpressure tests. ``/__hold``
makes INSERTs wait until ``/__release``, so a test can know requests are waiting on their commit.
``--set name=value`` (repeatable) sets a ClickHouse setting on the endpoint's connections and
over a query's own SETTINGS of that name (a test may bound what the product sets, e.g. S3 retries).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import chdb
from chdb import session

_INSERT_FORMAT = re.compile(r"^\s*(INSERT\s+INTO\s+\S+(?:\s*\([^)]*\))?)\s+FORMAT\s+(\w+)\s*$", re.I | re.S)
_INPUT = re.compile(r"input\(('(?:[^'\\]|\\.)*')\)", re.S)
_TRAILING_FORMAT = re.compile(r"\s+FORMAT\s+(\w+)\s*$", re.I)
_LIMITS = {"max_execution_time", "max_result_rows", "max_result_bytes", "result_overflow_mode", "max_memory_usage",
           "max_rows_to_read"}
_APPLIED_SETTINGS = {*_LIMITS, "input_format_protobuf_oneof_presence", "format_schema_message_name", "insert_deduplicate",
                     "insert_deduplication_token", "deduplicate_blocks_in_dependent_materialized_views"}


class Engine:
    def __init__(self, data_dir: str, delay: float, settings: dict[str, str] | None = None) -> None:
        self.path = os.path.join(data_dir, "ch")
        self.settings = settings or {}
        self.session = session.Session(self.path)
        self._apply_settings(self.session)
        # The read-only connection may not change settings: they go in its connection string.
        self.readonly = chdb.connect(f"{self.path}?" + "&".join(["readonly=1", *(f"{k}={v}" for k, v in self.settings.items())]))
        self.lock = threading.Lock()
        # Inside the test's data dir (pytest removes old ones), not a /tmp directory left behind.
        self.spool = os.path.join(data_dir, "chhttp-spool")
        os.makedirs(self.spool, exist_ok=True)
        self.delay = delay
        self.fail_inserts = False
        self.inserts_open = threading.Event()  # cleared by /__hold: INSERTs wait until /__release
        self.inserts_open.set()
        self.scoped: dict = {}

    def run(self, sql: str, settings: dict[str, str], params: dict[str, str], data: bytes | None,
            database: str | None) -> tuple[bytes, str]:
        fmt = "TabSeparated"
        files: list[str] = []
        try:
            match = _INSERT_FORMAT.match(sql)
            if data is not None and match:  # INSERT INTO t (cols) FORMAT X + data
                path = self._spool(data, files)
                sql = f"{match.group(1)} SELECT * FROM file('{path}', '{match.group(2)}')"
            elif data is not None and _INPUT.search(sql):  # INSERT ... SELECT ... FROM input(...) FORMAT X
                fmt_match = _TRAILING_FORMAT.search(sql)
                sql = _TRAILING_FORMAT.sub("", sql)
                path = self._spool(data, files)
                sql = _INPUT.sub(lambda m: f"file('{path}', '{fmt_match.group(1)}', {m.group(1)})", sql)
            elif (m := _TRAILING_FORMAT.search(sql)):
                fmt = m.group(1)
                sql = _TRAILING_FORMAT.sub("", sql)
            clauses = []
            if "format_schema" in settings:
                schema = self._spool(settings["format_schema"].encode(), files, ".proto")
                name = settings.get("format_schema_message_name", "")
                clauses.append(f"format_schema = '{schema}:{name}'" if name else f"format_schema = '{schema}'")
            readonly = settings.get("readonly", "0") != "0"
            if not readonly:  # the read-only connection may not change settings (readonly=1)
                clauses += [f"{k} = '{v}'" for k, v in settings.items() if k in _APPLIED_SETTINGS - {"format_schema_message_name"}]
            if clauses:
                sql = f"{sql} SETTINGS {', '.join(clauses)}"
            for name, value in self.settings.items():  # ours win over the query's own
                sql = re.sub(rf"\b{name}\s*=\s*[^,\s]+", f"{name}={value}", sql)
            is_insert = sql.lstrip().upper().startswith("INSERT")
            if is_insert and self.fail_inserts:
                raise RuntimeError("injected INSERT failure")
            if is_insert:
                self.inserts_open.wait()
            if is_insert and self.delay:
                time.sleep(self.delay)
            filters = settings.get("additional_table_filters")
            with self.lock:
                limits = {k: v for k, v in settings.items() if k in _LIMITS}
                conn = self._scoped(filters, readonly, limits) if filters else (self.readonly if readonly else self.session)
                if database:
                    conn.query(f"USE {database}")
                result = conn.query(sql, fmt, params=params)
            return (result.bytes() if hasattr(result, "bytes") else bytes(result)), fmt
        finally:
            for f in files:
                os.unlink(f)

    def _apply_settings(self, conn) -> None:
        for name, value in self.settings.items():
            conn.query(f"SET {name} = {value}")

    def _scoped(self, filters: str, readonly: bool, limits: dict[str, str]):
        """A connection with additional_table_filters and the query limits set, then locked with
        readonly=1 (as a server applies the URL's settings before the query's own)."""
        key = (filters, readonly, tuple(sorted(limits.items())))
        if key not in self.scoped:
            conn = chdb.connect(self.path)
            self._apply_settings(conn)
            conn.query(f"SET additional_table_filters = {filters}")
            for name, value in limits.items():
                conn.query(f"SET {name} = '{value}'")
            if readonly:
                conn.query("SET readonly = 1")
            self.scoped[key] = conn
        return self.scoped[key]

    def _spool(self, data: bytes, files: list[str], suffix: str = ".bin") -> str:
        fd, path = tempfile.mkstemp(dir=self.spool, suffix=suffix)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        files.append(path)
        return path


def make_handler(engine: Engine) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _handle(self, body: bytes) -> None:
            url = urlsplit(self.path)
            if url.path == "/ping":
                return self._send(503, b"down\n") if engine.fail_inserts else self._send(200, b"Ok.\n")
            if url.path == "/__fail":
                engine.fail_inserts = not engine.fail_inserts
                return self._send(200, str(engine.fail_inserts).encode())
            if url.path in ("/__hold", "/__release"):
                (engine.inserts_open.clear if url.path == "/__hold" else engine.inserts_open.set)()
                return self._send(200, b"held" if url.path == "/__hold" else b"released")
            qs = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            sql, data = qs.pop("query", ""), None
            if sql and body:
                data = body  # query in the URL, data in the body
            elif body:
                sql = body.decode()
            params = {k[6:]: v for k, v in qs.items() if k.startswith("param_")}
            try:
                out, fmt = engine.run(sql, qs, params, data, qs.get("database"))
            except Exception as exc:  # noqa: BLE001 - errors go back to the client as ClickHouse does
                return self._send(500, f"Code: 1. DB::Exception: {exc}".encode(), {"X-ClickHouse-Exception-Code": "1"})
            self._send(200, out, {"X-ClickHouse-Format": fmt})

        def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            self._handle(b"")

        def do_POST(self) -> None:  # noqa: N802
            self._handle(self._body())

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds added to every INSERT")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a ClickHouse setting")
    args = parser.parse_args()
    engine = Engine(args.data_dir, args.delay, dict(item.split("=", 1) for item in args.set))
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(engine))
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
