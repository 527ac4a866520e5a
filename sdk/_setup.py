"""autotrace(): set up (or join) OpenTelemetry, then instrument what is installed."""
from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.util.re import parse_env_headers

from . import _config, _pending, _threads
from ._config import Redactor
from ._context import TaggingProcessor
from ._export import SizeSplittingExporter

log = logging.getLogger("tracelake.sdk")

DEFAULT_ENDPOINT = "http://localhost:4318"
TRACES_PATH = "/v1/traces"


@dataclass
class _Installed:
    provider: Any
    owned: bool  # we created the provider, so we shut it down
    processors: list[SpanProcessor] = field(default_factory=list)
    exporter: Optional[SizeSplittingExporter] = None
    integrations: set[str] = field(default_factory=set)


_lock = threading.Lock()
_installed: Optional[_Installed] = None


def autotrace(
    *,
    endpoint: Optional[str] = None,
    headers: Optional[Mapping[str, str]] = None,
    api_key: Optional[str] = None,
    project: Optional[str] = None,
    service_name: Optional[str] = None,
    capture_content: Optional[bool] = None,
    redact: Optional[Redactor] = None,
    max_content_bytes: Optional[int] = None,
    openai: bool = True,
    langchain: bool = True,
) -> None:
    """Trace OpenAI and LangChain calls as OpenTelemetry spans sent to tracelake.

    Sets up a TracerProvider exporting over OTLP/HTTP unless the app already has one, in which
    case it adds its exporter and leaves the rest alone. Safe to call more than once: later calls
    only change the content settings they are given. Never raises.
    """
    global _installed
    try:
        with _lock:
            _config.update(capture_content=capture_content, redact=redact, max_content_bytes=max_content_bytes)
            if _installed is None:
                _installed = _install(endpoint, headers, api_key, project, service_name)
                _threads.instrument()
            elif endpoint or headers or api_key or project or service_name:
                log.info("tracelake: autotrace() already set up; export settings of later calls are ignored")
            _instrument(_installed, openai=openai, langchain=langchain)
    except Exception:
        log.warning("tracelake: autotrace() failed; the app runs on without tracing", exc_info=True)


def flush(timeout_millis: int = 30000) -> bool:
    """Export the spans ended so far; returns False if that did not finish in time."""
    installed = _installed
    if installed is None:
        return True
    try:
        if installed.owned:
            return bool(installed.provider.force_flush(timeout_millis))
        return all(p.force_flush(timeout_millis) for p in installed.processors)
    except Exception:
        log.warning("tracelake: flush failed", exc_info=True)
        return False


def shutdown(timeout_seconds: float = 3.0) -> None:
    """End spans still waiting on abandoned streams, export everything and stop exporting.

    Runs at exit too. If the collector cannot be reached within timeout_seconds, the spans
    still queued are dropped rather than holding up the app's exit.
    """
    global _installed
    with _lock:
        installed, _installed = _installed, None
    try:
        _pending.end_all()
        if installed is None:
            return
        stop = installed.provider.shutdown if installed.owned else _shutdown_processors(installed.processors)
        worker = threading.Thread(target=stop, name="tracelake-shutdown", daemon=True)
        worker.start()
        worker.join(timeout_seconds)
        if worker.is_alive() and installed.exporter is not None:
            log.warning("tracelake: collector unreachable at shutdown; dropping spans not yet exported")
            installed.exporter.abort()
            worker.join(1.0)
    except Exception:
        log.warning("tracelake: shutdown failed", exc_info=True)


def _shutdown_processors(processors: list[SpanProcessor]) -> Any:
    def stop() -> None:
        for processor in processors:
            processor.shutdown()

    return stop


def _install(
    endpoint: Optional[str],
    headers: Optional[Mapping[str, str]],
    api_key: Optional[str],
    project: Optional[str],
    service_name: Optional[str],
) -> _Installed:
    atexit.register(shutdown)
    project = project or os.environ.get("TRACELAKE_PROJECT") or None
    current = trace.get_tracer_provider()
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return _Installed(current, owned=False)
    exporter = SizeSplittingExporter(_exporter(endpoint, headers, api_key, project))
    processors: list[SpanProcessor] = [TaggingProcessor(), BatchSpanProcessor(exporter)]
    if isinstance(current, trace.ProxyTracerProvider):
        attributes = {"service.name": service_name or os.environ.get("OTEL_SERVICE_NAME") or _script_name()}
        if project:
            attributes["tracelake.project"] = project
        provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
        for processor in processors:
            provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        return _Installed(provider, owned=True, processors=processors, exporter=exporter)
    if hasattr(current, "add_span_processor"):
        for processor in processors:
            current.add_span_processor(processor)
        return _Installed(current, owned=False, processors=processors, exporter=exporter)
    log.warning("tracelake: the app's TracerProvider takes no span processors; spans go where it sends them")
    return _Installed(current, owned=False)


def _exporter(
    endpoint: Optional[str], headers: Optional[Mapping[str, str]], api_key: Optional[str], project: Optional[str]
) -> Any:
    # Imported here: the exporter pulls in requests and protobuf, which only exporting needs.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    merged: dict[str, str] = {}
    for variable in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"):
        merged.update(parse_env_headers(os.environ.get(variable, ""), liberal=True))
    merged.update(headers or {})
    api_key = api_key or os.environ.get("TRACELAKE_API_KEY")
    if api_key:
        merged["authorization"] = f"Bearer {api_key}"
    if project:
        merged["x-tracelake-project"] = project
    return OTLPSpanExporter(endpoint=traces_url(endpoint), headers=merged)


def traces_url(endpoint: Optional[str]) -> str:
    """Where spans go: argument, TRACELAKE_ENDPOINT, the OTEL_* variables, then localhost:4318."""
    base = endpoint or os.environ.get("TRACELAKE_ENDPOINT")
    if not base:
        full = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        if full:
            return full
        base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_ENDPOINT
    base = base.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


def _script_name() -> str:
    argv0 = sys.argv[0] if sys.argv else ""
    if not argv0 or argv0 == "-c":
        return "python"
    path = Path(argv0)
    return path.parent.name if path.stem == "__main__" else path.stem


def _instrument(installed: _Installed, *, openai: bool, langchain: bool) -> None:
    from . import _langchain, _openai

    for name, wanted, module in (("openai", openai, _openai), ("langchain", langchain, _langchain)):
        if wanted and name not in installed.integrations:
            try:
                if module.instrument():
                    installed.integrations.add(name)
            except Exception:
                log.warning("tracelake: could not instrument %s; it runs untraced", name, exc_info=True)
