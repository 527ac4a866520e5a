"""Patching openai's resource methods, and one traced call's life from request to response."""
from __future__ import annotations

import functools
import importlib
import time
import weakref
from types import ModuleType
from typing import Any, Callable, Mapping, Optional

from openai import AsyncStream, Stream
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from .. import _provider_spans
from .._content import capturing
from .._scope import tidy
from .._spans import record_error, report, suppressed, tracer
from . import _chat, _embeddings, _responses
from ._streams import Recorder, traced

try:  # with_raw_response results (LangChain's ChatOpenAI goes through them), with_streaming_response ones
    from openai._legacy_response import LegacyAPIResponse
    from openai._response import BaseAPIResponse
except ImportError:  # pragma: no cover - very old clients
    LegacyAPIResponse = BaseAPIResponse = ()  # type: ignore[assignment,misc]

# (module, class, method, operation); a target missing from the installed version is skipped.
_TARGETS = [
    (module, cls, method, op)
    for module, classes, methods, op in (
        ("openai.resources.chat", ("Completions", "AsyncCompletions"), ("create", "parse"), _chat),
        ("openai.resources.responses", ("Responses", "AsyncResponses"), ("create", "parse"), _responses),
        ("openai.resources.embeddings", ("Embeddings", "AsyncEmbeddings"), ("create",), _embeddings),
    )
    for cls in classes
    for method in methods
]


def patch_all() -> None:
    for module_name, class_name, method_name, op in _TARGETS:
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            continue
        original = cls.__dict__.get(method_name)
        if original is None or getattr(original, "_tracelake", False):
            continue
        wrapper = _async_wrapper(original, op) if class_name.startswith("Async") else _sync_wrapper(original, op)
        wrapper._tracelake = True  # type: ignore[attr-defined]
        setattr(cls, method_name, wrapper)


def _sync_wrapper(original: Callable[..., Any], op: ModuleType) -> Callable[..., Any]:
    @functools.wraps(original)
    def traced_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = Call.begin(op, self, kwargs)
        if call is None:
            return original(self, *args, **kwargs)
        token = otel_context.attach(trace.set_span_in_context(call.span))
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            otel_context.detach(token)
        return call.complete(result)

    return traced_call


def _async_wrapper(original: Callable[..., Any], op: ModuleType) -> Callable[..., Any]:
    @functools.wraps(original)
    async def traced_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = Call.begin(op, self, kwargs)
        if call is None:
            return await original(self, *args, **kwargs)
        token = otel_context.attach(trace.set_span_in_context(call.span))
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            otel_context.detach(token)
        return call.complete(result)

    return traced_call


def _server(resource: Any) -> dict[str, Any]:
    """Provider and server attributes, worked out once per client and base URL."""
    client = getattr(resource, "_client", None)
    url = getattr(client, "base_url", None)
    if url is None:
        return {}
    cached = client.__dict__.get("_tracelake_server")
    if cached is not None and cached[0] is url:
        return cached[1]
    port = url.port or (443 if url.scheme == "https" else 80)
    provider = "azure.ai.openai" if type(client).__name__.startswith("Azure") else "openai"
    attributes = {"gen_ai.provider.name": provider, "server.address": url.host, "server.port": port}
    client.__dict__["_tracelake_server"] = (url, attributes)
    return attributes


class Call:
    """One traced request: its span, and how its result ends that span."""

    __slots__ = ("span", "op", "kwargs", "started")

    def __init__(self, span: Span, op: ModuleType, kwargs: Mapping[str, Any], started: float) -> None:
        self.span, self.op, self.kwargs, self.started = span, op, kwargs, started

    @classmethod
    def begin(cls, op: ModuleType, resource: Any, kwargs: Mapping[str, Any]) -> Optional[Call]:
        if suppressed():
            return None
        try:
            tidy()
            parent = trace.get_current_span().get_span_context().span_id
            attributes = {"gen_ai.operation.name": op.NAME, "gen_ai.provider.name": "openai"}
            attributes.update(_server(resource))
            attributes.update(op.request_attributes(kwargs))
            model = kwargs.get("model")
            name = f"{op.NAME} {model}" if isinstance(model, str) else op.NAME
            span = tracer("openai").start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
            _provider_spans.provider_call_under(parent)
        except Exception:
            report("openai request")
            return None
        if capturing():
            try:
                op.record_request(span, kwargs)
            except Exception:
                report("openai request content")
        return cls(span, op, kwargs, time.perf_counter())

    def complete(self, result: Any) -> Any:
        """Record the result and end the span, or hand the span on to a stream. Never raises."""
        try:
            if isinstance(result, (Stream, AsyncStream)):
                return traced(result, self._recorder())
            if isinstance(result, LegacyAPIResponse):
                if self.kwargs.get("stream") is True:
                    self._trace_parsed_stream(result)
                    return result
                self.op.record_response(self.span, result.parse(), self.kwargs)
            elif not isinstance(result, BaseAPIResponse):
                # (with_streaming_response leaves the body unread: nothing more to record then.)
                self.op.record_response(self.span, result, self.kwargs)
        except Exception:
            report("openai response")
        self.span.end()
        return result

    def fail(self, exc: BaseException) -> None:
        try:
            record_error(self.span, exc)
            status = getattr(exc, "status_code", None)
            if isinstance(status, int):
                self.span.set_attribute("http.response.status_code", status)
        except Exception:
            report("openai error")
        self.span.end()

    def _recorder(self) -> Recorder:
        return Recorder(self.span, self.op.Stream(self.kwargs), self.started)

    def _trace_parsed_stream(self, raw: Any) -> None:
        """A raw streamed response: trace the stream its parse() returns, whenever that is called."""
        recorder = self._recorder()
        recorder.watch(raw)  # never parsed: ends when the raw response is dropped
        original = type(raw).parse
        owner = weakref.ref(raw)  # a strong one would make a cycle and delay the 'abandoned' end
        proxies: dict[int, Any] = {}

        def parse(*args: Any, **kwargs: Any) -> Any:
            parsed = original(owner(), *args, **kwargs)
            if not isinstance(parsed, (Stream, AsyncStream)):
                return parsed
            if id(parsed) not in proxies:  # parse() caches, so hand out the same proxy each time
                proxies[id(parsed)] = traced(parsed, recorder)
            return proxies[id(parsed)]

        raw.parse = parse
