"""One authenticated ``tracelake server`` for the access tests, seeded through real exporters with
traces of two projects, A and B, each with a session and an attachment."""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import pytest

from att_media import png
from auth_stack import ADMIN_KEY, Client, create_key, emit, start_auth_server
from server_process import wait_until


@dataclass
class Stack:
    server: object
    admin: Client
    keys: dict[str, str]  # "A:viewer" -> key
    traces: dict[str, str]  # project -> a trace id
    attachments: dict[str, str]  # project -> sha256
    images: dict[str, bytes]  # project -> the image its trace carries

    def client(self, name: str) -> Client:
        return Client(self.server, self.keys[name])


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    server = start_auth_server(tmp_path_factory.mktemp("auth") / "data")
    try:
        keys = {f"{p}:{r}": create_key(server, p, r) for p in ("A", "B") for r in ("ingest", "viewer", "engineer", "ops")}
        admin = Client(server, ADMIN_KEY)
        shas, images = {}, {}
        for i, project in enumerate(("A", "B")):
            image = images[project] = png(40, 30, 100 + i)
            shas[project] = hashlib.sha256(image).hexdigest()
            spans = [{"name": f"root-{project}", "attrs": {"session.id": f"sess-{project}", "user.id": f"user-{project}",
                                                           "gen_ai.request.model": f"model-{project}",
                                                           "input.value": f"secret prompt of {project}",
                                                           "image": "data:image/png;base64," + base64.b64encode(image).decode()}}]
            assert emit(server, "http", keys[f"{project}:ingest"], spans) == ["SUCCESS"]
        rows = admin.sql("SELECT count() FROM otel_traces").json()["rows"]
        assert rows[0][0] == 2
        # A blob is readable by the projects its index rows name (written about once a second).
        wait_until(lambda: admin.sql("SELECT count() FROM attachments").json()["rows"] == [[2]], "attachments indexed")
        traces = {r[0]: r[1] for r in admin.sql("SELECT Project, TraceId FROM otel_traces").json()["rows"]}
        assert set(traces) == {"A", "B"}
        yield Stack(server, admin, keys, traces, shas, images)
    finally:
        server.terminate()
