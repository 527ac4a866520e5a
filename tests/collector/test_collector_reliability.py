"""Backpressure, store outages, kill -9 and SIGTERM: no acked span is lost, none appears twice."""
from __future__ import annotations

import signal
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest
from otlp_spans import new_trace_id, request, span
from server_process import start_clickhouse_endpoint, start_server, wait_until

from tracelake.store import open_store


def _body(service: str, n: int) -> tuple[bytes, str]:
    trace = new_trace_id()
    return request([span(f"s{i}", trace) for i in range(n)], service=service).SerializeToString(), trace.hex()


def _post(url: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{url}/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}, timeout=60)


def _send_until_acked(url: str, body: bytes, deadline_s: float = 90) -> list[int]:
    """What an OTLP exporter does: retry 503 after Retry-After until accepted."""
    statuses = []
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            r = _post(url, body)
        except httpx.TransportError:
            statuses.append(0)
            time.sleep(0.5)
            continue
        statuses.append(r.status_code)
        if r.status_code == 200:
            return statuses
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        time.sleep(float(r.headers["Retry-After"]))
    raise AssertionError(f"never acked: {statuses}")


def _counts(store, service: str) -> tuple[int, int]:
    [row] = store.query_arrow("SELECT count() AS total, uniqExact(SpanId) AS distinct_spans FROM "
                              "(SELECT SpanId FROM otel_traces WHERE ServiceName = {s:String} LIMIT 1 BY SpanId)",
                              {"s": service}).to_pylist()
    return row["total"], row["distinct_spans"]


@pytest.fixture
def slow_clickhouse(tmp_path):
    endpoint = start_clickhouse_endpoint(tmp_path / "ch", delay=0.5)
    yield endpoint
    endpoint.stop()


def test_queue_full_answers_503_then_every_retried_span_is_stored_once(tmp_path, slow_clickhouse):
    db_url = f"{slow_clickhouse.url}/bp_{uuid.uuid4().hex[:6]}"
    # The in-memory queue bounds the ack-after-commit mode (the spool has its own bound, see test_spool_e2e).
    env = {"TRACELAKE_MAX_QUEUE_SPANS": "200", "TRACELAKE_BATCH_MAX_SPANS": "100", "TRACELAKE_ACK_MODE": "commit"}
    with start_server(tmp_path / "c", command="collector", clickhouse_url=db_url, env=env) as collector:
        bodies = [_body("bp", 100)[0] for _ in range(12)]
        with ThreadPoolExecutor(12) as pool:
            histories = list(pool.map(lambda b: _send_until_acked(collector.otlp_http_url, b), bodies))
        assert any(503 in h for h in histories), histories  # the bound was hit...
        metrics = httpx.get(f"{collector.otlp_http_url}/metrics").text
        assert 'tracelake_spans_refused_total{protocol="http",reason="queue full"}' in metrics
    store = open_store(clickhouse_url=db_url, migrate=False)
    assert _counts(store, "bp") == (1200, 1200)  # ...and every span arrived exactly once
    store.close()


def test_store_outage_gives_503_and_unavailable_then_recovers(tmp_path):
    endpoint = start_clickhouse_endpoint(tmp_path / "ch")
    db_url = f"{endpoint.url}/outage"
    # Ack after commit: a store outage is a 503 at once (in spool mode acks go on: test_spool_e2e).
    with start_server(tmp_path / "c", command="collector", clickhouse_url=db_url, ack_mode="commit") as collector:
        body, _ = _body("outage", 10)
        assert _post(collector.otlp_http_url, body).status_code == 200
        endpoint.toggle_failures()  # ClickHouse is down: INSERTs and pings fail until toggled back
        failed = _post(collector.otlp_http_url, _body("outage", 10)[0])
        assert failed.status_code == 503 and failed.headers["Retry-After"] == "1"
        channel = grpc.insecure_channel(collector.otlp_grpc_addr)
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as err:
            export(_body("outage", 5)[0], timeout=30)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        retry_info = dict(err.value.trailing_metadata() or ())
        assert "google.rpc.retryinfo-bin" in retry_info
        channel.close()
        assert "tracelake_store_up 0.0" in httpx.get(f"{collector.otlp_http_url}/metrics").text
        endpoint.toggle_failures()  # back up: the probe notices, retries succeed
        retried = _body("outage", 10)[0]
        history = _send_until_acked(collector.otlp_http_url, retried)
        assert history[-1] == 200
        assert _send_until_acked(collector.otlp_http_url, retried)[-1] == 200  # a duplicate retry
    store = open_store(clickhouse_url=db_url, migrate=False)
    total, distinct = _counts(store, "outage")
    assert total == distinct and 20 <= total <= 30  # the failed batch may or may not have landed
    store.close()
    endpoint.stop()


@pytest.mark.parametrize("ack_mode", ["spool", "commit"])
def test_kill_9_after_acks_loses_nothing(tmp_path, ack_mode):
    data = tmp_path / "data"
    server = start_server(data, ack_mode=ack_mode)
    traces = []
    for _ in range(15):
        body, trace = _body("durable", 100)
        assert _post(server.otlp_http_url, body).status_code == 200
        traces.append(trace)
    server.proc.send_signal(signal.SIGKILL)  # no chance to flush anything
    server.proc.wait()
    with start_server(data, ack_mode=ack_mode) as again:
        # Spool mode: what was acked but not loaded yet is loaded after the restart.
        assert again.wait_for_count("SELECT count() FROM otel_traces WHERE ServiceName = 'durable'", 1500) == 1500
        assert again.sql("SELECT count(), uniqExact(TraceId) FROM otel_traces WHERE ServiceName = 'durable'") == [[1500, 15]]


def _listening(url: str) -> bool:
    try:
        socket.create_connection((httpx.URL(url).host, httpx.URL(url).port), timeout=5).close()
    except ConnectionRefusedError:
        return False
    return True


def test_sigterm_commits_what_was_accepted(tmp_path):
    endpoint = start_clickhouse_endpoint(tmp_path / "ch")
    db_url = f"{endpoint.url}/drain_{uuid.uuid4().hex[:6]}"
    # No commit is slow enough to turn into a 503 here: the test decides when commits go through.
    # Ack after commit: in spool mode acks do not wait for commits (test_spool_e2e drains a spool).
    collector = start_server(tmp_path / "c", command="collector", clickhouse_url=db_url, ack_mode="commit",
                             env={"TRACELAKE_ACK_TIMEOUT_S": "600"})
    bodies = [_body("drain", 200) for _ in range(16)]
    # One client, built before anything is timed: building one per request costs CPU enough to
    # keep a busy machine from connecting at all before the signal (issue 14).
    client = httpx.Client(timeout=120)  # its pool (100) holds the 16 posts and the /metrics polls

    def send(item):
        try:
            r = client.post(f"{collector.otlp_http_url}/v1/traces", content=item[0],
                            headers={"Content-Type": "application/x-protobuf"})
            return item[1], r.status_code, r.content[:200]
        except httpx.TransportError as exc:
            return item[1], 0, repr(exc)

    pool = ThreadPoolExecutor(len(bodies))
    try:
        endpoint.hold_inserts()  # commits hang: an accepted request stays unanswered
        futures = [pool.submit(send, b) for b in bodies]
        # Every request accepted and none can commit: all 16 are in flight when the signal comes.
        # tracelake_queue_spans: spans accepted and not yet committed (their requests unanswered)
        wait_until(lambda: collector.metric("tracelake_queue_spans", client=client) == len(bodies) * 200,
                   "every request is queued", every=0.02)
        collector.proc.send_signal(signal.SIGTERM)
        # The server took the signal (its listener is closed) while the commits still hang...
        wait_until(lambda: not _listening(collector.otlp_http_url), "the listener closes after SIGTERM", every=0.02)
        assert collector.proc.poll() is None, "".join(collector.output)
        endpoint.release_inserts()  # ...then lets the commits through: the drain must answer them all
        results = [f.result() for f in futures]
        assert collector.proc.wait(60) == 0, "".join(collector.output)
        acked = {trace for trace, status, _ in results if status == 200}
        assert acked == {trace for _, trace in bodies}, results
        store = open_store(clickhouse_url=db_url, migrate=False)
        rows = store.query_arrow("SELECT TraceId, count() AS spans FROM (SELECT TraceId, SpanId FROM otel_traces "
                                 "WHERE ServiceName = 'drain' LIMIT 1 BY SpanId) GROUP BY TraceId").to_pylist()
        store.close()
        assert {r["TraceId"]: r["spans"] for r in rows} == {trace: 200 for trace in acked}
    finally:  # on a failure, nothing may be left hanging on a held commit
        collector.kill()
        endpoint.release_inserts()
        pool.shutdown()
        client.close()
        endpoint.stop()
