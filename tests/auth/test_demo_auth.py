"""``tracelake demo`` on a server with keys: an ingest key sends the sample into its project and the
command waits on the collector's queue (the key may not read); without a key, or with a key that
may not ingest, it stops at once with one line saying what to do, before sending anything.

A module server of its own rather than the session ``stack``: the sample's hundreds of traces would
change what the other access tests count.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from auth_stack import ADMIN_KEY, Client, create_key, start_auth_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # A spool segment is loaded once it is 6 s old (default 0.5 s), counted from its creation at the
    # start: the first test's sample arrives within that and waits in the spool for a few seconds,
    # so a command that returned at its last ack, without waiting for the queue, would be caught.
    srv = start_auth_server(tmp_path_factory.mktemp("demo-auth") / "data", env={"TRACELAKE_SPOOL_SEGMENT_MS": "6000"})
    try:
        yield srv
    finally:
        srv.terminate()


def demo(server, key: str | None, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TRACELAKE_KEY", "OTEL_EXPORTER_OTLP_ENDPOINT")}
    env.update({"TRACELAKE_URL": server.ui_url, "OTEL_EXPORTER_OTLP_ENDPOINT": server.otlp_http_url})
    if key is not None:
        env["TRACELAKE_KEY"] = key
    return subprocess.run([sys.executable, "-m", "tracelake.cli", "demo", "--traces", "30", "--big-spans", "40",
                           "--days", "3", *args], capture_output=True, text=True, env=env, timeout=300)


def span_count(server) -> int:
    return Client(server, ADMIN_KEY).sql("SELECT count() FROM otel_traces").json()["rows"][0][0]


def test_an_ingest_key_sends_the_sample_into_its_project(server):
    """First in the file (see the fixture)."""
    done = demo(server, create_key(server, "shop", "ingest"))
    admin = Client(server, ADMIN_KEY)
    rows = admin.sql("SELECT Project, uniqExact(TraceId) FROM otel_traces GROUP BY Project").json()["rows"]
    assert done.returncode == 0, done.stderr
    assert rows == [["shop", 30]]  # all of it, the moment the command returned
    assert "loaded after" in done.stdout and "this key may not read" in done.stdout  # it waited on the queue
    error_traces = admin.get("/api/traces", params={"range": "7d", "q": "project:shop status:error"}).json()["traces"]
    sessions = admin.get("/api/sessions", params={"range": "7d"}).json()["sessions"]
    assert sessions and all(s["user_id"] for s in sessions)
    assert error_traces  # the sample's showcase session has a failed tool call


def test_without_a_key_one_line_says_to_set_it_and_nothing_is_sent(server):
    before = span_count(server)
    done = demo(server, None)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "error: this server requires a key: set TRACELAKE_KEY (or --key) to an ingest key (an admin makes one "
        "with `tracelake keys create --project demo --role ingest`)"]
    assert span_count(server) == before


def test_a_key_that_may_not_ingest_is_named_as_the_problem(server):
    key = create_key(server, "demo", "viewer")
    before = span_count(server)
    done = demo(server, key)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("error: this key may not send spans (") and "use an ingest key" in done.stderr
    assert span_count(server) == before
