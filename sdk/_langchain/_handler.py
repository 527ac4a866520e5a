"""The LangChain callback handler: one span per run, nested by parent_run_id.

Each run's span is also made current in the OTel context while the run executes, so spans made
inside it (OpenAI calls, @trace functions, other instrumentations) nest under it. Runs without a
parent run nest under whatever span is current when they start: the user's own.
"""
from __future__ import annotations

import time
from typing import Any, Optional, Sequence
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from .. import _parts as parts
from .. import _provider_spans
from .._content import capturing, dumps, record, record_value
from .._scope import Scope, enter, leave, outside, tidy
from .._spans import record_error, report, set_attributes, tracer
from . import _convert

KIND = "openinference.span.kind"
HIDDEN_TAG = "langsmith:hidden"  # LangChain's own mark for plumbing runs
_INTERNAL_TAGS = ("seq:", "graph:", "langsmith:", "map:", "branch:", "condition:")
_INTERNAL_METADATA = ("ls_", "langgraph_", "checkpoint_", "__")


class _Run:
    __slots__ = ("span", "scope", "kind", "inputs", "tools", "started", "first_token")

    def __init__(self, span: Optional[Span], scope: Optional[Scope], kind: str, inputs: Any = None) -> None:
        self.span = span
        self.scope = scope  # None for hidden runs, which stand in for their parent
        self.kind = kind
        self.inputs = inputs
        self.tools: Any = None
        self.started = time.perf_counter()
        self.first_token: Optional[float] = None


def _name(serialized: Optional[dict[str, Any]], kwargs: dict[str, Any], fallback: str) -> str:
    if kwargs.get("name"):
        return str(kwargs["name"])
    if serialized:
        if serialized.get("name"):
            return str(serialized["name"])
        if serialized.get("id"):
            return str(serialized["id"][-1])
    return fallback


def _run_attributes(tags: Optional[list[str]], metadata: Optional[dict[str, Any]]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    user_tags = [t for t in tags or () if not t.startswith(_INTERNAL_TAGS)]
    if user_tags:
        attributes["tag.tags"] = user_tags
    if metadata:
        if metadata.get("langgraph_node") is not None:
            attributes["langgraph.node"] = str(metadata["langgraph_node"])
        if isinstance(metadata.get("langgraph_step"), int):
            attributes["langgraph.step"] = metadata["langgraph_step"]
        own = {k: v for k, v in metadata.items() if not k.startswith(_INTERNAL_METADATA)}
        if own:
            attributes["metadata"] = dumps(own, _convert.to_json)
    return attributes


class TracelakeCallbackHandler(BaseCallbackHandler):
    """Registered once by autotrace(); every method is guarded so LangChain never sees our errors."""

    run_inline = True  # called in the run's own context, where the span must become current

    def __init__(self) -> None:
        super().__init__()
        self._runs: dict[UUID, _Run] = {}

    # -- lifecycle --------------------------------------------------------------------------
    def _start(
        self,
        run_id: UUID,
        parent_run_id: Optional[UUID],
        name: str,
        kind: str,
        attributes: dict[str, Any],
        tags: Optional[list[str]],
        metadata: Optional[dict[str, Any]],
        inputs: Any,
    ) -> Optional[_Run]:
        tidy()
        parent = self._runs.get(parent_run_id) if parent_run_id else None
        if tags and HIDDEN_TAG in tags:
            self._runs[run_id] = _Run(parent.span if parent else None, None, kind)
            return None
        if parent is not None and parent.span is not None:
            base = otel_context.get_current()
            ctx = trace.set_span_in_context(parent.span, base)
        else:
            base = ctx = outside()
        attributes = {KIND: kind.upper(), **attributes, **_run_attributes(tags, metadata)}
        span = tracer("langchain").start_span(name, context=ctx, attributes=attributes)
        run = self._runs[run_id] = _Run(span, enter(span, base), kind, inputs)
        return run

    def _finish(self, run: _Run, error: Optional[BaseException] = None) -> None:
        assert run.span is not None and run.scope is not None
        try:
            if error is not None and not isinstance(error, GeneratorExit):  # GeneratorExit: consumer stopped
                record_error(run.span, error)
            run.span.end()
        finally:
            leave(run.scope)

    def _pop(self, run_id: UUID) -> Optional[_Run]:
        run = self._runs.pop(run_id, None)
        return None if run is None or run.scope is None else run

    # -- chains -----------------------------------------------------------------------------
    def on_chain_start(
        self,
        serialized: Optional[dict[str, Any]],
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: Optional[UUID] = None,
        tags: Optional[list[str]] = None,
        metadata: Optional[dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._start(run_id, parent_run_id, _name(serialized, kwargs, "chain"), "chain", {}, tags, metadata, inputs)
        except Exception:
            report("langchain chain start")

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_with_io(run_id, outputs, None, kwargs)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_with_io(run_id, None, error, kwargs)

    def _end_with_io(self, run_id: UUID, output: Any, error: Optional[BaseException], kwargs: dict[str, Any]) -> None:
        try:
            run = self._pop(run_id)
            if run is None:
                return
            try:
                if capturing():
                    # Streams start with a placeholder input and pass the real one at the end.
                    inputs = kwargs["inputs"] if kwargs.get("inputs") is not None else run.inputs
                    self._io(run.span, "input", inputs)
                    if error is None:
                        self._io(run.span, "output", output)
            finally:
                self._finish(run, error)
        except Exception:
            report("langchain run end")

    @staticmethod
    def _io(span: Any, prefix: str, value: Any) -> None:
        if isinstance(value, ToolMessage):
            value = value.content
        if value is not None:
            record_value(span, prefix, value, _convert.to_json)

    # -- tools ------------------------------------------------------------------------------
    def on_tool_start(
        self,
        serialized: Optional[dict[str, Any]],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: Optional[UUID] = None,
        tags: Optional[list[str]] = None,
        metadata: Optional[dict[str, Any]] = None,
        inputs: Optional[dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        try:
            name = _name(serialized, kwargs, "tool")
            attributes = {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": name,
                "gen_ai.tool.type": "function",
                "gen_ai.tool.description": (serialized or {}).get("description") or None,
                "gen_ai.tool.call.id": kwargs.get("tool_call_id"),
            }
            attributes = {k: v for k, v in attributes.items() if v is not None}
            arguments = inputs if inputs is not None else input_str
            self._start(run_id, parent_run_id, f"execute_tool {name}", "tool", attributes, tags, metadata, arguments)
        except Exception:
            report("langchain tool start")

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_with_io(run_id, output, None, {})

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_with_io(run_id, None, error, {})

    # -- retrievers -------------------------------------------------------------------------
    def on_retriever_start(
        self,
        serialized: Optional[dict[str, Any]],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: Optional[UUID] = None,
        tags: Optional[list[str]] = None,
        metadata: Optional[dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        try:
            name = _name(serialized, kwargs, "retriever")
            self._start(run_id, parent_run_id, name, "retriever", {}, tags, metadata, query)
        except Exception:
            report("langchain retriever start")

    def on_retriever_end(self, documents: Sequence[Document], *, run_id: UUID, **kwargs: Any) -> None:
        try:
            run = self._pop(run_id)
            if run is None:
                return
            try:
                if capturing():
                    self._io(run.span, "input", run.inputs)
                    self._documents(run.span, documents)
            finally:
                self._finish(run)
        except Exception:
            report("langchain retriever end")

    @staticmethod
    def _documents(span: Any, documents: Sequence[Document]) -> None:
        """OpenInference's flattened form: retrieval.documents.N.document.{id,content,metadata}."""
        for index, doc in enumerate(documents):
            prefix = f"retrieval.documents.{index}.document"
            if getattr(doc, "id", None):
                span.set_attribute(f"{prefix}.id", str(doc.id))
            record(span, f"{prefix}.content", doc.page_content)
            if doc.metadata:
                record(span, f"{prefix}.metadata", doc.metadata, _convert.to_json)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_with_io(run_id, None, error, {})

    # -- chat models and LLMs ---------------------------------------------------------------
    def on_chat_model_start(
        self,
        serialized: Optional[dict[str, Any]],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: Optional[UUID] = None,
        tags: Optional[list[str]] = None,
        metadata: Optional[dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        self._llm_start("chat", serialized, messages[0] if messages else [], run_id, parent_run_id, tags, metadata, kwargs)

    def on_llm_start(
        self,
        serialized: Optional[dict[str, Any]],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: Optional[UUID] = None,
        tags: Optional[list[str]] = None,
        metadata: Optional[dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        self._llm_start("text_completion", serialized, prompts, run_id, parent_run_id, tags, metadata, kwargs)

    def _llm_start(
        self,
        operation: str,
        serialized: Optional[dict[str, Any]],
        inputs: Any,
        run_id: UUID,
        parent_run_id: Optional[UUID],
        tags: Optional[list[str]],
        metadata: Optional[dict[str, Any]],
        kwargs: dict[str, Any],
    ) -> None:
        try:
            meta = metadata or {}
            params = kwargs.get("invocation_params") or {}
            stop = meta.get("ls_stop") or params.get("stop")
            attributes = {
                "gen_ai.operation.name": operation,
                "gen_ai.provider.name": meta.get("ls_provider"),
                "gen_ai.request.model": meta.get("ls_model_name") or params.get("model") or params.get("model_name"),
                "gen_ai.request.temperature": meta.get("ls_temperature", params.get("temperature")),
                "gen_ai.request.max_tokens": meta.get("ls_max_tokens", params.get("max_tokens")),
                "gen_ai.request.top_p": params.get("top_p"),
                "gen_ai.request.frequency_penalty": params.get("frequency_penalty"),
                "gen_ai.request.presence_penalty": params.get("presence_penalty"),
                "gen_ai.request.seed": params.get("seed"),
                "gen_ai.request.stop_sequences": [stop] if isinstance(stop, str) else stop,
            }
            attributes = {k: v for k, v in attributes.items() if isinstance(v, (str, int, float, list)) and v != []}
            name = _name(serialized, kwargs, operation)
            run = self._start(run_id, parent_run_id, name, "llm", attributes, tags, metadata, inputs)
            if run is not None and run.span is not None:
                run.tools = params.get("tools")
                _provider_spans.opened(run.span.get_span_context().span_id)
        except Exception:
            report("langchain llm start")

    def on_llm_new_token(self, token: str, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.get(run_id)
        if run is not None and run.first_token is None:
            run.first_token = time.perf_counter()

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            run = self._pop(run_id)
            if run is None:
                return
            try:
                self._llm_result(run, response)
            finally:
                self._finish(run)
        except Exception:
            report("langchain llm end")

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            run = self._pop(run_id)
            if run is None:
                return
            try:
                assert run.span is not None
                if not _provider_spans.closed(run.span.get_span_context().span_id):
                    self._llm_inputs(run)
            finally:
                self._finish(run, error)
        except Exception:
            report("langchain llm error")

    def _llm_inputs(self, run: _Run) -> None:
        if not capturing():
            return
        if run.inputs and isinstance(run.inputs[0], str):
            messages = [{"role": "user", "parts": [parts.text(p)]} for p in run.inputs]
        else:
            messages = [_convert.message(m) for m in run.inputs or ()]
        record(run.span, "gen_ai.input.messages", messages)  # type: ignore[arg-type]
        if run.tools:
            record(run.span, "gen_ai.tool.definitions", [parts.tool_definition(t) for t in run.tools])  # type: ignore[arg-type]

    def _llm_result(self, run: _Run, response: LLMResult) -> None:
        span = run.span
        assert span is not None
        generations = response.generations[0] if response.generations else []
        llm_output = response.llm_output or {}
        first = generations[0] if generations else None
        message = first.message if isinstance(first, ChatGeneration) else None
        response_meta = getattr(message, "response_metadata", None) or {}
        reasons = [_finish_reason(g) for g in generations]
        set_attributes(
            span,
            {
                "gen_ai.response.model": response_meta.get("model_name") or llm_output.get("model_name"),
                "gen_ai.response.id": response_meta.get("id") or getattr(message, "id", None),
                "gen_ai.response.finish_reasons": [r for r in reasons if r] or None,
                "gen_ai.response.time_to_first_chunk": run.first_token - run.started if run.first_token else None,
            },
        )
        if _provider_spans.closed(span.get_span_context().span_id):
            return  # the provider span beneath holds messages and usage
        set_attributes(span, _usage(message, llm_output))
        self._llm_inputs(run)
        if capturing():
            outputs = []
            for generation, reason in zip(generations, reasons):
                if isinstance(generation, ChatGeneration):
                    outputs.append(_convert.output_message(generation.message, reason))
                else:
                    outputs.append({"role": "assistant", "parts": [parts.text(generation.text)], "finish_reason": reason})
            record(span, "gen_ai.output.messages", outputs)


def _finish_reason(generation: Any) -> Any:
    info = generation.generation_info or {}
    message = getattr(generation, "message", None)
    meta = getattr(message, "response_metadata", None) or {}
    return info.get("finish_reason") or meta.get("finish_reason") or meta.get("stop_reason")


def _usage(message: Any, llm_output: dict[str, Any]) -> dict[str, Any]:
    usage = getattr(message, "usage_metadata", None)
    if usage:
        return {
            "gen_ai.usage.input_tokens": usage.get("input_tokens"),
            "gen_ai.usage.output_tokens": usage.get("output_tokens"),
            "gen_ai.usage.cache_read.input_tokens": (usage.get("input_token_details") or {}).get("cache_read"),
            "gen_ai.usage.reasoning.output_tokens": (usage.get("output_token_details") or {}).get("reasoning"),
        }
    token_usage = llm_output.get("token_usage") or llm_output.get("usage") or {}
    return {
        "gen_ai.usage.input_tokens": token_usage.get("prompt_tokens") or token_usage.get("input_tokens"),
        "gen_ai.usage.output_tokens": token_usage.get("completion_tokens") or token_usage.get("output_tokens"),
    }
