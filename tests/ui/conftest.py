"""Fixtures for the UI tests: one embedded store seeded with the known traces, and an app on it.

chdb allows one data directory per process at a time, so the store lives for one module and is
closed after it (other test folders may open their own); browser tests run the server as a subprocess.
"""
from __future__ import annotations

import time

import pytest

import ui_traces  # noqa: E402
from ui_browser import ARGS, ARTIFACTS, CHROMIUM


@pytest.fixture(scope="module")
def known_store(tmp_path_factory):
    from tracelake.store import open_store

    store = open_store(data_dir=tmp_path_factory.mktemp("ui-store"))
    known = ui_traces.known_traces(time.time_ns())
    ui_traces.insert(store, known.requests)
    yield store, known
    store.close()


@pytest.fixture(scope="module")
def client(known_store):
    from fastapi.testclient import TestClient

    from tracelake.config import Settings
    from tracelake.web import create_app

    store, _ = known_store
    app = create_app(store, Settings())
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def known(known_store):
    return known_store[1]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    pg = ctx.new_page()
    pg.dialogs = []  # type: ignore[attr-defined]
    pg.csp_errors = []  # type: ignore[attr-defined]
    pg.js_errors = []  # type: ignore[attr-defined]
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.on("console", lambda m: "Content Security Policy" in m.text and pg.csp_errors.append(m.text))
    pg.on("pageerror", lambda e: pg.js_errors.append(str(e)))
    yield pg
    ctx.close()
