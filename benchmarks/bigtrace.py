#!/usr/bin/env python3
"""Big traces in the browser (issue 20): how a trace page opens at 1k .. 1M spans.

Starts a ``tracelake server`` on a temporary embedded store, sends traces of each size over
OTLP/HTTP in two shapes — an agent loop (a planner root, steps of an LLM call and four tool calls)
and a deep chain (each span the parent of the next) — and then, for each trace:

* the page's HTML: the first open (cold: the server reads the skeleton and builds the tree), then
  time and bytes as served again;
* the JSON API: ``/api/traces/{id}?limit=1`` (totals + the first span), its time and bytes;
* Chromium (Playwright, Debian's /usr/bin/chromium): navigation to first contentful paint, to
  the header totals and first rows in the DOM, bytes transferred, JS heap after load; then
  interactions timed in the page: open the folded run (agent loop), scroll to load the next window,
  collapse a row; for the chain, open the page at the deepest span.

Every figure is also printed as a ratio to the 1k-span agent loop of the same run (the baseline:
"1k spans no slower than today" is judged against main's figures in docs/ui.md).

    python benchmarks/bigtrace.py                         # 1k, 10k, 100k
    python benchmarks/bigtrace.py --sizes 1000 100000 1000000
    python benchmarks/bigtrace.py --archive               # also a copy of each, archived (3 days old)

With ``--archive`` the server runs with a rule "hot 1 day, archived forever", each trace is sent
twice (now and three days ago), one archiver pass moves the old copies to the Delta table, and the
archived copy of each shape and size is measured beside its hot twin (target: archive <= 2x hot).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "ui"))

import httpx  # noqa: E402
import psutil  # noqa: E402

import ui_traces  # noqa: E402
from server_process import start_server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def send(server, requests: list[bytes]) -> None:
    with httpx.Client(timeout=300) as client:
        for body in requests:
            r = client.post(f"{server.otlp_http_url}/v1/traces", content=body,
                            headers={"Content-Type": "application/x-protobuf"})
            r.raise_for_status()


def wait_spans(server, trace_id: str, n: int, timeout: float = 600) -> None:
    """Wait for the spans by SQL, not through the trace API: the first open below is then cold
    (no tree of this trace built yet), as it is for the person who opens it first."""
    deadline = time.monotonic() + timeout
    while True:
        got = int(server.sql("SELECT uniqExact(SpanId) FROM otel_traces WHERE TraceId = {t:String}", t=trace_id)[0][0])
        if got == n:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"trace {trace_id}: {got} of {n} spans after {timeout} s")
        time.sleep(0.5)


def timed_get(url: str, **params) -> tuple[float, int]:
    t0 = time.perf_counter()
    r = httpx.get(url, params=params, timeout=600)
    r.raise_for_status()
    return time.perf_counter() - t0, len(r.content)


def in_page_ms(page, selector: str, act: str, until: str, timeout_s: float = 120) -> float:
    """Milliseconds, by the page's own clock, from ``act`` ("click" or "scroll") on ``selector``
    until the JS expression ``until`` holds, checked after every DOM change (a MutationObserver):
    no polling from outside, so the figure is what the person waits for."""
    # ``until`` is our own constant expression, put in the function's text (the page's CSP forbids eval).
    page.evaluate("""([sel, act]) => {
        const done = () => (%s);
        window.__tl_ms = null;
        const t0 = performance.now();
        const obs = new MutationObserver(() => { if (done()) { obs.disconnect(); window.__tl_ms = performance.now() - t0; } });
        obs.observe(document.body, {subtree: true, childList: true, attributes: true});
        const el = document.querySelector(sel);
        if (act === 'scroll') el.scrollIntoView(); else el.dispatchEvent(new MouseEvent('click', {bubbles: true}));
    }""" % until, [selector, act])
    deadline = time.monotonic() + timeout_s
    while (ms := page.evaluate("window.__tl_ms")) is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {until}")
        page.wait_for_timeout(20)
    return ms


def browse(browser, url: str, shape: str, deep: str | None) -> dict:
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = ctx.new_page()
    cdp = ctx.new_cdp_session(page)
    cdp.send("Network.enable")
    received = {"bytes": 0}
    cdp.on("Network.loadingFinished", lambda e: received.__setitem__("bytes", received["bytes"] + e["encodedDataLength"]))
    target = f"{url}?span={deep}" if deep else url
    t0 = time.perf_counter()
    page.goto(target, wait_until="domcontentloaded", timeout=600_000)
    dom_ms = (time.perf_counter() - t0) * 1000
    page.wait_for_load_state("load", timeout=600_000)
    paint = page.evaluate("(performance.getEntriesByName('first-contentful-paint')[0] || "
                          "performance.getEntriesByName('first-paint')[0] || {}).startTime || null")
    out = {"dom_ms": dom_ms, "fcp_ms": paint, "rows": page.locator("#span-rows .srow").count()}
    cdp.send("HeapProfiler.collectGarbage")
    out["heap_mb"] = cdp.send("Runtime.getHeapUsage")["usedSize"] / 1e6
    # Interactions are timed once the page's own follow-up requests (shape, timeline, retention
    # panel) are done, as when a person reads the page before clicking.
    page.wait_for_load_state("networkidle", timeout=600_000)
    if shape == "agent" and page.locator("#span-rows .srow.grp").count():
        n = page.locator("#span-rows .srow").count()
        out["open_fold_ms"] = in_page_ms(page, "#span-rows .srow.grp .tog", "click",
                                         f"document.querySelectorAll('#span-rows .srow').length > {n}")
    if page.locator("#span-rows .more").count():
        n = page.locator("#span-rows .srow").count()
        out["next_window_ms"] = in_page_ms(page, "#span-rows .more", "scroll",
                                           f"document.querySelectorAll('#span-rows .srow').length > {n}")
    row = page.locator("#span-rows .srow[data-kids]:not([data-kids='0']):not(.grp)").nth(1)
    if row.count():
        rid = row.get_attribute("data-id")
        out["collapse_ms"] = in_page_ms(page, f"#span-rows .srow[data-id='{rid}'] .tog", "click",
                                        f"document.querySelector('#span-rows .srow[data-id=\"{rid}\"]')"
                                        f".classList.contains('collapsed')")
    out["transfer_mb"] = received["bytes"] / 1e6
    cdp.send("HeapProfiler.collectGarbage")
    out["heap_after_mb"] = cdp.send("Runtime.getHeapUsage")["usedSize"] / 1e6
    ctx.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--archive", action="store_true", help="measure an archived copy of each trace too")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    root = args.data_dir or Path(tempfile.mkdtemp(prefix="tl-bigtrace-"))
    flags = {}
    if args.archive:
        rules = root / "rules.yaml"
        rules.write_text("rules:\n  - name: default\n    hot: 1d\n    archive: forever\n")
        flags["retention"] = rules
    server = start_server(root / "data", **flags)
    results: list[dict] = []
    try:
        ages = [("hot", 3600)] + ([("archive", 3 * 86400)] if args.archive else [])
        traces = []
        for tier, age_s in ages:
            start = time.time_ns() - age_s * ui_traces.S
            for size in args.sizes:
                steps = max(1, (size - 1) // 6)
                seed = size + (7 if tier == "archive" else 0)  # twins of the same shape, other trace ids
                loop, loop_id = ui_traces.agent_loop_requests(steps, start, seed=seed)
                chain, chain_id, deepest = ui_traces.chain_requests(min(size, 10_000), start, seed=seed + 1)
                t0 = time.perf_counter()
                send(server, loop + chain)
                wait_spans(server, loop_id, 1 + 6 * steps)
                wait_spans(server, chain_id, min(size, 10_000))
                print(f"{tier}: sent {1 + 6 * steps:,}-span loop and {min(size, 10_000):,}-deep chain in "
                      f"{time.perf_counter() - t0:.1f} s", flush=True)
                traces.append((tier, "agent", 1 + 6 * steps, loop_id, None))
                traces.append((tier, "chain", min(size, 10_000), chain_id, deepest))
        if args.archive:
            t0 = time.perf_counter()
            with httpx.stream("POST", f"{server.ui_url}/api/archiver/run", timeout=3600) as r:
                r.raise_for_status()
                last = [line for line in r.iter_lines() if line.strip()][-1]
            print(f"archiver run in {time.perf_counter() - t0:.1f} s: {last[:200]}", flush=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            warm = browser.new_context()
            warm.new_page().goto(f"{server.ui_url}/traces?range=7d")  # start the browser's processes once
            warm.close()
            for tier, shape, n, tid, deep in traces:
                cold_s, _ = timed_get(f"{server.ui_url}/traces/{tid}")  # the first open builds the tree
                html_s, html_bytes = timed_get(f"{server.ui_url}/traces/{tid}")
                api_s, api_bytes = timed_get(f"{server.ui_url}/api/traces/{tid}", limit=1)
                row = {"tier": tier, "shape": shape, "spans": n, "cold_html_ms": cold_s * 1000, "html_ms": html_s * 1000,
                       "html_kb": html_bytes / 1e3, "api_ms": api_s * 1000, "api_kb": api_bytes / 1e3,
                       **browse(browser, f"{server.ui_url}/traces/{tid}", shape, deep)}
                row["server_rss_mb"] = psutil.Process(server.proc.pid).memory_info().rss / 1e6
                results.append(row)
                print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
            browser.close()
    finally:
        server.stop()
    _table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def _table(rows: list[dict]) -> None:
    base = next((r for r in rows if r["shape"] == "agent" and r["tier"] == "hot"), rows[0])
    cols = [("cold_html_ms", "first open ms"), ("api_ms", "API ms"), ("html_ms", "HTML ms"), ("html_kb", "HTML KB"),
            ("fcp_ms", "first paint ms"), ("dom_ms", "DOM ready ms"), ("transfer_mb", "transfer MB"),
            ("heap_mb", "JS heap MB"), ("open_fold_ms", "open fold ms"), ("next_window_ms", "next window ms"),
            ("collapse_ms", "collapse ms"), ("server_rss_mb", "server RSS MB")]
    print("\n| tier | shape | spans | " + " | ".join(c[1] for c in cols) + " |")
    print("|---|---|---:|" + "---:|" * len(cols))
    for r in rows:
        # Archived rows: the ratio to their hot twin; hot rows: to the smallest agent loop.
        twin = next((h for h in rows if h["tier"] == "hot" and h["shape"] == r["shape"] and h["spans"] == r["spans"]),
                    None) if r["tier"] == "archive" else base
        cells = []
        for key, _ in cols:
            v, b = r.get(key), (twin or {}).get(key)
            if v is None:
                cells.append("–")
            elif b and r is not base and key != "server_rss_mb":
                cells.append(f"{v:,.1f} (x{v / b:.2f})")
            else:
                cells.append(f"{v:,.1f}")
        print(f"| {r['tier']} | {r['shape']} | {r['spans']:,} | " + " | ".join(cells) + " |")
    print(f"\nratios (x): hot rows against the {base['spans']:,}-span hot agent loop of this run, "
          "archived rows against their hot twin")


if __name__ == "__main__":
    main()
