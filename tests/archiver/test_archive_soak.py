"""Many spans sent through the collector, archived in one run of several chunks; counts and an
order-independent hash of every (TraceId, SpanId) match before and after, and a sample of traces
matches field by field.

The suite runs it with 16k spans (4 chunks); the soak (marker ``soak``, left out by default:
``python -m pytest -m soak``) runs the same checks on 1M spans (TRACELAKE_SOAK_SPANS), ~2-4 minutes
on 2 busy cores."""
from __future__ import annotations

import json
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from arx_helpers import DAY_NS, archiver, snapshot
from otlp_spans import GENAI_CHAT, request, span
from server_process import start_server

SOAK_SPANS = int(os.environ.get("TRACELAKE_SOAK_SPANS", "1000000"))
PER_TRACE = 8
PER_REQUEST = 64  # traces per request: 512 spans


def _bodies(n_spans: int, seed: int = 11) -> tuple[list[bytes], list[str], list[str]]:
    """Requests of 8-span traces: 90 % five days old (archived), 10 % fresh (stay hot)."""
    rng = random.Random(seed)
    now = time.time_ns()
    bodies, old, fresh = [], [], []
    n_traces = n_spans // PER_TRACE
    for start in range(0, n_traces, PER_REQUEST):
        spans = []
        for i in range(start, min(start + PER_REQUEST, n_traces)):
            is_old = i % 10 != 0
            t0 = now - (5 * DAY_NS if is_old else 3600 * 10**9) - rng.randrange(3600 * 10**9)
            tid = rng.randbytes(16)
            (old if is_old else fresh).append(tid.hex())
            root = span("agent run", tid, span_id=rng.randbytes(8), start_ns=t0, duration_ns=9_000_000,
                        attrs={"input.value": f"question {i}: " + "lorem ipsum " * rng.randrange(1, 30)})
            spans.append(root)
            for k in range(PER_TRACE - 1):
                spans.append(span("chat", tid, span_id=rng.randbytes(8), parent=root["span_id"], start_ns=t0 + k * 1000,
                                  attrs={**GENAI_CHAT, "gen_ai.usage.input_tokens": rng.randrange(1, 5000)},
                                  events=[("gen_ai.choice", {"text": f"answer {i}.{k}"})] if k == 0 else []))
        bodies.append(request(spans, service=f"agent-{start % 3}").SerializeToString())
    return bodies, old, fresh


def test_archive_many_spans_through_the_collector_in_chunks(tmp_path: Path):
    _send_archive_and_compare(tmp_path, 16_000, chunk_spans=4_000)


@pytest.mark.soak
@pytest.mark.timeout(1200)
def test_soak_archive_one_million_spans(tmp_path: Path):
    _send_archive_and_compare(tmp_path, SOAK_SPANS, chunk_spans=200_000)


def _send_archive_and_compare(tmp_path: Path, n_spans: int, chunk_spans: int) -> None:
    bodies, old, fresh = _bodies(n_spans)
    total = len(bodies) and (len(old) + len(fresh)) * PER_TRACE
    data = tmp_path / "data"
    with start_server(data) as server:
        def post(body: bytes) -> None:
            with httpx.Client(timeout=120) as client:
                while True:
                    r = client.post(f"{server.otlp_http_url}/v1/traces", content=body,
                                    headers={"Content-Type": "application/x-protobuf"})
                    if r.status_code != 503:
                        r.raise_for_status()
                        return
                    time.sleep(float(r.headers.get("Retry-After", "1")))

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(post, bodies))
        assert server.wait_for_count("SELECT count() FROM otel_traces", total, timeout=300) == total
    sample = sorted(random.Random(3).sample(old, 20))
    before = snapshot(data, sample, command="digest")
    assert int(before["hot"]["n"]) == total

    policy = tmp_path / "retention.yaml"
    policy.write_text("rules:\n  - name: default\n    hot: 1d\n    archive: forever\n")
    started = time.monotonic()
    out = archiver(data, retention=policy, env={"TRACELAKE_ARCHIVE_CHUNK_SPANS": str(chunk_spans)}, timeout=900)
    elapsed = time.monotonic() - started
    assert out.returncode == 0, out.stderr[-3000:]
    [run] = json.loads(out.stdout)["runs"]
    assert run["state"] == "done" and run["traces"] == len(old) and run["spans"] == len(old) * PER_TRACE

    after = snapshot(data, sample, command="digest")
    # Nothing lost, nothing twice: hot + archive hold exactly the spans sent.
    assert int(after["hot"]["n"]) + int(after["archive"]["n"]) == total
    assert int(after["archive"]["n"]) == len(old) * PER_TRACE
    assert (int(after["hot"]["h"]) + int(after["archive"]["h"])) % 2**64 == int(before["hot"]["h"]) % 2**64
    assert after["traces_hot"] == len(fresh) and after["traces_archived"] == len(old)
    assert after["archive_rows_sample"] == before["hot_rows"] and len(before["hot_rows"]) == 20 * PER_TRACE
    print(f"{run['spans']:,} spans archived in {elapsed:.1f} s (archiver process, including start)")
