"""Archiver test helpers: old data sent through a real collector, the archiver and snapshots run as
subprocesses (chdb holds one data directory per process, and kill -9 needs a process to kill)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from otlp_spans import GENAI_CHAT, new_trace_id, request, span
from server_process import start_server

HERE = Path(__file__).resolve().parent
DAY_NS = 86_400 * 10**9

POLICY = """\
rules:
  - name: errors
    match: 'status:error'
    hot: 30d
    archive: forever
  - name: default
    hot: 7d
    archive: 20d
"""


@dataclass
class Dataset:
    """Traces by what the POLICY should do with them."""

    requests: list[bytes] = field(default_factory=list)
    stay_hot: set[str] = field(default_factory=set)
    archive: set[str] = field(default_factory=set)
    delete: set[str] = field(default_factory=set)
    spans: dict[str, int] = field(default_factory=dict)
    busy_day: list[str] = field(default_factory=list)  # one day's many traces, a minute apart, in start order

    def add(self, spans: list[dict[str, Any]], fate: str, service: str = "svc") -> None:
        tid = spans[0]["trace_id"].hex()
        self.requests.append(request(spans, service=service).SerializeToString())
        getattr(self, fate).add(tid)
        self.spans[tid] = len(spans)


def _trace(start_ns: int, *, error: bool = False, children: int = 3, child_gap_ns: int = 1_000) -> list[dict[str, Any]]:
    tid = new_trace_id()
    root = span("agent run", tid, start_ns=start_ns, duration_ns=5_000_000, attrs={"input.value": "hello"},
                status=2 if error else 0, status_message="boom" if error else "")
    out = [root]
    for i in range(children):
        out.append(span("chat gpt-4o", tid, parent=root["span_id"], start_ns=start_ns + (i + 1) * child_gap_ns,
                        attrs=dict(GENAI_CHAT), events=[("gen_ai.choice", {"index": i, "text": f"answer {i}"})],
                        links=[(new_trace_id(), b"\x02" * 8, {"why": "retry"})] if i == 0 else []))
    return out


def make_dataset(now_ns: int | None = None) -> Dataset:
    now_ns = now_ns or time.time_ns()
    ds = Dataset()
    for _ in range(5):
        ds.add(_trace(now_ns - 1 * DAY_NS), "stay_hot")
    ds.add(_trace(now_ns - 10 * DAY_NS, error=True), "stay_hot")  # errors stay 30d: its day is not dropped
    for _ in range(5):
        ds.add(_trace(now_ns - 10 * DAY_NS), "archive")
    ds.add(_trace(now_ns - 40 * DAY_NS, error=True), "archive")  # errors: archived forever
    for _ in range(4):
        ds.add(_trace(now_ns - 40 * DAY_NS), "delete")  # past 7d + 20d: leaves hot and is deleted
    # A trace across midnight: root late on one day, a child on the next (it moves as a whole).
    midnight = (now_ns - 12 * DAY_NS) // DAY_NS * DAY_NS
    ds.add(_trace(midnight - 2_000_000, children=2, child_gap_ns=1_500_000), "archive")
    # Many traces on one day, so a run reads in several chunks (the chunk size is set small in tests).
    for i in range(20):
        spans = _trace(now_ns - 15 * DAY_NS - 3600 * 10**9 + i * 60 * 10**9, children=1)
        ds.add(spans, "archive")
        ds.busy_day.append(spans[0]["trace_id"].hex())
    return ds


def send(server, bodies: list[bytes]) -> None:
    with httpx.Client(timeout=30) as client:
        for body in bodies:
            deadline = time.monotonic() + 60
            while True:  # 503 + Retry-After means "later", as for any OTLP exporter
                r = client.post(f"{server.otlp_http_url}/v1/traces", content=body,
                                headers={"Content-Type": "application/x-protobuf"})
                if r.status_code != 503 or time.monotonic() > deadline:
                    break
                time.sleep(float(r.headers.get("Retry-After", "1")))
            r.raise_for_status()


def seed(data_dir: Path, ds: Dataset, **server_flags: Any) -> None:
    """Send the dataset through a real ``tracelake server`` and stop it (everything committed)."""
    server = start_server(data_dir, **server_flags)
    try:
        send(server, ds.requests)
        server.wait_for_count("SELECT count() FROM otel_traces", sum(ds.spans.values()))
    finally:
        assert server.terminate() == 0, server.output


def copy_store(template: Path, target: Path) -> Path:
    shutil.copytree(template, target, symlinks=True)
    return target


def snapshot(data_dir: Path, sample: list[str] = (), command: str = "snapshot") -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(HERE / "arx_tool.py"), command, str(data_dir),
                          "--sample", *sample], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def archiver(data_dir: Path, command: str = "run", *args: str, retention: Path | None = None,
             env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "tracelake.cli", "archiver", command, "--data-dir", str(data_dir), "--json", *args]
    if retention is not None:
        argv += ["--retention", str(retention)]
    full_env = {**os.environ, "TRACELAKE_ARCHIVE_CHUNK_SPANS": "20", **(env or {})}
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full_env)


def trace_ids(pairs: list[str]) -> set[str]:
    return {p.split(":")[0] for p in pairs}
