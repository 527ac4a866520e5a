"""Shared by the alert tests: traces at chosen instants, a webhook receiver in the test process,
and an engine on a store with an explicit clock (no test sleeps)."""
from __future__ import annotations

import http.server
import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from otlp_spans import new_span_id, new_trace_id, request, span

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)  # the tests' "now" starts here (in the past: nothing else is there)


def ns(t: datetime) -> int:
    return int(t.timestamp() * 10**9)


def traces(start: datetime, n: int, *, errors: int = 0, every: timedelta = timedelta(seconds=1),
           service: str = "checkout", attrs: dict[str, Any] | None = None, duration_ms: int = 20,
           project: str = "") -> list[bytes]:
    """``n`` one-span traces from ``start``, ``every`` apart; the first ``errors`` of them failed."""
    out = []
    for i in range(n):
        a = dict(attrs or {})
        if project:
            a["tracelake.project"] = project
        s = span("handle", new_trace_id(), new_span_id(), start_ns=ns(start + i * every),
                 duration_ns=duration_ms * 10**6, attrs=a, status=2 if i < errors else 0)
        out.append(request([s], service=service).SerializeToString())
    return out


def insert(store, requests: list[bytes]) -> None:
    from tracelake.store.otlp import length_delimited, udf_statements

    for stmt in udf_statements():
        store.execute(stmt)
    store.insert_otlp("otel_traces", length_delimited(requests))


class Receiver:
    """An HTTP receiver on 127.0.0.1 keeping every JSON body it gets; ``up=False`` closes its port
    (connections are refused) until :meth:`start` again on the same port."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = status
        self.port = 0
        # The URL's own path: a message meant for an earlier receiver whose port the OS gave this
        # one is refused (410), never counted here.
        self.token = uuid.uuid4().hex
        self._server: http.server.ThreadingHTTPServer | None = None
        self.start()

    def start(self) -> None:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not self.path.endswith(owner.token):
                    self.send_response(410)
                    self.end_headers()
                    return
                owner.bodies.append(orjson.loads(body))
                self.send_response(owner.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook/{self.token}"

    def kinds(self) -> list[str]:
        return [b.get("kind") for b in self.bodies]


def engine(store, rules_yaml: str, **config: Any):
    from tracelake.alerts.config import AlertsConfig
    from tracelake.alerts.engine import Engine
    from tracelake.alerts.rulefile import parse_rules
    from tracelake.ui.queries.dashboard import trace_rows

    return Engine(store, AlertsConfig(**{"public_url": "http://tracelake.test", **config}), trace_rows,
                  parse_rules(rules_yaml, "test.yaml"))
