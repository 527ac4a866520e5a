"""The ingest spool end to end, on real server processes: kill -9 and replay, torn tails, corrupt
segments, ClickHouse down under load, a full disk, SIGTERM, and three collectors on one ClickHouse.

The promise checked everywhere: every acked span is in ClickHouse exactly once — ``count()``
equals the distinct (TraceId, SpanId) pairs with no FINAL and no OPTIMIZE, i.e. the segment
deduplication did its job rather than a background merge.
"""
from __future__ import annotations

import signal
import subprocess
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import pytest
from otlp_spans import new_trace_id, request, span
from server_process import ServerProcess, start_clickhouse_endpoint, start_server, wait_until

from tracelake.store import open_store

PAD = "lorem ipsum dolor sit amet " * 40  # ~1 KB per span, like an LLM span's messages


def _body(service: str, n: int = 50) -> tuple[bytes, str]:
    trace = new_trace_id()
    spans = [span(f"s{i}", trace, attrs={"gen_ai.input.messages": PAD}) for i in range(n)]
    return request(spans, service=service).SerializeToString(), trace.hex()


def _post(client: httpx.Client, url: str, body: bytes) -> httpx.Response:
    return client.post(f"{url}/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"})


def _spool_empty(server: ServerProcess) -> bool:
    return server.metric("tracelake_spool_segments") == 0


def _exactly_once(store, service: str, acked: dict[str, int]) -> None:
    """Every acked trace has all its spans once; nothing in the table is there twice."""
    per_trace = {r["TraceId"]: r["n"] for r in store.query_arrow(
        "SELECT TraceId, count() AS n FROM otel_traces WHERE ServiceName = {s:String} GROUP BY TraceId",
        {"s": service}).to_pylist()}
    missing = {t: n for t, n in acked.items() if per_trace.get(t) != n}
    assert not missing, f"acked traces missing or duplicated: {missing}"
    [row] = store.query_arrow("SELECT count() AS n, uniqExact(TraceId, SpanId) AS pairs FROM otel_traces "
                              "WHERE ServiceName = {s:String}", {"s": service}).to_pylist()
    assert row["n"] == row["pairs"], row


class Load:
    """Clients sending each request once (no retry) and remembering which were acked."""

    def __init__(self, urls: list[str], service: str, requests: int, clients: int, spans: int = 50) -> None:
        self.bodies = [_body(service, spans) for _ in range(requests)]
        self.spans = spans
        self.acked: dict[str, int] = {}
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        self._urls = urls
        self._clients = clients
        self._pool = ThreadPoolExecutor(clients)
        self._http = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=clients * 2))
        self.futures = []

    def start(self) -> Load:
        for i, (body, trace) in enumerate(self.bodies):
            self.futures.append(self._pool.submit(self._send, self._urls[i % len(self._urls)], body, trace))
        return self

    def _send(self, url: str, body: bytes, trace: str) -> None:
        try:
            status = _post(self._http, url, body).status_code
        except httpx.TransportError:
            status = 0
        with self._lock:
            self.statuses.append(status)
            if status == 200:
                self.acked[trace] = self.spans

    def wait(self) -> Load:
        for f in self.futures:
            f.result()
        self._pool.shutdown()
        self._http.close()
        return self


def test_kill_9_mid_load_then_restart_replays_every_acked_span_once(tmp_path, processes):
    data = tmp_path / "data"
    server = start_server(data)
    processes.append(server)
    load = Load([server.otlp_http_url], "kill9", requests=120, clients=6).start()
    wait_until(lambda: len(load.acked) >= 30, "30 requests are acked", timeout=120)
    server.kill()  # SIGKILL mid-load: some requests in flight, segments unloaded or half-loaded
    load.wait()
    assert 30 <= len(load.acked) < 120, load.statuses
    with start_server(data) as again:
        processes.append(again)
        wait_until(lambda: _spool_empty(again), "the replayed spool is loaded", timeout=120)
        store_rows = again.sql("SELECT TraceId, count() FROM otel_traces WHERE ServiceName = 'kill9' GROUP BY TraceId")
        per_trace = {t: n for t, n in store_rows}
        assert all(per_trace.get(t) == 50 for t in load.acked), {t: per_trace.get(t) for t in load.acked}
        assert again.sql("SELECT count() = uniqExact(TraceId, SpanId) FROM otel_traces WHERE ServiceName = 'kill9'") == [[1]]


@pytest.fixture
def clickhouse(tmp_path):
    endpoint = start_clickhouse_endpoint(tmp_path / "ch")
    yield endpoint
    endpoint.stop()


@pytest.fixture
def processes():
    """Every server a test starts; killed at teardown, so a failing test leaves nothing running."""
    started: list[ServerProcess] = []
    yield started
    for process in started:
        process.kill()


def _collector(processes: list[ServerProcess], tmp_path: Path, name: str, db_url: str,
               env: dict[str, str] | None = None, **flags) -> ServerProcess:
    process = start_server(tmp_path / name, command="collector", clickhouse_url=db_url, env=env, **flags)
    processes.append(process)
    return process


def test_torn_tail_is_cut_and_every_acked_span_loads(tmp_path, processes, clickhouse):
    db_url = f"{clickhouse.url}/torn_{uuid.uuid4().hex[:6]}"
    collector = _collector(processes, tmp_path, "c", db_url)
    clickhouse.toggle_failures()  # ClickHouse down: acked requests stay in the spool
    acked = {}
    with httpx.Client(timeout=60) as client:
        for _ in range(5):
            body, trace = _body("torn")
            assert _post(client, collector.otlp_http_url, body).status_code == 200
            acked[trace] = 50
    collector.kill()
    spool = tmp_path / "c" / "spool"
    # A kill -9 (or power loss) in the middle of an append: half a record at the end of a segment.
    from tracelake.collector.spool import encode_record

    partial = encode_record(_body("torn")[0])
    segment = max(spool.glob("*.open"))
    with open(segment, "ab") as f:
        f.write(partial[: len(partial) // 2])
    clickhouse.toggle_failures()
    with _collector(processes, tmp_path, "c", db_url) as again:
        wait_until(lambda: _spool_empty(again), "the spool is loaded", timeout=120)
        assert again.metric("tracelake_spool_torn_bytes") == len(partial) // 2
    assert list((spool / "corrupt").glob("*.torn"))
    assert any("torn tail" in line for line in again.output)
    store = open_store(clickhouse_url=db_url, migrate=False)
    _exactly_once(store, "torn", acked)
    store.close()


def test_a_corrupt_segment_is_moved_aside_and_reported(tmp_path, processes, clickhouse):
    db_url = f"{clickhouse.url}/corrupt_{uuid.uuid4().hex[:6]}"
    collector = _collector(processes, tmp_path, "c", db_url, env={"TRACELAKE_SPOOL_SEGMENT_MS": "50"})
    clickhouse.toggle_failures()
    acked = {}
    with httpx.Client(timeout=60) as client:
        for i in range(4):  # one segment each: the next request waits until the previous one is sealed
            body, trace = _body("corrupt")
            assert _post(client, collector.otlp_http_url, body).status_code == 200
            acked[trace] = 50
            wait_until(lambda: len(list((tmp_path / "c" / "spool").glob("*.seg"))) == i + 1, "a segment is sealed", timeout=120)
    collector.kill()
    spool = tmp_path / "c" / "spool"
    victim = min(spool.glob("*.seg"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # bit rot inside a record
    victim.write_bytes(bytes(data))
    clickhouse.toggle_failures()
    with _collector(processes, tmp_path, "c", db_url) as again:
        wait_until(lambda: _spool_empty(again), "the sound segments are loaded", timeout=120)
        assert again.metric("tracelake_spool_corrupt_segments") == 1
    assert (spool / "corrupt" / victim.name).read_bytes() == bytes(data)  # kept for inspection, not deleted
    assert any("is corrupt" in line and victim.name in line for line in again.output)
    store = open_store(clickhouse_url=db_url, migrate=False)
    stored = {r["TraceId"] for r in store.query_arrow(
        "SELECT DISTINCT TraceId FROM otel_traces WHERE ServiceName = 'corrupt'").to_pylist()}
    assert len(stored) == 3 and stored < set(acked)  # the three sound segments, and only those
    _exactly_once(store, "corrupt", {t: 50 for t in stored})
    store.close()


def test_clickhouse_down_under_load_acks_continue_then_503_at_the_bound_then_all_lands(tmp_path, processes, clickhouse):
    db_url = f"{clickhouse.url}/down_{uuid.uuid4().hex[:6]}"
    size = len(_body("x")[0])
    bound = 12 * size  # room for about a dozen requests
    collector = _collector(processes, tmp_path, "c", db_url, spool_max_bytes=bound)
    clickhouse.toggle_failures()  # INSERTs fail as if ClickHouse were down
    acked: dict[str, int] = {}
    statuses = []
    with httpx.Client(timeout=60) as client:
        for _ in range(40):
            body, trace = _body("down")
            r = _post(client, collector.otlp_http_url, body)
            statuses.append(r.status_code)
            if r.status_code == 200:
                acked[trace] = 50
            else:
                assert r.status_code == 503 and r.headers["Retry-After"] == "1", r.text
                break
        assert 8 <= len(acked) <= 12 and statuses[-1] == 503, statuses  # acked while down, then the bound
        assert "spool full" in r.content.decode(errors="replace")
        ready = client.get(f"{collector.otlp_http_url}/readyz")
        assert ready.status_code == 503 and "spool full" in ready.text
        # The first sealed segment's INSERT fails: the loaders report the store down, acks went on.
        wait_until(lambda: collector.metric("tracelake_store_up") == 0, "a load attempt failed", timeout=120)
        assert collector.metric("tracelake_spool_oldest_unloaded_age_seconds") > 0
        with grpc.insecure_channel(collector.otlp_grpc_addr) as channel:
            export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            with pytest.raises(grpc.RpcError) as err:
                export(_body("down")[0], timeout=30)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "google.rpc.retryinfo-bin" in dict(err.value.trailing_metadata() or ())
        clickhouse.toggle_failures()  # back: the loaders retry and empty the spool
        wait_until(lambda: _spool_empty(collector), "the spool is loaded after the outage", timeout=120)
        assert client.get(f"{collector.otlp_http_url}/readyz").status_code == 200
        body, trace = _body("down")
        assert _post(client, collector.otlp_http_url, body).status_code == 200
        acked[trace] = 50
        wait_until(lambda: _spool_empty(collector), "the last request is loaded", timeout=120)
    collector.terminate()
    store = open_store(clickhouse_url=db_url, migrate=False)
    _exactly_once(store, "down", acked)
    store.close()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MiB tmpfs for the spool: appends past it fail with ENOSPC, as on a full disk."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mountpoint)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def test_disk_full_is_a_clear_refusal_and_nothing_unsynced_is_acked(tmp_path, processes, clickhouse, tiny_disk):
    db_url = f"{clickhouse.url}/full_{uuid.uuid4().hex[:6]}"
    collector = _collector(processes, tmp_path, "c", db_url, spool_dir=tiny_disk / "spool")
    clickhouse.toggle_failures()  # nothing leaves the spool, so the disk fills
    acked: dict[str, int] = {}
    with httpx.Client(timeout=60) as client:
        for _ in range(100):
            body, trace = _body("full")
            r = _post(client, collector.otlp_http_url, body)
            if r.status_code != 200:
                break
            acked[trace] = 50
        assert r.status_code == 503 and "spool disk full" in r.content.decode(errors="replace"), r.content
        assert acked and collector.metric("tracelake_spool_write_errors") >= 1
        clickhouse.toggle_failures()
        wait_until(lambda: _spool_empty(collector), "the spool is loaded", timeout=120)
        body, trace = _body("full")  # room again
        assert _post(client, collector.otlp_http_url, body).status_code == 200
        acked[trace] = 50
        wait_until(lambda: _spool_empty(collector), "the last request is loaded", timeout=120)
    collector.terminate()
    store = open_store(clickhouse_url=db_url, migrate=False)
    _exactly_once(store, "full", acked)
    store.close()


def test_sigterm_drains_the_spool_into_clickhouse(tmp_path, processes, clickhouse):
    db_url = f"{clickhouse.url}/term_{uuid.uuid4().hex[:6]}"
    collector = _collector(processes, tmp_path, "c", db_url)
    load = Load([collector.otlp_http_url], "term", requests=60, clients=6).start()
    wait_until(lambda: len(load.acked) >= 20, "20 requests are acked", timeout=120)
    collector.proc.send_signal(signal.SIGTERM)
    load.wait()
    assert collector.proc.wait(120) == 0, "".join(collector.output)
    assert not list((tmp_path / "c" / "spool").glob("*.seg")), "the spool was not drained"
    store = open_store(clickhouse_url=db_url, migrate=False)  # no restart: SIGTERM loaded everything
    _exactly_once(store, "term", load.acked)
    store.close()


def test_three_collectors_one_clickhouse_kill_9_one_and_restart(tmp_path, processes, clickhouse):
    db_url = f"{clickhouse.url}/fleet_{uuid.uuid4().hex[:6]}"
    collectors = [_collector(processes, tmp_path, f"c{i}", db_url) for i in range(3)]
    try:
        load = Load([c.otlp_http_url for c in collectors], "fleet", requests=150, clients=9).start()
        wait_until(lambda: len(load.acked) >= 45, "45 requests are acked", timeout=120)
        collectors[1].kill()  # one of three dies mid-load; its spool stays on its disk
        load.wait()
        assert 45 <= len(load.acked) < 150
        collectors[1] = _collector(processes, tmp_path, "c1", db_url)  # same data dir: replays its spool
        for c in collectors:
            wait_until(lambda: _spool_empty(c), "every spool is loaded", timeout=120)
    finally:
        for c in collectors:
            c.terminate()
    store = open_store(clickhouse_url=db_url, migrate=False)
    _exactly_once(store, "fleet", load.acked)
    store.close()


def test_a_collector_starts_and_acks_while_clickhouse_is_unreachable(tmp_path, processes):
    """A fleet restarted during a ClickHouse outage: collectors start, ack into their spools, and
    connect (migrations included) once ClickHouse answers."""
    from server_process import free_port

    port = free_port()  # nothing listens here yet
    db_url = f"http://127.0.0.1:{port}/late_{uuid.uuid4().hex[:6]}"
    collector = _collector(processes, tmp_path, "c", db_url)
    assert any("unreachable at start" in line for line in collector.output), collector.output
    acked = {}
    with httpx.Client(timeout=60) as client:
        for _ in range(3):
            body, trace = _body("late")
            assert _post(client, collector.otlp_http_url, body).status_code == 200
            acked[trace] = 50
        assert client.get(f"{collector.otlp_http_url}/readyz").status_code == 200  # the spool has room
        wait_until(lambda: collector.metric("tracelake_store_up") == 0, "a load attempt failed", timeout=120)
        endpoint = start_clickhouse_endpoint(tmp_path / "ch", port=port)  # ClickHouse comes up
        try:
            wait_until(lambda: _spool_empty(collector), "the spool is loaded once ClickHouse answers", timeout=120)
            collector.terminate()
            store = open_store(clickhouse_url=db_url, migrate=False)
            _exactly_once(store, "late", acked)
            store.close()
        finally:
            endpoint.stop()
