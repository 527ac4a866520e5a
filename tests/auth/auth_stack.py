"""Helpers for the access tests: an authenticated server, keys made with the CLI, spans sent by
real OTel exporters configured only through the standard OTEL_* environment variables."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Any

import httpx

from server_process import ServerProcess, start_server

ADMIN_KEY = "tl-admin-" + "k3y" * 10  # an externally chosen admin key (TRACELAKE_ADMIN_KEY)
CREATED: list[str] = []  # every key made in this test session (the log test looks for each)


def cli(server: ServerProcess, *args: str, key: str = ADMIN_KEY) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRACELAKE_URL": server.ui_url, "TRACELAKE_KEY": key}
    return subprocess.run([sys.executable, "-m", "tracelake.cli", *args], capture_output=True, text=True,
                          env=env, timeout=60)


def create_key(server: ServerProcess, project: str, role: str, key: str = ADMIN_KEY) -> str:
    done = cli(server, "keys", "create", "--project", project, "--role", role, key=key)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().splitlines()[-1]
    CREATED.append(key)
    return key


_EMIT = textwrap.dedent("""
    import sys, json
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    protocol, spec = sys.argv[1], json.loads(sys.argv[2])
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    results = []
    class Recording(SimpleSpanProcessor):
        def on_end(self, span):
            results.append(self.span_exporter.export((span,)).name)
    provider = TracerProvider(resource=Resource.create(spec.get("resource", {})))
    provider.add_span_processor(Recording(OTLPSpanExporter()))
    tracer = provider.get_tracer("auth-tests")
    for s in spec["spans"]:
        with tracer.start_as_current_span(s["name"], attributes=s.get("attrs", {})):
            pass
    print(json.dumps(results))
""")


def emit(server: ServerProcess, protocol: str, key: str | None, spans: list[dict[str, Any]],
         resource: dict[str, str] | None = None) -> list[str]:
    """Send spans with the OTel SDK + OTLP exporter; returns each export's result name."""
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if protocol == "grpc":
        env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"http://{server.otlp_grpc_addr}"
        env["OTEL_EXPORTER_OTLP_TRACES_INSECURE"] = "true"
    else:
        env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"{server.otlp_http_url}/v1/traces"
    if key is not None:
        env["OTEL_EXPORTER_OTLP_HEADERS"] = f"authorization=Bearer {key}"
    env["OTEL_EXPORTER_OTLP_TIMEOUT"] = "60000"  # milliseconds in current exporters (the spec unit)
    done = subprocess.run([sys.executable, "-c", _EMIT, protocol, json.dumps({"spans": spans, "resource": resource or {}})],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    if key is not None and "FAILURE" in results:  # say why (the exporter logs it on stderr)
        print("exporter stderr:", done.stderr[-4000:], "server:", "".join(server.output[-20:]))
    if "SUCCESS" in results:  # acked means spooled: wait until it is loaded, so readers see it
        server.wait_loaded(key)
    return results


@dataclass
class Client:
    server: ServerProcess
    key: str
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.server.ui_url, headers={"Authorization": f"Bearer {self.key}"},
                                 timeout=60, follow_redirects=False)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.post(path, **kw)

    def sql(self, query: str) -> httpx.Response:
        return self.http.post("/api/sql", data={"q": query})


def start_auth_server(data_dir: Any, env: dict[str, str] | None = None, **flags: Any) -> ServerProcess:
    return start_server(data_dir, "--auth", env={"TRACELAKE_ADMIN_KEY": ADMIN_KEY, **(env or {})}, **flags)


# Archive-tier tests: spans older than a day are archived, kept for 90 days.
RETENTION = """\
rules:
  - name: default
    hot: 1d
    archive: 90d
"""
DAY_NS = 86400 * 10**9


def post_spans(server: ServerProcess, key: str, spans: list[dict[str, Any]]) -> None:
    """One OTLP/HTTP protobuf request with the ingest key; it must be accepted."""
    from otlp_spans import request

    r = httpx.post(f"{server.otlp_http_url}/v1/traces", content=request(spans).SerializeToString(),
                   headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {key}"}, timeout=60)
    assert r.status_code == 200, r.text
