"""What auth costs on ingest, measured against no auth in the same run.

1. Per request, in Python (the part auth adds to the request path): upb decode + validation
   (the collector's baseline) vs the same plus the key check (warm cache) and project stamping
   (parse + add one attribute per resource + serialize). Printed as a ratio.
2. ``--e2e``: ``tracelake server`` without and with ``--auth`` under the same OTLP/HTTP load
   (acks after commit), spans/s of each and their ratio.

    python benchmarks/auth.py --spans 100000 --e2e
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "auth"))

from ingest import build_requests  # noqa: E402

from tracelake.auth.ingest import stamp  # noqa: E402
from tracelake.collector.decode import decode_protobuf  # noqa: E402


def per_request(bodies: list[bytes], rounds: int = 3) -> dict[str, float]:
    from tracelake.auth.keys import KeyRecord
    from tracelake.auth.roles import Role

    record = KeyRecord("0123456789ab", "bench", "bench-project", Role.INGEST, "0" * 64)
    scope = {"state": {"tracelake.auth.key": record}}
    spans = sum(decode_protobuf(b).accepted for b in bodies)
    best_plain = best_auth = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for b in bodies:
            decode_protobuf(b)
        best_plain = min(best_plain, time.perf_counter() - t)
        t = time.perf_counter()
        for b in bodies:
            stamp(decode_protobuf(b), scope)
        best_auth = min(best_auth, time.perf_counter() - t)
    return {"spans": spans, "requests": len(bodies), "decode_spans_per_s": spans / best_plain,
            "decode_stamp_spans_per_s": spans / best_auth, "stamp_us_per_request": (best_auth - best_plain) / len(bodies) * 1e6,
            "ratio": best_plain / best_auth}


def key_check(n: int = 20000) -> float:
    """µs per warm-cache key check (hash + compare_digest), on a real embedded store."""
    from tracelake.auth.keys import KeyRegistry
    from tracelake.auth.roles import Role
    from tracelake.store import open_store

    store = open_store(tempfile.mkdtemp(prefix="auth-bench-"))
    try:
        registry = KeyRegistry(store, ttl_s=3600)
        _, key = registry.create("p", Role.INGEST, "bench", "bench")
        registry.resolve(key)
        t = time.perf_counter()
        for _ in range(n):
            registry.resolve(key)
        return (time.perf_counter() - t) / n * 1e6
    finally:
        store.close()


def send_http(url: str, bodies: list[bytes], concurrency: int, headers: dict[str, str]) -> None:
    """Like ingest.send_http, with the key header."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    with httpx.Client(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as client:
        def post(body: bytes) -> None:
            while True:
                r = client.post(f"{url}/v1/traces", content=body,
                                headers={"Content-Type": "application/x-protobuf", **headers})
                if r.status_code == 200:
                    return
                if r.status_code != 503:
                    raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
                time.sleep(float(r.headers.get("Retry-After", "1")))

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(post, bodies))


def e2e(bodies: list[bytes], concurrency: int) -> dict[str, float]:
    from auth_stack import ADMIN_KEY, create_key
    from server_process import start_server

    out = {}
    for mode in ("open", "auth"):
        root = Path(tempfile.mkdtemp(prefix=f"auth-e2e-{mode}-"))
        args = ("--auth",) if mode == "auth" else ()
        server = start_server(root / "data", *args, env={"TRACELAKE_ADMIN_KEY": ADMIN_KEY})
        try:
            if mode == "auth":
                os.environ["BENCH_KEY"] = create_key(server, "bench", "ingest")
            headers = {"authorization": f"Bearer {os.environ['BENCH_KEY']}"} if mode == "auth" else {}
            t = time.perf_counter()
            send_http(server.otlp_http_url, bodies, concurrency, headers=headers)
            elapsed = time.perf_counter() - t
            out[mode] = sum(decode_protobuf(b).accepted for b in bodies) / elapsed
        finally:
            server.terminate()
    out["ratio"] = out["auth"] / out["open"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=51200)
    parser.add_argument("--per-request", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--e2e", action="store_true")
    args = parser.parse_args()
    bodies = build_requests(args.spans, args.per_request, 7)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (figures are noisy when it is above the core count)")
    r = per_request(bodies)
    print(f"per request ({r['requests']} x {args.per_request} spans): decode {r['decode_spans_per_s']:,.0f} spans/s, "
          f"decode+stamp {r['decode_stamp_spans_per_s']:,.0f} spans/s, stamp {r['stamp_us_per_request']:,.0f} µs/request, "
          f"ratio {r['ratio']:.2f}")
    print(f"key check (warm cache): {key_check():.2f} µs/request")
    if args.e2e:
        e = e2e(bodies, args.concurrency)
        print(f"end to end OTLP/HTTP x{args.concurrency}: open {e['open']:,.0f} spans/s, auth {e['auth']:,.0f} spans/s, "
              f"ratio {e['ratio']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
