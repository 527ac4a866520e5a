"""`tracelake ui` alone against a ClickHouse server (the chdb-backed ClickHouse-HTTP endpoint of
tests/chhttp.py): the same pages and filters through clickhouse-connect, whose parameter binding
escapes differently from chdb's."""
from __future__ import annotations

import time

import httpx
import pytest

import ui_traces



@pytest.fixture(scope="module")
def ui_on_clickhouse(tmp_path_factory):
    from server_process import start_clickhouse_endpoint, start_server

    from tracelake.store import open_store

    root = tmp_path_factory.mktemp("ui-ch")
    ch = start_clickhouse_endpoint(root / "ch")
    try:
        url = f"{ch.url}/tracelake"
        store = open_store(clickhouse_url=url)
        known = ui_traces.known_traces(time.time_ns(), seed=44)
        ui_traces.insert(store, known.requests)
        store.close()
        ui = start_server(root / "ui-data", command="ui", clickhouse_url=url)
        try:
            yield ui.ui_url, known
        finally:
            ui.stop()
    finally:
        ch.stop()


def test_pages_and_filters_on_a_clickhouse_server(ui_on_clickhouse):
    base, known = ui_on_clickhouse

    def ids(q: str) -> set[str]:
        r = httpx.get(f"{base}/api/traces", params={"q": q, "range": "1h"}, timeout=60)
        assert r.status_code == 200, r.text
        return {t["trace_id"] for t in r.json()["traces"]}

    assert len(ids("")) == 5
    assert ids("status:error") == {known.error}
    assert ids('"refund"') == {known.error}
    assert ids('attr.path:"C:\\\\dir\\\\new\tfile"') == {known.openllmetry}
    assert ids('session:"s\\\\1"') == {known.openllmetry}
    assert ids("model:gpt-4o tokens>1000") == {known.genai}
    page = httpx.get(f"{base}/traces/{known.genai}", params={"span": known.genai_chat}, timeout=60)
    assert page.status_code == 200 and "lookup_order" in page.text
    assert httpx.get(f"{base}/dashboard", params={"range": "1h"}, timeout=60).status_code == 200
    assert httpx.get(f"{base}/sessions/sess-1", timeout=60).status_code == 200
