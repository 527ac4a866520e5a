"""Without auth (loopback): everything open as before, spans keep their claimed project, and
/api/sql still runs one statement only and never writes a file (a web page can POST to localhost)."""
from __future__ import annotations

import os

import httpx
import pytest

from auth_stack import emit
from server_process import start_server


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("open") / "data")
    try:
        assert "auth        off" in "".join(server.output)
        assert emit(server, "http", None, [{"name": "open-span", "attrs": {"tracelake.project": "mine"}}]) == ["SUCCESS"]
        yield server
    finally:
        server.terminate()


def test_open_as_before(open_server):
    assert open_server.sql("SELECT Project FROM otel_traces WHERE SpanName = 'open-span'") == [["mine"]]
    assert httpx.get(open_server.ui_url + "/api/traces", timeout=30).status_code == 200
    assert open_server.sql("SELECT count() > 0 FROM system.tables") == [[True]]


@pytest.mark.parametrize("sql", ["SELECT 1; SELECT 2", "SELECT 1 INTO OUTFILE '/tmp/tracelake-open-outfile.txt'",
                                 "DROP TABLE otel_traces", "SET readonly = 0"])
def test_sql_stays_one_read_only_statement(open_server, sql):
    response = httpx.post(open_server.ui_url + "/api/sql", data={"q": sql}, timeout=30)
    assert response.status_code == 400, response.text
    assert not os.path.exists("/tmp/tracelake-open-outfile.txt")
