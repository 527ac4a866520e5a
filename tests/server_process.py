"""Run ``tracelake server`` (or the chdb-backed ClickHouse-HTTP endpoint) as a real subprocess.

    with start_server(tmp_path / "data") as server:
        server.otlp_http_url   # http://127.0.0.1:<port>  (POST /v1/traces below it)
        server.otlp_grpc_addr  # 127.0.0.1:<port>
        server.ui_url          # http://127.0.0.1:<port>
        server.sql("SELECT count() FROM otel_traces")  # rows through /api/sql

A new data directory starts as a copy of one migrated store (fresh_store), made once per process.
"""
from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

TESTS = Path(__file__).resolve().parent
STARTUP_TIMEOUT = 90.0


def metric_value(exposition: str, name: str) -> float:
    """The value of sample ``name`` in a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise AssertionError(f"no {name} in /metrics:\n{exposition[:2000]}")


def wait_until(condition: Any, what: str, timeout: float = 60.0, every: float = 0.05) -> None:
    """Poll ``condition`` until it is true; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting until {what}"
        time.sleep(every)


_template: Path | None = None


def store_template() -> Path:
    """An empty embedded store with every migration applied, made once per test process (in a
    subprocess: chdb holds one data directory per process, and a module may have its own open)."""
    global _template
    if _template is None:
        root = Path(tempfile.mkdtemp(prefix="tracelake-store-template-"))
        atexit.register(shutil.rmtree, root, True)
        made = subprocess.run([sys.executable, "-c", "import sys; from tracelake.store import open_store; "
                               "open_store(sys.argv[1]).close()", str(root / "data")],
                              capture_output=True, text=True, timeout=300)
        if made.returncode != 0:
            raise RuntimeError(f"could not make the migrated store template:\n{made.stderr[-3000:]}")
        _template = root / "data"
    return _template


def fresh_store(data_dir: str | os.PathLike[str]) -> Path:
    """``data_dir`` (which must not exist) as a copy of the migrated template: the same store a first
    start makes, without running every migration again (~0.5-1 s per store on 2 busy cores)."""
    return Path(shutil.copytree(store_template(), data_dir, symlinks=True))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_until(proc: subprocess.Popen, pattern: re.Pattern[str], want: int, timeout: float) -> tuple[list[str], list[str]]:
    """Read stdout lines until ``want`` lines match; returns (matches, all lines)."""
    lines: list[str] = []
    found: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while len(found) < want:
        if time.monotonic() > deadline:
            raise TimeoutError("process did not start:\n" + "".join(lines))
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode}:\n" + "".join(lines))
            continue
        lines.append(line)
        if pattern.search(line):
            found.append(line)
    return found, lines


def _drain(proc: subprocess.Popen, sink: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        sink.append(line)


@dataclass
class ServerProcess:
    proc: subprocess.Popen
    data_dir: Path
    otlp_http_url: str = ""
    otlp_grpc_addr: str = ""
    ui_url: str = ""
    output: list[str] = field(default_factory=list)

    def sql(self, query: str, **params: Any) -> list[list[Any]]:
        data = {"q": query, **{f"param_{k}": str(v) for k, v in params.items()}}
        response = httpx.post(f"{self.ui_url}/api/sql", data=data, timeout=60)
        response.raise_for_status()
        return response.json()["rows"]

    def wait_for_count(self, query: str, expected: int, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            value = int(self.sql(query)[0][0])
            if value >= expected or time.monotonic() > deadline:
                return value
            time.sleep(0.2)

    def wait_rows(self, query: str, count: int, timeout: float = 60.0, **params: Any) -> list[list[Any]]:
        """The query's rows once it returns at least ``count`` of them (or at the deadline): in spool
        mode acked spans become visible when their segment is loaded, a moment after the ack."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.sql(query, **params)
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)

    def wait_loaded(self, key: str | None = None, timeout: float = 60.0) -> None:
        """Wait until every span this process acked is in ClickHouse (``tracelake_queue_spans`` is 0 on
        its /metrics): in spool mode an ack means durable on disk, and loading follows a moment later."""
        wait_until(lambda: self.metric("tracelake_queue_spans", key) == 0, "every acked span is loaded", timeout)

    def metric(self, name: str, key: str | None = None, client: httpx.Client | None = None) -> float:
        """A sample of the collector's /metrics (``client``: reuse that client's connections)."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        text = (client or httpx).get(f"{self.otlp_http_url}/metrics", headers=headers, timeout=30).text
        return metric_value(text, name)

    def terminate(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    stop = terminate

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()


def start_server(data_dir: str | os.PathLike[str], *args: str, command: str = "server",
                 env: dict[str, str] | None = None, **flags: Any) -> ServerProcess:
    """Start ``tracelake <command>`` on free ports; extra ``flags`` become ``--flag value``. A new
    embedded store starts from the migrated template (fresh_store)."""
    data_dir = Path(data_dir)
    on_clickhouse = "clickhouse_url" in flags or "TRACELAKE_CLICKHOUSE_URL" in (env or {}) or "--clickhouse-url" in args
    if not data_dir.exists() and not on_clickhouse:
        fresh_store(data_dir)
    ports = {"server": ("--otlp-grpc-port", "--otlp-http-port", "--ui-port"),
             "collector": ("--otlp-grpc-port", "--otlp-http-port"), "ui": ("--ui-port",)}[command]
    argv = [sys.executable, "-m", "tracelake.cli", command, "--data-dir", str(data_dir), "--host", "127.0.0.1"]
    for port_flag in ports:
        argv += [port_flag, "0"]
    for name, value in flags.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    argv += list(args)
    return start_server_command(argv, data_dir.parent, data_dir, {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                                ports=len(ports))


def start_server_command(argv: list[str], cwd: str | os.PathLike[str], data_dir: str | os.PathLike[str],
                         env: dict[str, str], ports: int = 3) -> ServerProcess:
    """Run a ``tracelake server|collector|ui`` command line as given (e.g. another virtual environment's
    console script, as a user types it) in ``cwd`` with exactly ``env``, and wait until its banner has
    named its ``ports`` listening addresses."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=str(cwd))
    server = ServerProcess(proc, Path(data_dir))
    try:
        found, lines = _read_until(proc, re.compile(r"OTLP/gRPC|OTLP/HTTP|UI and API"), ports, STARTUP_TIMEOUT)
    except Exception:
        proc.kill()
        raise
    server.output.extend(lines)
    for line in found:
        value = line.split()[-1]
        if "OTLP/gRPC" in line:
            server.otlp_grpc_addr = value
        elif "OTLP/HTTP" in line:
            server.otlp_http_url = value.removesuffix("/v1/traces")
        else:
            server.ui_url = value
    threading.Thread(target=_drain, args=(proc, server.output), daemon=True).start()
    return server


@dataclass
class ClickHouseEndpoint:
    proc: subprocess.Popen
    url: str

    def toggle_failures(self) -> None:
        httpx.post(f"{self.url}/__fail", timeout=10)

    def hold_inserts(self) -> None:
        """INSERTs wait (the collector's commits hang) until :meth:`release_inserts`."""
        httpx.post(f"{self.url}/__hold", timeout=10).raise_for_status()

    def release_inserts(self) -> None:
        httpx.post(f"{self.url}/__release", timeout=10).raise_for_status()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def start_clickhouse_endpoint(data_dir: str | os.PathLike[str], delay: float = 0.0, port: int = 0,
                              settings: dict[str, Any] | None = None) -> ClickHouseEndpoint:
    """The chdb-backed ClickHouse-HTTP endpoint of tests/chhttp.py, as a subprocess; ``settings``
    are ClickHouse settings of its connections."""
    argv = [sys.executable, str(TESTS / "chhttp.py"), "--data-dir", str(data_dir), "--port", str(port),
            "--delay", str(delay)]
    for name, value in (settings or {}).items():
        argv += ["--set", f"{name}={value}"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    found, _ = _read_until(proc, re.compile(r"^listening \d+"), 1, STARTUP_TIMEOUT)
    return ClickHouseEndpoint(proc, f"http://127.0.0.1:{found[0].split()[1]}")
