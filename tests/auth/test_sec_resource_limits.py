"""Issue 19, finding 5: one caller cannot take the server from everyone else.

* /api/sql queries are capped by the engine (memory, time, rows read, result size, and the
  result says when it was cut), and SQL cannot raise the caps;
* the embedded engine has a server-wide memory cap that really holds (measured in a process of
  its own);
* a flood of slow queries from one key and from several keys gets 429 at once instead of
  queueing, while /healthz, another project's trace list and OTLP ingest (HTTP and gRPC) on the
  same `tracelake server` process keep answering.

The limits are server-wide settings, so this module starts its own server with small ones
(the shared `stack` fixture runs with the defaults).
"""
from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time

import grpc
import httpx
import pytest

from auth_stack import ADMIN_KEY, Client, create_key, post_spans, start_auth_server
from otlp_spans import new_trace_id, request, span

LIMITS = {
    "TRACELAKE_SQL_MAX_CONCURRENT_PER_CALLER": "2",
    "TRACELAKE_SQL_MAX_CONCURRENT": "4",
    "TRACELAKE_SQL_MAX_MEMORY_BYTES": str(256 * 1024**2),
    "TRACELAKE_SQL_MAX_EXECUTION_S": "4",
    "TRACELAKE_SQL_MAX_RESULT_ROWS": "100",
    "TRACELAKE_SQL_MAX_ROWS_TO_READ": str(20 * 10**9),
    "TRACELAKE_ENGINE_MAX_MEMORY_BYTES": str(3 * 1024**3),
}
# Slow without sleep(): ~13 s of both cores here, so the 4 s cap stops it.
SLOW = "SELECT count() FROM numbers(1e10) WHERE number % 7 = 3"
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    server = start_auth_server(tmp_path_factory.mktemp("limits") / "data", env=LIMITS)
    try:
        keys = {name: create_key(server, name.split(":")[0], "viewer") for name in ("A:v1", "A:v2", "A:v3", "A:v4", "B:v")}
        keys["A:ingest"] = create_key(server, "A", "ingest")
        keys["B:ingest"] = create_key(server, "B", "ingest")
        post_spans(server, keys["B:ingest"], [span("b-root", new_trace_id())])
        server.wait_loaded(keys["B:ingest"])
        yield server, keys
    finally:
        server.terminate()


def test_sql_queries_are_capped_by_the_engine(limited):
    server, keys = limited
    viewer = Client(server, keys["A:v1"])
    memory = viewer.sql("SELECT length(groupArray(number)) FROM numbers(1e8)")  # ~800 MB of array
    assert memory.status_code == 400 and "memory limit" in memory.text.lower(), memory.text
    slow = viewer.sql(SLOW)
    assert slow.status_code == 400 and "Timeout exceeded" in slow.text, slow.text
    huge = viewer.sql("SELECT count() FROM numbers(1e11) WHERE number % 7 = 3")
    assert huge.status_code == 400 and "max_rows_to_read" in huge.text, huge.text
    # SQL cannot lift its own caps: the settings are locked by readonly=1.
    lifted = viewer.sql("SELECT length(groupArray(number)) FROM numbers(1e8) SETTINGS max_memory_usage = 0")
    assert lifted.status_code == 400, lifted.text
    cut = viewer.sql("SELECT number FROM numbers(1000)").json()
    assert len(cut["rows"]) == 100 and cut["truncated"] is True and "sql_max_result_rows" in cut["note"]
    whole = viewer.sql("SELECT number FROM numbers(100)").json()
    assert len(whole["rows"]) == 100 and "truncated" not in whole
    cap = Client(server, ADMIN_KEY).sql("SELECT value FROM system.server_settings WHERE name = 'max_server_memory_usage'")
    assert cap.json()["rows"] == [[str(3 * 1024**3)]], cap.text


_ENGINE = textwrap.dedent("""
    import sys, time
    from tracelake.store import open_store
    from tracelake.store.limits import QueryLimits
    cap = int(sys.argv[2])
    limits = QueryLimits(sql_max_memory_bytes=0, sql_max_execution_s=60, sql_max_result_rows=10, sql_max_result_bytes=10**6,
                         sql_max_rows_to_read=0, ui_max_memory_bytes=0, engine_max_memory_bytes=cap or None)
    store = open_store(sys.argv[1], migrate=False, limits=limits)
    def peak_mb():
        return int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) // 1024
    before = peak_mb()
    try:
        store.query_arrow("SELECT length(groupArray(number)) AS n FROM numbers(2e8)")
        outcome = "ok"
    except Exception as exc:
        outcome = str(exc)[:300]
    print(before, peak_mb(), outcome, flush=True)
    store.close()
""")


def _engine_run(tmp_path, cap: int) -> tuple[int, int, str]:
    done = subprocess.run([sys.executable, "-c", _ENGINE, str(tmp_path / f"engine-{cap}"), str(cap)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    before, peak, outcome = done.stdout.strip().splitlines()[-1].split(" ", 2)
    return int(before), int(peak), outcome


def test_the_embedded_engine_has_a_memory_cap_that_holds(tmp_path):
    """The cap is given when the engine starts and counts every query and insert together: here a
    query with no cap of its own (what an admin's page could run) is stopped by it."""
    before, peak, outcome = _engine_run(tmp_path, 600 * 1024**2)
    print(f"engine capped at 600 MiB: peak RSS {before} -> {peak} MB: {outcome[:120]}")
    assert "(total) memory limit exceeded" in outcome, outcome
    assert peak - before < 1200, (before, peak)  # without the cap the same query takes ~3 GB


def _slow_flood(server, keys: dict[str, str], name: str, threads: int, stop: threading.Event,
                seen: dict[str, list]) -> list[threading.Thread]:
    """``threads`` clients of key ``name`` each sending SLOW until ``stop``; a 429 is retried after
    its Retry-After. ``seen[name]``: (status, seconds, Retry-After) of every answer."""
    key = keys[name]

    def run() -> None:
        with httpx.Client(base_url=server.ui_url, headers={"Authorization": f"Bearer {key}"}, timeout=300) as http:
            while not stop.is_set():
                try:
                    started = time.monotonic()
                    r = http.post("/api/sql", data={"q": SLOW})
                except httpx.HTTPError:
                    return
                seen.setdefault(name, []).append((r.status_code, time.monotonic() - started, r.headers.get("retry-after")))
                if r.status_code == 429:
                    stop.wait(float(r.headers.get("retry-after", "1")))

    workers = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    return workers


def _timed(fn, *args, **kw):
    started = time.monotonic()
    result = fn(*args, **kw)
    return result, time.monotonic() - started


def test_a_flood_of_slow_queries_gets_429_while_everyone_else_is_served(limited):
    server, keys = limited
    stop = threading.Event()
    seen: dict[str, list] = {}
    # 45 concurrent slow queries from one key (more than the 40 worker threads) and 5 from each of
    # three more keys: minutes of work if it queued.
    workers = _slow_flood(server, keys, "A:v1", 45, stop, seen)
    for name in ("A:v2", "A:v3", "A:v4"):
        workers += _slow_flood(server, keys, name, 5, stop, seen)
    try:
        from server_process import wait_until

        wait_until(lambda: sum(len(v) for v in seen.values()) >= 1, "the flood's first answer", timeout=120)
        health, health_s = _timed(httpx.get, f"{server.ui_url}/healthz", timeout=120)
        other, other_s = _timed(Client(server, keys["B:v"]).get, "/api/traces", params={"range": "1h"}, timeout=120)
        body = request([span("during-flood", new_trace_id())]).SerializeToString()
        ack, ack_s = _timed(httpx.post, f"{server.otlp_http_url}/v1/traces", content=body, timeout=120,
                            headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {keys['A:ingest']}"})
        with grpc.insecure_channel(server.otlp_grpc_addr) as channel:
            _, grpc_s = _timed(channel.unary_unary(EXPORT), body, timeout=120,
                               metadata=(("authorization", f"Bearer {keys['A:ingest']}"),))
        still_running = any(w.is_alive() for w in workers)
    finally:
        stop.set()
    print(f"under the flood: /healthz {health_s:.2f} s, B's trace list {other_s:.2f} s, "
          f"OTLP/HTTP ack {ack_s:.2f} s, OTLP/gRPC ack {grpc_s:.2f} s")
    assert still_running
    assert health.status_code == 200 and health_s < 10
    assert other.status_code == 200 and other_s < 20, other.text
    assert ack.status_code == 200 and ack_s < 10 and grpc_s < 10
    for w in workers:
        w.join(timeout=120)
    refused = [(s, t, ra) for answers in seen.values() for s, t, ra in answers if s == 429]
    assert refused and all(ra == "1" for _, _, ra in refused)
    assert max(t for _, t, _ in refused) < 10  # 429 at once, not after queueing
    for name in ("A:v1", "A:v2", "A:v3", "A:v4"):
        assert any(s == 429 for s, _, _ in seen[name]), name  # every flooding key was capped
        assert all(s in (200, 400, 429) for s, _, _ in seen[name])
    # The flooders' own next query runs once the flood is over.
    assert Client(server, keys["A:v1"]).sql("SELECT 1").status_code == 200


# -- the limiter itself (no server: an ASGI app that holds requests until told) -------------------
class _Settings:
    sql_max_concurrent_per_caller = 2
    sql_max_concurrent = 3
    ui_max_concurrent_per_caller = 2
    max_concurrent_requests = 4
    auth_proxy_trusted = ["127.0.0.1"]


def test_the_limiter_refuses_at_once_per_caller_and_in_all():
    from tracelake.limits import ConcurrencyLimits

    release = asyncio.Event()

    async def app(scope, receive, send):
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    limiter = ConcurrencyLimits(app, _Settings())

    async def call(path: str, client: str) -> int:
        sent = []

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "path": path, "headers": [], "client": (client, 1234), "state": {}}
        await limiter(scope, None, send)
        return sent[0]["status"]

    async def scenario() -> None:
        held = [asyncio.create_task(call("/api/sql", "10.0.0.1")) for _ in range(2)]
        await asyncio.sleep(0)  # the held requests take their slots
        assert await call("/api/sql", "10.0.0.1") == 429  # per caller
        held.append(asyncio.create_task(call("/api/sql", "10.0.0.2")))
        await asyncio.sleep(0)
        assert await call("/api/sql", "10.0.0.3") == 429  # sql_max_concurrent
        held.append(asyncio.create_task(call("/traces", "10.0.0.3")))
        await asyncio.sleep(0)
        assert await call("/traces", "10.0.0.4") == 429  # max_concurrent_requests
        release.set()
        assert await call("/healthz", "10.0.0.1") == 200  # never limited
        assert sorted(await asyncio.gather(*held)) == [200] * 4
        assert await call("/api/sql", "10.0.0.1") == 200  # slots are given back

    asyncio.run(scenario())
