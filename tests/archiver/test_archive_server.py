"""The archiver inside ``tracelake server``: a bad retention file stops the start, the CLI talks to
the running server, the schedule archives on its own, and attachments follow their traces."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from att_media import png
from arx_helpers import DAY_NS, POLICY, _trace, make_dataset, send
from otlp_spans import request
from server_process import start_server


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tracelake.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "200", **(env or {})})


def _count(server, sql: str) -> int:
    return int(server.sql(sql)[0][0])


def test_server_refuses_a_bad_retention_file_before_starting(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(POLICY + "  - name: second-default\n    hot: 1d\n    archive: 1d\n")
    data = tmp_path / "data"
    out = _cli("server", "--data-dir", str(data), "--otlp-grpc-port", "0", "--otlp-http-port", "0", "--ui-port", "0",
               "--retention", str(bad))
    assert out.returncode == 2
    assert "line 9" in out.stderr and "second default rule" in out.stderr
    assert not (data / "clickhouse").exists()  # nothing opened, nothing archived


def test_cli_plans_and_runs_through_the_running_server(tmp_path: Path):
    ds = make_dataset()
    policy = tmp_path / "retention.yaml"
    policy.write_text(POLICY)
    with start_server(tmp_path / "data", retention=str(policy), archive_every="1d") as server:
        send(server, ds.requests)
        total = sum(ds.spans.values())
        server.wait_for_count("SELECT count() FROM otel_traces", total)
        plan = _cli("archiver", "plan", "--url", server.ui_url)
        assert plan.returncode == 0, plan.stderr
        assert "errors" in plan.stdout and "default" in plan.stdout and "archive" in plan.stdout
        assert _count(server, "SELECT count() FROM otel_traces") == total  # the plan changed nothing
        run = _cli("archiver", "run", "--url", server.ui_url)
        assert run.returncode == 0, run.stderr
        assert "done" in run.stdout
        archived = sum(ds.spans[t] for t in ds.archive)
        assert _count(server, "SELECT count() FROM otel_traces_archive") == archived
        assert _count(server, "SELECT count() FROM otel_traces") == sum(ds.spans[t] for t in ds.stay_hot)
        runs = httpx.get(f"{server.ui_url}/api/archiver/runs", timeout=30).json()["runs"]
        assert runs[0]["state"] == "done" and runs[0]["traces"] == len(ds.archive | ds.delete)
        # A policy sent with the request is validated like a file.
        bad = tmp_path / "bad.yaml"
        bad.write_text("rules:\n  - name: x\n    match: 'nosuchfield:1'\n    hot: 1d\n    archive: 1d\n")
        refused = _cli("archiver", "plan", "--url", server.ui_url, "--retention", str(bad))
        assert refused.returncode == 2 and "line 3" in refused.stderr


def test_schedule_archives_without_being_asked(tmp_path: Path):
    ds = make_dataset()
    policy = tmp_path / "retention.yaml"
    policy.write_text(POLICY)
    with start_server(tmp_path / "data", retention=str(policy), archive_every="2s") as server:
        send(server, ds.requests)
        archived = sum(ds.spans[t] for t in ds.archive)
        hot = sum(ds.spans[t] for t in ds.stay_hot)
        deadline = time.monotonic() + 180
        while (_count(server, "SELECT count() FROM otel_traces_archive"),
               _count(server, "SELECT count() FROM otel_traces")) != (archived, hot):
            assert time.monotonic() < deadline, server.output[-5:]
            time.sleep(0.5)
        runs = httpx.get(f"{server.ui_url}/api/archiver/runs", timeout=30).json()["runs"]
        assert any(r["state"] == "done" and r["traces"] for r in runs)
        status = httpx.get(f"{server.ui_url}/api/archiver/status", timeout=30).json()
        assert status["enabled"] and [r["name"] for r in status["rules"]] == ["errors", "default"]


def _with_image(age_days: int, image: bytes) -> bytes:
    spans = _trace(time.time_ns() - age_days * DAY_NS, children=1)
    uri = "data:image/png;base64," + base64.b64encode(image).decode()
    spans[1]["attrs"]["gen_ai.input.messages"] = json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": "what is this?"},
                                    {"type": "uri", "uri": uri, "modality": "image"}]}])
    return request(spans).SerializeToString()


def test_attachments_follow_their_traces(tmp_path: Path):
    kept, dropped = png(48, 32, 1), png(48, 32, 2)
    policy = tmp_path / "retention.yaml"
    policy.write_text(POLICY)
    env = {"TRACELAKE_ATTACHMENT_GC_GRACE": "0s"}
    with start_server(tmp_path / "data", retention=str(policy), archive_every="1d", env=env) as server:
        # one archived trace (10 days old) and one deleted on leaving hot (40 days old)
        send(server, [_with_image(10, kept), _with_image(40, dropped)])
        server.wait_for_count("SELECT count() FROM otel_traces", 4)
        shas = [hashlib.sha256(b).hexdigest() for b in (kept, dropped)]
        deadline = time.monotonic() + 60
        while _count(server, "SELECT uniqExact(Sha256) FROM attachments") < 2:  # the index flushes ~1/s
            assert time.monotonic() < deadline
            time.sleep(0.2)
        for sha in shas:
            assert httpx.get(f"{server.ui_url}/api/attachments/{sha}", timeout=30).status_code == 200
        run = _cli("archiver", "run", "--url", server.ui_url, "--json")
        assert run.returncode == 0, run.stderr
        assert _count(server, "SELECT count() FROM otel_traces") == 0
        # The archived trace's image keeps being served; the deleted trace's blob is gone.
        assert httpx.get(f"{server.ui_url}/api/attachments/{shas[0]}", timeout=30).status_code == 200
        assert httpx.get(f"{server.ui_url}/api/attachments/{shas[1]}", timeout=30).status_code == 404
        assert _count(server, "SELECT count() FROM archive_attachments") == 1
