#!/usr/bin/env python3
"""Attachment benchmark: ingest where 10% of spans carry a 200 KB image, against the same run
without images. Prints spans/s and bytes stored in ClickHouse per span for each, as ratios.

Each mode runs in its own subprocess (chdb allows one data path per process) on a fresh data
directory, through the collector's real path: decode, body hook (extraction), group-commit
batcher, INSERT decoded by ClickHouse, ack. No HTTP: eight threads call the collector directly,
so the figures are the pipeline's, not the transport's. Modes:

    plain    the load as generated (realistic LLM-agent spans, ~1 KB each)
    images   10% of spans get a distinct random 200 KB PNG-like image as an OTel GenAI blob part;
             extraction on (the default)
    same     as images, but every image is the same one: dedup means one blob stored
    inline   as images, extraction off: what ClickHouse would hold without this feature

    python benchmarks/attachments.py                     # 20k spans, all modes
    python benchmarks/attachments.py --spans 5000 --modes plain,images

Seed spans come from /work/shared/tools/otlp_load.py when present, else a small generator here.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED_TOOLS = REPO.parent / "shared" / "tools"
MODES = ("plain", "images", "same", "inline")


# -- load -------------------------------------------------------------------------------------

def _seed_requests(total: int, per_request: int, seed: int) -> list[bytes]:
    base = 1_767_225_600 * 10**9  # fixed, so every mode stores identical spans
    if (SHARED_TOOLS / "otlp_load.py").exists():
        sys.path.insert(0, str(SHARED_TOOLS))
        import otlp_load  # type: ignore[import-not-found]

        return otlp_load.build_requests(total, per_request, seed, "llm", base_time_ns=base)
    return _fallback_requests(total, per_request, seed, base)


def _fallback_requests(total: int, per_request: int, seed: int, base: int) -> list[bytes]:
    """Chat spans with ~1.5 KB of GenAI messages, when the shared load generator is absent."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    rng = random.Random(seed)
    words = "the of agent order refund model token policy customer shipping invoice status".split()
    out = []
    for start in range(0, total, per_request):
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        kv = rs.resource.attributes.add()
        kv.key, kv.value.string_value = "service.name", "bench-agent"
        ss = rs.scope_spans.add()
        for i in range(start, min(total, start + per_request)):
            span = ss.spans.add(trace_id=rng.randbytes(16), span_id=rng.randbytes(8), name="chat gpt-4o",
                                start_time_unix_nano=base + i * 10**6, end_time_unix_nano=base + i * 10**6 + 5 * 10**8)
            text = " ".join(rng.choices(words, k=250))
            for key, value in (("gen_ai.operation.name", "chat"), ("gen_ai.request.model", "gpt-4o"),
                               ("gen_ai.input.messages", json.dumps([{"role": "user", "parts": [{"type": "text", "content": text}]}]))):
                a = span.attributes.add()
                a.key, a.value.string_value = key, value
        out.append(req.SerializeToString())
    return out


def _png_like(size: int, rng: random.Random) -> bytes:
    """A PNG signature and header, then random bytes: as incompressible as a real photo."""
    head = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">IIBBBBB", 256, 256, 8, 2, 0, 0, 0)
    head += struct.pack(">I", zlib.crc32(head[12:29]))
    return head + rng.randbytes(size - len(head))


def _add_images(bodies: list[bytes], share: float, image_bytes: int, same: bool, seed: int) -> tuple[list[bytes], int]:
    """Give every (1/share)-th span an image as an OTel GenAI blob part in gen_ai.input.messages."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    rng = random.Random(seed)
    every = round(1 / share)
    shared = _png_like(image_bytes, rng)
    n = added = 0
    out = []
    for body in bodies:
        req = ExportTraceServiceRequest.FromString(body)
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    n += 1
                    if n % every:
                        continue
                    image = shared if same else _png_like(image_bytes, rng)
                    part = {"role": "user", "parts": [{"type": "text", "content": "What does this screenshot show?"},
                                                      {"type": "blob", "modality": "image", "mime_type": "image/png",
                                                       "content": base64.b64encode(image).decode()}]}
                    for kv in span.attributes:
                        if kv.key == "gen_ai.input.messages":
                            messages = json.loads(kv.value.string_value)
                            kv.value.string_value = json.dumps(messages + [part], separators=(",", ":"))
                            break
                    else:
                        kv = span.attributes.add()
                        kv.key, kv.value.string_value = "gen_ai.input.messages", json.dumps([part], separators=(",", ":"))
                    added += 1
        out.append(req.SerializeToString())
    return out, added


# -- one run (child process) ------------------------------------------------------------------

def _count_spans(body: bytes) -> int:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest.FromString(body)
    return sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)


def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    from tracelake.collector.config import from_settings
    from tracelake.collector.errors import Backpressure
    from tracelake.collector.decode import decode_protobuf
    from tracelake.collector.media import build_body_hook
    from tracelake.collector.service import Collector
    from tracelake.config import Settings
    from tracelake.store import open_store

    bodies = _seed_requests(args.spans, args.per_request, args.seed)
    images = 0
    if mode != "plain":
        bodies, images = _add_images(bodies, args.share, args.image_kb * 1024, mode == "same", args.seed)
    spans = sum(_count_spans(b) for b in bodies)
    request_bytes = sum(map(len, bodies))

    data_dir = Path(args.data_dir)
    settings = Settings(data_dir=data_dir, extract_attachments=(mode != "inline"), max_request_bytes=64 << 20,
                        max_request_media_bytes=64 << 20)
    store = open_store(data_dir)
    hook = build_body_hook(settings, store)
    hook_seconds = [0.0]
    lock = threading.Lock()

    def timed_hook(body: bytes) -> bytes:
        t = time.thread_time()  # CPU time of this thread: waiting for the GIL does not count
        try:
            return hook(body)
        finally:
            with lock:
                hook_seconds[0] += time.thread_time() - t

    collector = Collector(store, from_settings(settings), body_hook=timed_hook if hook else None)
    collector.start()
    queue = list(reversed(bodies))

    def client() -> None:
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            while True:
                try:
                    accepted = collector.accept(decode_protobuf(body), "bench")
                    break
                except Backpressure:
                    time.sleep(0.01)
            if accepted.future is not None:
                accepted.future.result(timeout=300)

    # Warm-up outside the clock: the first INSERT of a process compiles the protobuf schema.
    warm = collector.accept(decode_protobuf(_seed_requests(64, 64, args.seed + 1)[0]), "bench")
    warm.future.result(timeout=300)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    collector.stop()
    if hook is not None:
        hook.close()

    store.execute("OPTIMIZE TABLE otel_traces FINAL")  # same part layout for every mode
    parts = store.query_arrow(
        "SELECT sum(rows) AS rows, sum(data_compressed_bytes) AS compressed, sum(data_uncompressed_bytes) AS raw "
        "FROM system.parts WHERE database = currentDatabase() AND table = 'otel_traces' AND active").to_pylist()[0]
    indexed = store.query_arrow("SELECT count() AS n FROM (SELECT Sha256 FROM attachments GROUP BY Sha256)").to_pylist()[0]["n"]
    object_bytes = object_count = 0
    if hook is not None:
        for info in hook.object_store.list("blobs/"):
            object_bytes += info.size
            object_count += 1
    store.close()
    return {"mode": mode, "spans": spans, "images": images, "request_mb": round(request_bytes / 1e6, 1),
            "seconds": round(elapsed, 2), "spans_per_s": round(spans / elapsed),
            "hook_cpu_us_per_span": round(hook_seconds[0] / spans * 1e6, 2),
            "rows": int(parts["rows"] or 0),
            "ch_bytes_per_span": round((parts["compressed"] or 0) / max(1, int(parts["rows"] or 0)), 1),
            "ch_raw_bytes_per_span": round((parts["raw"] or 0) / max(1, int(parts["rows"] or 0)), 1),
            "objects": object_count, "object_mb": round(object_bytes / 1e6, 1), "indexed_blobs": int(indexed)}


# -- driver -----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spans", type=int, default=20_000)
    p.add_argument("--per-request", type=int, default=256)
    p.add_argument("--share", type=float, default=0.10, help="share of spans carrying an image")
    p.add_argument("--image-kb", type=int, default=200)
    p.add_argument("--clients", type=int, default=8, help="concurrent exporters")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        print(json.dumps(run_mode(args.child, args)), flush=True)
        return 0

    results = []
    root = Path(tempfile.mkdtemp(prefix="tl-bench-att-"))
    try:
        for mode in args.modes.split(","):
            cmd = [sys.executable, __file__, "--child", mode, "--data-dir", str(root / mode), "--spans", str(args.spans),
                   "--per-request", str(args.per_request), "--share", str(args.share), "--image-kb", str(args.image_kb),
                   "--clients", str(args.clients), "--seed", str(args.seed)]
            print(f"running {mode} ...", file=sys.stderr, flush=True)
            done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            if done.returncode != 0:
                print(done.stderr[-4000:], file=sys.stderr)
                return 1
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            shutil.rmtree(root / mode, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    base = next((r for r in results if r["mode"] == "plain"), results[0])
    cols = ("mode", "spans", "images", "request_mb", "spans_per_s", "hook_cpu_us_per_span", "ch_bytes_per_span",
            "ch_raw_bytes_per_span", "objects", "object_mb", "indexed_blobs")
    widths = [max(len(c), *(len(str(r[c])) for r in results)) for c in cols]
    for row in [dict(zip(cols, cols)), *results]:
        print("  ".join(f"{row[c]!s:<{w}}" if i == 0 else f"{row[c]!s:>{w}}" for i, (c, w) in enumerate(zip(cols, widths))))
    print(f"\nratios against {base['mode']} (spans/s, ClickHouse bytes per span):")
    for r in results:
        print(f"  {r['mode']:<8} throughput x{r['spans_per_s'] / base['spans_per_s']:.2f}   "
              f"ClickHouse bytes/span x{r['ch_bytes_per_span'] / base['ch_bytes_per_span']:.2f}")
    print(json.dumps({"results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
