"""End-to-end ingest benchmark: realistic LLM-agent spans into ``tracelake server`` (embedded store).

For each ack mode (``spool``: ack once fsynced to the collector's spool; ``commit``: ack after the
INSERT) and each number of clients, starts a fresh server, sends the same requests over OTLP/HTTP
(each client keeps one request in flight, like an app's BatchSpanProcessor), and measures:

* end to end spans/s: first send until every span is queryable;
* ack latency p50 / p99 per request;
* visibility: a probe sends a one-span request every 0.25 s during the load and polls until it is
  queryable — the delay from its ack (p50 / p99);
* peak RSS of the server and peak spool bytes (memory and disk stay bounded);
* INSERTs and spans per INSERT (from the server's /metrics).

It prints a table per mode and the ratio spool / commit for each client count, measured in the
same run, plus the machine's load average (other work on a shared machine shows up there).

    python benchmarks/ingest.py --spans 100000 --clients 1 4 16 64

Requests come from ../shared/tools/otlp_load.py when that folder exists (the team's shared load
generator, ~1 KB LLM spans, 512 per request); otherwise from synthetic spans of similar size.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
SHARED_TOOLS = ROOT.parent / "shared" / "tools"

from otlp_spans import new_trace_id, request, span  # noqa: E402
from server_process import start_server  # noqa: E402

from tracelake.collector.decode import decode_protobuf  # noqa: E402


def build_requests(spans: int, per_request: int, seed: int) -> list[bytes]:
    if (SHARED_TOOLS / "otlp_load.py").exists():
        sys.path.insert(0, str(SHARED_TOOLS))
        import otlp_load

        return otlp_load.build_requests(spans, per_request, seed, "llm", base_time_ns=time.time_ns() - 3600 * 10**9)
    from otlp_spans import GENAI_CHAT

    words = " ".join(f"word{i % 397}" for i in range(220))
    out = []
    for _ in range(spans // per_request):
        trace = new_trace_id()
        attrs = {**GENAI_CHAT, "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": words}]}])}
        out.append(request([span("chat gpt-4o", trace, attrs=attrs) for _ in range(per_request)]).SerializeToString())
    return out


def decode_baseline(bodies: list[bytes]) -> float:
    started = time.perf_counter()
    spans = sum(decode_protobuf(b).accepted for b in bodies)
    return spans / (time.perf_counter() - started)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Watcher(threading.Thread):
    """Peak RSS of the server's process tree and peak spool bytes, sampled every 0.2 s."""

    def __init__(self, pid: int, metrics_url: str) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.metrics_url = metrics_url
        self.peak_rss = 0
        self.peak_spool = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.wait(0.2):
                try:
                    rss = self.process.memory_info().rss + sum(c.memory_info().rss for c in self.process.children(True))
                    self.peak_rss = max(self.peak_rss, rss)
                    figures = metric_values(client.get(self.metrics_url).text, {"tracelake_spool_bytes"})
                    self.peak_spool = max(self.peak_spool, figures.get("tracelake_spool_bytes", 0.0))
                except (psutil.Error, httpx.HTTPError):
                    pass


class VisibilityProbe:
    """One-span requests sent every 0.25 s while the load runs; a checker polls every 0.1 s for the
    ones not visible yet. Measures ack -> queryable for each."""

    def __init__(self, otlp_url: str, ui_url: str) -> None:
        self.otlp_url, self.ui_url = otlp_url, ui_url
        self.delays: list[float] = []
        self.pending: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._send, daemon=True), threading.Thread(target=self._check, daemon=True)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self, timeout: float) -> None:
        for t in self.threads:
            t.join(timeout)

    def _send(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self.stop.wait(0.25):
                trace = new_trace_id()
                body = request([span("visibility probe", trace)], service="bench-probe").SerializeToString()
                r = client.post(f"{self.otlp_url}/v1/traces", content=body,
                                headers={"Content-Type": "application/x-protobuf"})
                if r.status_code == 200:
                    with self.lock:
                        self.pending[trace.hex()] = time.perf_counter()

    def _check(self) -> None:
        deadline = None
        with httpx.Client(timeout=60) as client:
            while True:
                if self.stop.is_set():
                    deadline = deadline or time.perf_counter() + 60
                    with self.lock:
                        if not self.pending or time.perf_counter() > deadline:
                            return
                with self.lock:
                    ids = list(self.pending)
                if ids:
                    rows = client.post(f"{self.ui_url}/api/sql", data={
                        "q": "SELECT DISTINCT TraceId FROM otel_traces WHERE TraceId IN {ids:Array(String)}",
                        "param_ids": "[" + ",".join(f"'{i}'" for i in ids) + "]"}).json()["rows"]
                    now = time.perf_counter()
                    with self.lock:
                        for (trace,) in rows:
                            acked = self.pending.pop(trace, None)
                            if acked is not None:
                                self.delays.append(now - acked)
                time.sleep(0.1)


def send(url: str, bodies: list[bytes], clients: int, interval: float = 0.0) -> list[float]:
    """Each client keeps one request in flight; 503 is retried after Retry-After. Returns ack latencies.

    ``interval`` > 0: request i is not sent before i x interval seconds after the start (an offered
    load below saturation, as a fleet exporting steadily); 0: every client sends back to back."""
    parts = urllib.parse.urlsplit(url)
    latencies: list[float] = []
    lock = threading.Lock()
    items = iter(enumerate(bodies))
    t0 = time.perf_counter()

    def client() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
        while True:
            with lock:
                index, body = next(items, (0, None))
            if body is None:
                break
            wait = t0 + index * interval - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            started = time.perf_counter()
            while True:
                conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
                r = conn.getresponse()
                r.read()
                if r.status == 200:
                    break
                if r.status != 503:
                    raise RuntimeError(f"HTTP {r.status}")
                time.sleep(float(r.getheader("Retry-After") or 1))
            with lock:
                latencies.append(time.perf_counter() - started)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def metric_values(exposition: str, names: set[str]) -> dict[str, float]:
    return {sample.name: sample.value for family in text_string_to_metric_families(exposition)
            for sample in family.samples if sample.name in names}


def run(mode: str, bodies: list[bytes], spans: int, clients: int, rate: float | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="tracelake-bench-") as tmp, \
            start_server(Path(tmp) / "data", ack_mode=mode) as server:
        server.sql("SELECT 1")  # warm
        watcher = Watcher(server.proc.pid, f"{server.otlp_http_url}/metrics")
        probe = VisibilityProbe(server.otlp_http_url, server.ui_url)
        watcher.start()
        probe.start()
        started = time.perf_counter()
        interval = spans / len(bodies) / rate if rate else 0.0  # seconds between requests, all clients
        latencies = send(server.otlp_http_url, bodies, clients, interval)
        acked = time.perf_counter() - started
        probe.stop.set()
        visible = server.wait_for_count("SELECT count() FROM otel_traces WHERE ServiceName != 'bench-probe'",
                                        spans, timeout=600)
        e2e = time.perf_counter() - started
        probe.join(120)
        watcher.stop.set()
        watcher.join(5)
        assert visible == spans, f"only {visible} of {spans} spans visible"
        writer = metric_values(httpx.get(f"{server.ui_url}/metrics").text,
                               {"tracelake_batch_spans_count", "tracelake_insert_seconds_sum"})
        inserts = writer.get("tracelake_batch_spans_count", 0)
        return {"e2e": spans / e2e, "acked": spans / acked, "p50": pct(latencies, 0.5) * 1e3,
                "p99": pct(latencies, 0.99) * 1e3, "vis_p50": pct(probe.delays, 0.5),
                "vis_p99": pct(probe.delays, 0.99), "probes": len(probe.delays), "rss_mb": watcher.peak_rss / 2**20,
                "spool_mb": watcher.peak_spool / 2**20, "inserts": inserts,
                "per_insert": spans / max(inserts, 1), "insert_busy": writer.get("tracelake_insert_seconds_sum", 0) / e2e}


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--per-request", type=int, default=512)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--modes", nargs="+", default=["spool", "commit"], choices=["spool", "commit"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=float, help="spans/s for all clients together (below saturation); "
                        "default: as fast as each client's one request in flight allows")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    bodies = build_requests(args.spans, args.per_request, args.seed)
    spans = sum(decode_protobuf(b).accepted for b in bodies)
    size = sum(map(len, bodies)) / spans
    print(f"{spans:,} spans, {size:,.0f} B/span of OTLP protobuf, {len(bodies)} requests of {args.per_request}, "
          f"{os.cpu_count()} cores; load average before: {load_average()}")
    print(f"baseline (decode + validate only, one thread): {decode_baseline(bodies):,.0f} spans/s")
    if args.rate:
        print(f"offered load: {args.rate:,.0f} spans/s in all (requests paced, not back to back)")
    results: dict[tuple[str, int], dict[str, float]] = {}
    header = (f"{'mode':>6} {'clients':>7} {'e2e spans/s':>11} {'acked/s':>9} {'ack p50':>8} {'ack p99':>8} "
              f"{'visible p50/p99 s':>17} {'RSS MB':>7} {'spool MB':>8} {'INSERTs':>7} {'spans/INSERT':>12} {'load avg':>15}")
    print(header)
    for clients in args.clients:
        for mode in args.modes:
            r = results[(mode, clients)] = run(mode, bodies, spans, clients, args.rate)
            print(f"{mode:>6} {clients:7d} {r['e2e']:11,.0f} {r['acked']:9,.0f} {r['p50']:6,.0f}ms {r['p99']:6,.0f}ms "
                  f"{r['vis_p50']:8.2f}/{r['vis_p99']:<8.2f} {r['rss_mb']:7,.0f} {r['spool_mb']:8.1f} "
                  f"{r['inserts']:7.0f} {r['per_insert']:12,.0f} {load_average():>15}", flush=True)
    if set(args.modes) == {"spool", "commit"}:
        print("\nspool / commit, same run:")
        for clients in args.clients:
            s, c = results[("spool", clients)], results[("commit", clients)]
            print(f"  {clients:3d} clients: end to end x{s['e2e'] / c['e2e']:.2f}, ack p50 x{s['p50'] / c['p50']:.2f}, "
                  f"ack p99 x{s['p99'] / c['p99']:.2f}")
    print(f"load average after: {load_average()}")
    if args.json:
        Path(args.json).write_text(json.dumps({f"{m}/{c}": r for (m, c), r in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
