"""Latency and memory cost of autotrace() on an OpenAI chat call.

The same call goes to a local OpenAI-compatible server (tests/fake_openai.py, answering after
1 ms) with and without tracing. Rounds alternate between the two so that machine noise hits
both alike; spans are exported over OTLP to a sink in another process, as in production.

    python benchmarks/sdk_overhead.py                 # latency: ratio and added µs per call
    python benchmarks/sdk_overhead.py --calls 20000   # more calls, steadier figures
    python benchmarks/sdk_overhead.py --memory --calls 100000   # RSS over 100k traced calls

Target: at most 5% added latency against a 1 ms server, and flat memory over 100k calls.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France? Answer in one word."},
]


class _Sink(BaseHTTPRequestHandler):
    """Accepts OTLP exports and throws them away."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def run_sink() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


@contextmanager
def background(*args: str) -> Iterator[str]:
    """Start a helper process that prints its URL on the first line; stop it afterwards."""
    process = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait()


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timed(call: Callable[[], Any], n: int, after: Callable[[], Any] = lambda: None) -> tuple[float, float]:
    """Wall and CPU seconds per call over n calls, including whatever after() does.

    CPU time is the whole process's (the export thread included); it is the steadier figure on
    a busy machine, where wall time also measures other people's work.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        call()
    after()
    return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n


def latency(call: Callable[[], Any], toggle: Callable[[bool], None], flush: Callable[[], Any], calls: int, rounds: int) -> None:
    per_round = max(1, calls // rounds)
    for traced in (False, True):  # warm both paths: connections, caches, first spans
        toggle(traced)
        timed(call, min(200, per_round))
    flush()
    plain, traced_times = [], []
    for _ in range(rounds):
        toggle(False)
        plain.append(timed(call, per_round))
        toggle(True)
        # Exporting the round's spans is timed with it: that CPU is part of the cost too,
        # and it must not spill into the next plain round.
        traced_times.append(timed(call, per_round, after=flush))
    print(f"calls per mode   {per_round * rounds} in {rounds} alternating rounds; medians of rounds")
    print(f"{'':17}{'without':>10}{'with':>10}{'ratio':>9}{'added':>12}")
    for index, label in ((0, "wall ms/call"), (1, "CPU ms/call")):
        base = statistics.median(r[index] for r in plain)
        with_sdk = statistics.median(r[index] for r in traced_times)
        added = (with_sdk - base) * 1e6
        print(f"{label:17}{base * 1e3:10.3f}{with_sdk * 1e3:10.3f}{with_sdk / base:9.3f}{added:9.0f} µs")


def memory(call: Callable[[], Any], flush: Callable[[], Any], calls: int) -> None:
    step = max(1, calls // 10)
    samples = []
    for done in range(0, calls, step):
        for _ in range(step):
            call()
        flush()
        samples.append((done + step, rss_mb()))
        print(f"{done + step:>8} traced calls   RSS {samples[-1][1]:7.1f} MB", flush=True)
    settled = samples[1][1] if len(samples) > 1 else samples[0][1]  # after warm-up
    print(f"growth after warm-up: {samples[-1][1] - settled:+.1f} MB over {samples[-1][0] - samples[min(1, len(samples) - 1)][0]} calls")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000, help="calls per mode (default 3000)")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds (default 10)")
    parser.add_argument("--latency-ms", type=float, default=1.0, help="server answer delay (default 1 ms)")
    parser.add_argument("--no-content", action="store_true", help="trace with content capture off")
    parser.add_argument("--memory", action="store_true", help="measure RSS over --calls traced calls instead")
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        return run_sink()

    sys.path.insert(0, str(ROOT))
    import openai
    from openai.resources.chat import Completions

    import tracelake

    fake = str(ROOT / "tests" / "fake_openai.py")
    with background(fake, "--latency", str(args.latency_ms / 1000)) as base_url, background(__file__, "--sink") as sink:
        plain_create = Completions.create
        tracelake.autotrace(endpoint=sink, service_name="sdk-overhead", capture_content=not args.no_content)
        traced_create = Completions.create
        assert traced_create is not plain_create, "autotrace did not instrument openai"

        def toggle(traced: bool) -> None:
            Completions.create = traced_create if traced else plain_create  # type: ignore[method-assign]

        client = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0)

        def call() -> Any:
            return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0.2)

        print(f"server latency {args.latency_ms} ms, content capture {'off' if args.no_content else 'on'}")
        if args.memory:
            memory(call, tracelake.sdk.flush, args.calls)
        else:
            latency(call, toggle, tracelake.sdk.flush, args.calls, args.rounds)
        tracelake.shutdown()


if __name__ == "__main__":
    main()
