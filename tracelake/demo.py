"""``tracelake demo``: send a sample of LLM-agent traces (tracelake/demo_sample.py) to a running
server over OTLP/HTTP, wait until it can be read, and say where to look.

Like the other commands it talks to the server and never opens the store. One key serves both
sides (``--key``, else ``TRACELAKE_KEY``): it goes on the OTLP requests (so with auth on it must be
allowed to ingest: an ``ingest`` key puts the sample in its project, an ``admin`` key in ``default``)
and on the reads that confirm the sample is visible (an ingest key may not read: then the collector's
queue draining to 0 on its ``/metrics`` is the sign).

Every run sends new trace and session ids (``--seed`` fixes only the content), so running it twice
gives two samples side by side, never half-merged traces.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

import httpx

from tracelake.demo_sample import Sample, Span, build_sample
from tracelake.server_client import ServerError

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
DEFAULT_UI = "http://127.0.0.1:4380"
RUN_ATTR = "tracelake.demo.run"  # resource attribute naming the run (filter: resource.tracelake.demo.run:*)
SPANS_PER_REQUEST = 1000
RETENTION_EXAMPLE = "examples/retention-demo.yaml"
NO_KEY = ("this server requires a key: set TRACELAKE_KEY (or --key) to an ingest key "
          "(an admin makes one with `tracelake keys create --project demo --role ingest`)")


def traces_url(endpoint: str) -> str:
    """OTEL_EXPORTER_OTLP_ENDPOINT is a base URL (``/v1/traces`` is appended); a URL that already
    ends in ``/v1/traces`` is taken as it is."""
    endpoint = endpoint.strip().rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else f"{endpoint}/v1/traces"


# --- OTLP encoding -----------------------------------------------------------------------------
def _value(v: Any) -> Any:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    out = AnyValue()
    if isinstance(v, bool):
        out.bool_value = v
    elif isinstance(v, int):
        out.int_value = v
    elif isinstance(v, float):
        out.double_value = v
    elif isinstance(v, (list, tuple)):
        out.array_value.values.extend(_value(x) for x in v)
    else:
        out.string_value = str(v)
    return out


def _attrs(target: Any, mapping: dict[str, Any]) -> None:
    for key, value in mapping.items():
        target.add(key=key, value=_value(value))


def encode(sample: Sample, per_request: int = SPANS_PER_REQUEST) -> Iterator[tuple[bytes, int]]:
    """(protobuf ExportTraceServiceRequest, spans in it), about ``per_request`` spans each; spans of one
    service share a ResourceSpans. A trace may span requests, as with any batching exporter."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    for lo in range(0, len(sample.spans), per_request):
        chunk = sample.spans[lo:lo + per_request]
        req = ExportTraceServiceRequest()
        by_service: dict[str, list[Span]] = {}
        for s in chunk:
            by_service.setdefault(s.service, []).append(s)
        for service, spans in by_service.items():
            rs = req.resource_spans.add()
            _attrs(rs.resource.attributes, {"service.name": service, "service.version": "1.4.2",
                                            "deployment.environment.name": "demo", "telemetry.sdk.language": "python",
                                            RUN_ATTR: sample.run})
            ss = rs.scope_spans.add()
            ss.scope.name, ss.scope.version = "tracelake.demo", "1"
            for s in spans:
                out = ss.spans.add()
                out.trace_id, out.span_id, out.parent_span_id = s.trace_id, s.span_id, s.parent
                out.name, out.kind = s.name, s.kind
                out.start_time_unix_nano, out.end_time_unix_nano = s.start, s.end
                _attrs(out.attributes, s.attrs)
                out.status.code = s.status
                out.status.message = s.message
                for name, at, attrs in s.events:
                    event = out.events.add()
                    event.name, event.time_unix_nano = name, at
                    _attrs(event.attributes, attrs)
        yield req.SerializeToString(), len(chunk)


# --- talking to the server ---------------------------------------------------------------------
def _otlp_error(response: httpx.Response, key: str) -> ServerError:
    """A collector's refusal as one line (its body is a google.rpc.Status, protobuf or JSON)."""
    message = ""
    try:
        if "json" in response.headers.get("content-type", ""):
            message = str(response.json().get("message", ""))
        else:
            from google.rpc import status_pb2

            message = status_pb2.Status.FromString(response.content).message
    except Exception:  # noqa: BLE001 - a proxy's HTML page, say: fall back to its text
        message = " ".join(response.text.split())[:200]
    if response.status_code == 401:
        return ServerError(NO_KEY if not key else f"the collector refused the key ({message}): check it is complete "
                           "and not revoked")
    if response.status_code == 403:
        return ServerError(f"this key may not send spans ({message}): use an ingest key (or an admin key)")
    return ServerError(f"the collector answered {response.status_code}: {message or response.reason_phrase}")


def _post(http: httpx.Client, url: str, body: bytes, key: str) -> None:
    """One export; 503 and 429 are retried as exporters do (the spool may be momentarily full)."""
    for attempt in range(30):
        try:
            response = http.post(url, content=body, headers={"Content-Type": "application/x-protobuf"})
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot reach the collector at {url}: {exc} (is `tracelake server` running, and "
                              "does --endpoint / OTEL_EXPORTER_OTLP_ENDPOINT name its OTLP/HTTP port?)", 2) from exc
        if response.status_code == 200:
            return
        if response.status_code not in (429, 503) or attempt == 29:
            raise _otlp_error(response, key)
        time.sleep(min(5.0, float(response.headers.get("retry-after", "1") or 1)))


def _queue_spans(http: httpx.Client, url: str) -> float | None:
    """``tracelake_queue_spans`` on the collector's /metrics (spans acked, not yet loaded), or None
    when there is no such page (another collector in between)."""
    try:
        response = http.get(url.removesuffix("/v1/traces") + "/metrics")
    except httpx.HTTPError:
        return None
    found = re.search(r"^tracelake_queue_spans(?:\{[^}]*\})? (\S+)$", response.text, re.M) if response.status_code == 200 else None
    return float(found.group(1)) if found else None


def _visible(http: httpx.Client, ui: str, sample: Sample) -> tuple[int, int] | str:
    """(traces, spans) of this run readable through /api/sql, else why it cannot be read back: the
    key may not read (an ingest key), or no tracelake UI answers at ``ui``."""
    # Bounded by service (the table's first key column) and time, so a big store is not scanned.
    query = ("SELECT uniqExact(TraceId), count() FROM otel_traces WHERE ServiceName IN {services:Array(String)} "
             f"AND Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) AND ResourceAttributes['{RUN_ATTR}'] = {{run:String}}")
    params = {"q": query, "param_services": "[" + ",".join(f"'{s}'" for s in sample.services) + "]",
              "param_lo": str(sample.start_ns), "param_run": sample.run}
    try:
        response = http.post(f"{ui.rstrip('/')}/api/sql", data=params)
    except httpx.HTTPError:
        return f"no tracelake UI answers at {ui} (--url / TRACELAKE_URL)"
    if response.status_code in (401, 403):
        return "this key may not read: open the links signed in with a viewer key of its project"
    try:
        rows = response.json()["rows"] if response.status_code == 200 else None
        return int(rows[0][0]), int(rows[0][1])
    except (ValueError, KeyError, IndexError, TypeError):
        return f"no tracelake UI answers at {ui} (--url / TRACELAKE_URL)"


@dataclass
class Result:
    sample: Sample
    seconds: float  # from the start of the command to the sample being readable
    read_back: bool  # counted through /api/sql; else only the collector's queue said it was loaded
    note: str = ""  # why it was not read back


def wait_visible(http: httpx.Client, url: str, ui: str, sample: Sample, timeout: float,
                 tick: Callable[[], None] = lambda: None) -> tuple[bool, str]:
    """Wait until the sample can be read: (read back?, why not). An ack means durable in the
    collector's spool, not yet in ClickHouse: count the run's spans when the key may read, else wait
    until the collector's queue (its /metrics) is back to 0."""
    deadline = time.monotonic() + timeout
    first = _visible(http, ui, sample)
    note = first if isinstance(first, str) else ""
    while time.monotonic() < deadline:
        tick()
        if not note:
            seen = _visible(http, ui, sample)
            if isinstance(seen, tuple) and seen[0] >= sample.traces and seen[1] >= len(sample.spans):
                return True, ""
        else:
            queued = _queue_spans(http, url)
            if queued is None:
                raise ServerError(f"the sample was sent, but whether it is loaded is unknown: {note}, and the "
                                  f"endpoint has no tracelake collector /metrics")
            if queued == 0:
                return False, note
        time.sleep(0.2)
    raise ServerError(f"the sample was accepted but not all of it was readable after {timeout:.0f} s "
                      "(is the server loading its spool? see its log)")


def run_demo(*, days: int, traces: int, seed: int, endpoint: str, ui: str, key: str, timeout: float,
             big_spans: int = 3000, progress: bool = True) -> Result:
    url = traces_url(endpoint)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    started = time.monotonic()
    with httpx.Client(timeout=60, headers=headers) as http:
        # An empty export first: the endpoint, the protocol and the key are checked before any work.
        _post(http, url, b"", key)
        sample = build_sample(seed=seed, days=days, traces=traces, big_spans=big_spans, run=os.urandom(3).hex(),
                              now_ns=time.time_ns())
        with _progress(progress, len(sample.spans)) as advance:
            for body, n in encode(sample):
                _post(http, url, body, key)
                advance(n, "sending")
            read_back, note = wait_visible(http, url, ui, sample, timeout, lambda: advance(0, "waiting until readable"))
        return Result(sample, time.monotonic() - started, read_back, note)


class _progress:
    """A rich progress bar on stderr (nothing when not wanted or not a terminal)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total = enabled, total
        self.bar: Any = None

    def __enter__(self) -> Callable[[int, str], None]:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            console = Console(stderr=True)
            if console.is_terminal:
                self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TextColumn("spans"), TimeElapsedColumn(), console=console, transient=True)
                self.bar.__enter__()
                self.task = self.bar.add_task("sending", total=self.total)

        def advance(n: int, what: str) -> None:
            if self.bar is not None:
                self.bar.update(self.task, advance=n, description=what)

        return advance

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


# --- the summary -------------------------------------------------------------------------------
def _range(days: int) -> str:
    """The UI's smallest preset range holding the sample (its list defaults to 24h)."""
    return "7d" if days <= 7 else "30d"


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def retention_example() -> str:
    """The example rules' path as a user should type it: relative when run from the checkout."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / RETENTION_EXAMPLE
    if not path.exists():
        return RETENTION_EXAMPLE
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def summary(result: Result, ui: str, days: int) -> str:
    s, base = result.sample, ui.rstrip("/")
    r = _range(days)
    after = (f"readable after {result.seconds:.1f} s" if result.read_back
             else f"loaded after {result.seconds:.1f} s ({result.note})")
    rules = retention_example()
    # The archiver commands find the server at TRACELAKE_URL or the default port, as this one did.
    at = "" if base in (DEFAULT_UI, os.environ.get("TRACELAKE_URL", "").rstrip("/")) else f" --url {base}"
    lines = [
        f"tracelake demo: {s.traces:,} traces, {len(s.spans):,} spans, {len(s.sessions)} sessions, "
        f"{s.error_traces} with errors; {after}",
        f"  from {_when(s.start_ns)} to {_when(s.end_ns)} ({days} days); run {s.run}: every run adds new "
        f"traces (filter resource.{RUN_ATTR}:{s.run})",
        f"  traces     {base}/traces?range={r}",
        f"  a session  {base}/sessions/{s.showcase_session}",
        f"  big trace  {base}/traces/{s.big_trace}  ({s.big_spans:,} spans)",
        f"  an image   {base}/traces/{s.image_trace}?span={s.image_span}",
        f"  errors     {base}/traces?range={r}&q=status:error",
        f"  dashboard  {base}/dashboard?range={r}",
        f"try retention: tracelake archiver plan{at} --retention {rules}   (then `tracelake archiver run{at} --retention "
        f"{rules}`, or on a schedule: tracelake server --retention {rules})",
    ]
    return "\n".join(lines)
