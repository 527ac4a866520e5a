"""Shared by the Chromium tests: Debian's chromium through Playwright, a page that records
dialogs, CSP violations and script errors, and the checks that nothing from span data ran.

The ``browser`` and ``page`` fixtures are in this folder's conftest.py.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

TESTS = Path(__file__).resolve().parents[1]
ARTIFACTS = TESTS / "artifacts" / "ui"
CHROMIUM = os.environ.get("TRACELAKE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists() or shutil.which("chromium") is None and CHROMIUM == "/usr/bin/chromium",
                                    reason="needs Debian's chromium package (apt-get install chromium)")


def post_otlp(otlp_http_url: str, body: bytes) -> None:
    r = httpx.post(f"{otlp_http_url}/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}, timeout=180)
    assert r.status_code == 200, r.text


def send_recent_and_old(srv: Any, seeds: tuple[int, int]) -> tuple[Any, Any]:
    """The known traces twice, through the collector: now and three days ago (old enough to be
    archived); returns both sets once the 7-day list shows at least the 10 traces."""
    import ui_traces

    now = time.time_ns()
    recent = ui_traces.known_traces(now, seed=seeds[0], extracted=False)
    old = ui_traces.known_traces(now - 3 * 86400 * ui_traces.S, seed=seeds[1], extracted=False)
    for body in recent.requests + old.requests:
        post_otlp(srv.otlp_http_url, body)
    deadline = time.monotonic() + 60
    while len(list_7d(srv.ui_url)) < 10:
        assert time.monotonic() < deadline, "".join(srv.output[-30:])
        time.sleep(0.3)
    return recent, old


def list_7d(ui_url: str) -> list[dict[str, Any]]:
    return httpx.get(f"{ui_url}/api/traces", params={"range": "7d"}, timeout=120).json()["traces"]


def run_archiver(ui_url: str) -> list[dict[str, Any]]:
    """One archiver pass through the API; its progress events, the last one the result."""
    import json

    with httpx.stream("POST", f"{ui_url}/api/archiver/run", timeout=300) as r:
        assert r.status_code == 200, r.read()
        events = [json.loads(line) for line in r.iter_lines() if line.strip()]
    assert events[-1]["event"] == "result", events[-1]
    return events


def wait_js(page, expr: str, timeout: float = 15.0) -> None:
    """Poll ``expr`` with page.evaluate: wait_for_function evals in the page, which our CSP forbids."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expr):
        assert time.monotonic() < deadline, f"timed out waiting for {expr}"
        page.wait_for_timeout(100)


def shot(page, name: str) -> None:
    # caret="initial": Playwright hides the caret with an inline style, which our CSP (rightly) blocks.
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), caret="initial")


def clean(page) -> None:
    """Nothing from span data ran, and our own page broke no CSP rule."""
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.dialogs == []
    assert page.csp_errors == [], page.csp_errors
    assert page.js_errors == [], page.js_errors
