"""End-to-end ingest benchmark: realistic LLM-agent spans into ``tracelake server`` (embedded store).

Starts the server, sends spans over OTLP/HTTP and OTLP/gRPC with several concurrent clients
(acks arrive only after commit), waits until every span is queryable, and prints spans/s and
peak RSS beside a baseline measured in the same run: protobuf decode only (upb parse + the
collector's per-span validation), i.e. the cost of touching the requests at all in Python.

    python benchmarks/ingest.py --spans 200000 --concurrency 32 64

Requests come from ../shared/tools/otlp_load.py when that folder exists (the team's shared load
generator); otherwise from tests/otlp_spans.py-style synthetic spans of similar size.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
SHARED_TOOLS = ROOT.parent / "shared" / "tools"

from server_process import start_server  # noqa: E402

from tracelake.collector.decode import decode_protobuf  # noqa: E402


def build_requests(spans: int, per_request: int, seed: int) -> list[bytes]:
    if (SHARED_TOOLS / "otlp_load.py").exists():
        sys.path.insert(0, str(SHARED_TOOLS))
        import otlp_load

        return otlp_load.build_requests(spans, per_request, seed, "llm", base_time_ns=time.time_ns() - 3600 * 10**9)
    from otlp_spans import GENAI_CHAT, new_trace_id, request, span

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


class RssWatcher(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return


def send_http(url: str, bodies: list[bytes], concurrency: int) -> None:
    with httpx.Client(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as client:
        def post(body: bytes) -> None:
            while True:
                r = client.post(f"{url}/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"})
                if r.status_code == 200:
                    return
                if r.status_code != 503:
                    raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
                time.sleep(float(r.headers.get("Retry-After", "1")))

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(post, bodies))


def send_grpc(addr: str, bodies: list[bytes], concurrency: int) -> None:
    channel = grpc.insecure_channel(addr, options=[("grpc.max_send_message_length", 64 << 20)])
    export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")

    def call(body: bytes) -> None:
        while True:
            try:
                export(body, timeout=120)
                return
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                time.sleep(1)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(call, bodies))
    channel.close()


def run(protocol: str, bodies: list[bytes], spans: int, concurrency: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="tracelake-bench-") as tmp, start_server(Path(tmp) / "data") as server:
        watcher = RssWatcher(server.proc.pid)
        watcher.start()
        started = time.perf_counter()
        if protocol == "http":
            send_http(server.otlp_http_url, bodies, concurrency)
        else:
            send_grpc(server.otlp_grpc_addr, bodies, concurrency)
        acked = time.perf_counter() - started
        visible = server.wait_for_count("SELECT count() FROM otel_traces", spans, timeout=300)
        e2e = time.perf_counter() - started
        watcher.stop.set()
        assert visible == spans, f"only {visible} of {spans} spans visible"
        writer = writer_figures(httpx.get(f"{server.ui_url}/metrics").text)
        return {"acked_spans_per_s": spans / acked, "e2e_spans_per_s": spans / e2e, "peak_rss_mb": watcher.peak / 2**20,
                "inserts": writer["inserts"], "spans_per_insert": writer["spans"] / max(writer["inserts"], 1),
                "ms_per_insert": 1e3 * writer["seconds"] / max(writer["inserts"], 1), "writer_busy": writer["seconds"] / e2e}


def writer_figures(exposition: str) -> dict[str, float]:
    """Totals of the writer's histograms from the collector's /metrics: what bounds the run."""
    wanted = {"tracelake_batch_spans_count": "inserts", "tracelake_batch_spans_sum": "spans",
              "tracelake_insert_seconds_sum": "seconds"}
    return {wanted[sample.name]: sample.value for family in text_string_to_metric_families(exposition)
            for sample in family.samples if sample.name in wanted}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--per-request", type=int, default=512)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 64],
                        help="concurrent clients; with acks after commit, spans in flight bound the batch size")
    parser.add_argument("--protocols", nargs="+", default=["http", "grpc"], choices=["http", "grpc"])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    bodies = build_requests(args.spans, args.per_request, args.seed)
    spans = sum(decode_protobuf(b).accepted for b in bodies)
    size = sum(map(len, bodies)) / spans
    baseline = decode_baseline(bodies)
    print(f"{spans:,} spans, {size:,.0f} B/span of OTLP protobuf, {len(bodies)} requests, {args.concurrency} clients, "
          f"{os.cpu_count()} cores")
    print(f"baseline (decode + validate only, one thread): {baseline:,.0f} spans/s")
    for protocol, clients in ((p, c) for c in args.concurrency for p in args.protocols):
        result = run(protocol, bodies, spans, clients)
        print(f"{protocol:>4}, {clients:3d} clients: end to end {result['e2e_spans_per_s']:,.0f} spans/s "
              f"({result['e2e_spans_per_s'] / baseline:.2f}x baseline), acked {result['acked_spans_per_s']:,.0f} spans/s, "
              f"peak RSS {result['peak_rss_mb']:,.0f} MB")
        print(f"      writer: {result['inserts']:.0f} INSERTs of {result['spans_per_insert']:,.0f} spans, "
              f"{result['ms_per_insert']:,.0f} ms each, busy {result['writer_busy']:.0%} of the run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
