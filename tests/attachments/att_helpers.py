"""Shared helpers of the attachment tests: free ports, the collector stack subprocess, the
instrumented app subprocess, and reading blobs back from either store."""
from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from server_process import fresh_store

from tracelake.attachments import object_key

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable


class Stack:
    """tests/attachments/att_stack.py in a subprocess: OTLP/HTTP collector with extraction + API."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        if not data_dir.exists():
            fresh_store(data_dir)
        full_env = {**os.environ, **env}
        self.proc = subprocess.Popen([PYTHON, str(HERE / "att_stack.py"), str(data_dir)], env=full_env,
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


def chat_messages(image: bytes, audio: bytes) -> list[dict]:
    return [{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture and this recording?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(image).decode()}},
        {"type": "input_audio", "input_audio": {"data": base64.b64encode(audio).decode(), "format": "wav"}},
    ]}]


def run_agent(stack, tmp_path: Path, messages: list[dict]) -> None:
    path = tmp_path / "messages.json"
    path.write_text(json.dumps(messages))
    from fake_openai import FakeOpenAI

    with FakeOpenAI() as openai_server:
        done = subprocess.run([PYTHON, str(HERE / "att_agent.py"), stack.otlp_url, openai_server.base_url, str(path)],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


def stored_blob(backend: str, stack_settings: dict, sha: str) -> bytes:
    if backend == "file":
        return (Path(stack_settings["object_store"].removeprefix("file://")) / object_key(sha)).read_bytes()
    import boto3

    client = boto3.client("s3", endpoint_url=stack_settings["s3_endpoint_url"], region_name="us-east-1")
    bucket, _, prefix = stack_settings["object_store"].removeprefix("s3://").partition("/")
    return client.get_object(Bucket=bucket, Key=f"{prefix.strip('/')}/{object_key(sha)}")["Body"].read()
