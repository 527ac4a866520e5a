"""Fixtures for attachment tests: media samples, a moto S3 server, collector stacks in subprocesses."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # fake_openai

PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def aws_env() -> dict[str, str]:
    """Dummy credentials for moto, set for this process and inherited by subprocesses."""
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def moto_endpoint(aws_env: dict[str, str]) -> Iterator[str]:
    """A real S3 HTTP endpoint on 127.0.0.1 (moto's standalone server)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


_bucket_counter = iter(range(1_000_000))


@pytest.fixture()
def s3_bucket(moto_endpoint: str) -> str:
    """A fresh bucket per test."""
    import boto3

    name = f"tl-test-{os.getpid()}-{next(_bucket_counter)}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


class Stack:
    """tests/attachments/stack.py in a subprocess: OTLP/HTTP collector with extraction + API."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        full_env = {**os.environ, **env}
        self.proc = subprocess.Popen([PYTHON, str(HERE / "stack.py"), str(data_dir)], env=full_env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self._first_line(timeout=60)
        ports = json.loads(line)
        self.otlp_url = f"http://127.0.0.1:{ports['otlp']}"
        self.ui_url = f"http://127.0.0.1:{ports['ui']}"
        self.http = httpx.Client(base_url=self.ui_url, timeout=30)

    def _first_line(self, timeout: float) -> str:
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not result or not result[0]:
            self.proc.kill()
            raise RuntimeError(f"stack did not start: {self.proc.stderr.read()[-4000:]}")
        return result[0]

    def sql(self, query: str, **params: Any) -> list[dict[str, Any]]:
        args = {"q": query, **{f"param_{k}": str(v) for k, v in params.items()}}
        r = self.http.get("/api/sql", params=args)
        assert r.status_code == 200, r.text
        doc = r.json()
        return [dict(zip(doc["columns"], row)) for row in doc["rows"]]

    def wait_sql(self, query: str, predicate: Any = bool, timeout: float = 20, **params: Any) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            rows = self.sql(query, **params)
            if predicate(rows) or time.monotonic() > deadline:
                return rows
            time.sleep(0.2)

    def post_otlp(self, body: bytes) -> httpx.Response:
        return httpx.post(f"{self.otlp_url}/v1/traces", content=body,
                          headers={"content-type": "application/x-protobuf"}, timeout=60)

    def stop(self) -> str:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.stderr.read()


@pytest.fixture()
def start_stack(tmp_path: Path) -> Iterator[Any]:
    """Call with TRACELAKE_* settings as keyword arguments (lower-case names)."""
    stacks: list[Stack] = []

    def start(**settings: Any) -> Stack:
        env = {f"TRACELAKE_{k.upper()}": str(v) for k, v in settings.items()}
        stack = Stack(tmp_path / f"data{len(stacks)}", env)
        stacks.append(stack)
        return stack

    yield start
    for stack in stacks:
        stack.stop()
