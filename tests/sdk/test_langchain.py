"""LangChain runs as spans, through the globally registered handler (no callbacks= anywhere)."""
from __future__ import annotations

import asyncio

import pytest
from fake_openai import Reply, ToolCall, Usage
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from opentelemetry import trace as otel_trace

import tracelake

PROMPT = ChatPromptTemplate.from_messages([("system", "Be brief."), ("user", "{question}")])


@pytest.fixture
def llm(server):
    return ChatOpenAI(model="gpt-4o-mini", base_url=server.base_url, api_key="k", max_retries=0)


@pytest.fixture
def chain(llm):
    return PROMPT | llm | StrOutputParser()


def test_chain_nests_under_the_users_span(chain, server, collect):
    server.enqueue(Reply(text="Paris.", usage=Usage(20, 2)))
    with otel_trace.get_tracer("my-app").start_as_current_span("handle request"):
        assert chain.invoke({"question": "Capital of France?"}) == "Paris."

    spans = collect()
    assert spans.tree() == "\n".join(
        [
            "handle request",
            "  RunnableSequence",
            "    ChatPromptTemplate",
            "    ChatOpenAI",
            "      chat gpt-4o-mini",
            "    StrOutputParser",
        ]
    )
    sequence = spans.one("RunnableSequence")
    assert sequence.scope == "tracelake.sdk.langchain"
    assert sequence.attributes["openinference.span.kind"] == "CHAIN"
    assert sequence.json("input.value") == {"question": "Capital of France?"}
    assert sequence.attributes["output.value"] == "Paris."
    assert spans.one("ChatPromptTemplate").json("output.value") == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Capital of France?"}]},
    ]


def test_chat_openai_span_sits_over_the_openai_span_without_duplicating_it(chain, server, collect):
    server.enqueue(Reply(text="Paris.", usage=Usage(20, 2)))
    chain.invoke({"question": "Capital of France?"})
    spans = collect()
    framework, provider = spans.one("ChatOpenAI"), spans.one("chat gpt-4o-mini")
    assert spans.parent(provider) is framework
    assert framework.attributes["openinference.span.kind"] == "LLM"
    assert framework.attributes["gen_ai.operation.name"] == "chat"
    assert framework.attributes["gen_ai.provider.name"] == "openai"
    assert framework.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert framework.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    # Messages and tokens live on the provider span only, so usage sums do not double count.
    assert not any(k.startswith(("gen_ai.usage.", "gen_ai.input.", "gen_ai.output.")) for k in framework.attributes)
    assert provider.attributes["gen_ai.usage.input_tokens"] == 20
    assert provider.json("gen_ai.input.messages")[0] == {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]}


def test_model_without_provider_span_keeps_messages_and_usage(collect):
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    reply = AIMessage(content="pong", usage_metadata={"input_tokens": 7, "output_tokens": 1, "total_tokens": 8})
    GenericFakeChatModel(messages=iter([reply])).invoke("ping")
    span = collect().one("GenericFakeChatModel")
    assert span.attributes["gen_ai.usage.input_tokens"] == 7
    assert span.attributes["gen_ai.usage.output_tokens"] == 1
    assert span.json("gen_ai.input.messages") == [{"role": "user", "parts": [{"type": "text", "content": "ping"}]}]
    assert span.json("gen_ai.output.messages")[0]["parts"] == [{"type": "text", "content": "pong"}]


def test_streamed_chain(chain, server, collect):
    server.enqueue(Reply(text="one two three"))
    assert "".join(chain.stream({"question": "count"})) == "one two three"
    spans = collect()
    assert spans.tree().splitlines()[0] == "RunnableSequence"
    assert spans.parent(spans.one("chat gpt-4o-mini")) is spans.one("ChatOpenAI")
    sequence = spans.one("RunnableSequence")
    assert sequence.json("input.value") == {"question": "count"}  # the real input, not the stream's placeholder
    assert sequence.attributes["output.value"] == "one two three"
    assert spans.one("chat gpt-4o-mini").attributes["tracelake.stream.ended_by"] == "consumed"


def test_async_runs_and_gather(chain, llm, server, collect):
    async def main():
        with tracelake.span("request"):
            answers = await asyncio.gather(chain.ainvoke({"question": "a"}), chain.ainvoke({"question": "b"}))
            chunks = [c async for c in chain.astream({"question": "c"})]
            await llm.ainvoke("d")
            with tracelake.span("after the model"):  # must not land under the ended ChatOpenAI span
                pass
        return answers, "".join(chunks)

    answers, streamed = asyncio.run(main())
    assert answers == ["echo: a", "echo: b"] and streamed == "echo: c"
    spans = collect()
    request = spans.one("request")
    assert [s.name for s in spans.children(request)] == [
        "RunnableSequence",
        "RunnableSequence",
        "RunnableSequence",
        "ChatOpenAI",
        "after the model",
    ]
    for model_span in spans.named("ChatOpenAI"):
        [provider] = spans.children(model_span)
        assert provider.name == "chat gpt-4o-mini"
    assert len(spans.roots()) == 1


def test_batch_runs_in_threads_keep_their_own_trees(chain, collect):
    with tracelake.span("batch"):
        assert chain.batch([{"question": "x"}, {"question": "y"}, {"question": "z"}]) == ["echo: x", "echo: y", "echo: z"]
    spans = collect()
    sequences = spans.named("RunnableSequence")
    assert len(sequences) == 3 and all(spans.parent(s).name == "batch" for s in sequences)
    for sequence in sequences:
        [model] = [c for c in spans.children(sequence) if c.name == "ChatOpenAI"]
        [provider] = spans.children(model)
        question = sequence.json("input.value")["question"]
        assert provider.json("gen_ai.input.messages")[1]["parts"][0]["content"] == question


def test_tools_and_openai_calls_inside_them(client, server, collect):
    @tool
    def ask_model(question: str) -> str:
        """Ask the model."""
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
        return reply.choices[0].message.content

    assert ask_model.invoke({"question": "inner"}) == "echo: inner"
    assert ask_model.invoke({"type": "tool_call", "id": "call_42", "name": "ask_model", "args": {"question": "q"}}).content == "echo: q"

    spans = collect()
    first, second = sorted(spans.named("execute_tool ask_model"), key=lambda s: s.start_ns)
    assert [c.name for c in spans.children(first)] == ["chat gpt-4o-mini"]
    assert first.attributes["openinference.span.kind"] == "TOOL"
    assert first.attributes["gen_ai.operation.name"] == "execute_tool"
    assert first.attributes["gen_ai.tool.name"] == "ask_model"
    assert first.attributes["gen_ai.tool.description"] == "Ask the model."
    assert first.json("input.value") == {"question": "inner"}
    assert first.attributes["output.value"] == "echo: inner"
    assert second.attributes["gen_ai.tool.call.id"] == "call_42"
    assert second.attributes["output.value"] == "echo: q"


def test_tool_error(collect):
    @tool
    def broken(x: int) -> int:
        """Always fails."""
        raise ValueError("no luck")

    with pytest.raises(ValueError, match="no luck"):
        broken.invoke({"x": 1})
    span = collect().one("execute_tool broken")
    assert span.status == "ERROR" and span.attributes["error.type"] == "ValueError"
    assert span.events[0].name == "exception"


def test_tool_calling_agent_loop(llm, server, collect):
    @tool
    def get_weather(city: str) -> str:
        """Weather for a city."""
        return f"Sunny in {city}"

    server.enqueue(Reply(tool_calls=[ToolCall("get_weather", {"city": "Oslo"}, id="call_w")]), Reply(text="It is sunny."))
    model = llm.bind_tools([get_weather])
    with tracelake.span("agent", kind="agent"):
        history = [("user", "Weather in Oslo?")]
        ai = model.invoke(history)
        result = get_weather.invoke(ai.tool_calls[0])
        final = model.invoke(history + [ai, result])
    assert final.content == "It is sunny."
    spans = collect()
    assert spans.tree() == "\n".join(
        [
            "agent",
            "  ChatOpenAI",
            "    chat gpt-4o-mini",
            "  execute_tool get_weather",
            "  ChatOpenAI",
            "    chat gpt-4o-mini",
        ]
    )
    second = sorted(spans.named("chat gpt-4o-mini"), key=lambda s: s.start_ns)[1]
    messages = second.json("gen_ai.input.messages")
    assert messages[1]["parts"] == [{"type": "tool_call", "id": "call_w", "name": "get_weather", "arguments": {"city": "Oslo"}}]
    assert messages[2] == {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_w", "response": "Sunny in Oslo"}]}
    assert second.json("gen_ai.tool.definitions")[0]["name"] == "get_weather"


class Shelf(BaseRetriever):
    def _get_relevant_documents(self, query, *, run_manager):
        return [
            Document(page_content=f"about {query}", metadata={"source": "a.txt"}, id="doc-1"),
            Document(page_content="second", metadata={}),
        ]


def test_retriever_documents_as_output(collect):
    docs = (Shelf() | RunnableLambda(lambda d: len(d))).invoke("otel")
    assert docs == 2
    spans = collect()
    retriever = spans.one("Shelf")
    a = retriever.attributes
    assert a["openinference.span.kind"] == "RETRIEVER"
    assert a["input.value"] == "otel"
    assert a["retrieval.documents.0.document.content"] == "about otel"
    assert a["retrieval.documents.0.document.id"] == "doc-1"
    assert retriever.json("retrieval.documents.0.document.metadata") == {"source": "a.txt"}
    assert a["retrieval.documents.1.document.content"] == "second"
    assert spans.parent(retriever).name == "RunnableSequence"


def test_chain_error_marks_the_failing_runs(collect):
    def explode(_):
        raise RuntimeError("bad step")

    with pytest.raises(RuntimeError):
        (RunnableLambda(lambda x: x) | RunnableLambda(explode)).invoke(1)
    spans = collect()
    assert spans.one("RunnableSequence").status == "ERROR"
    assert spans.one("explode").status == "ERROR"
    assert spans.one("explode").attributes["error.type"] == "RuntimeError"
    # The failure left no span current behind it.
    with tracelake.span("later"):
        pass
    assert [s.name for s in collect().roots() if s.name == "later"] == ["later"]


def test_langgraph(llm, server, collect):
    graph_module = pytest.importorskip("langgraph.graph")
    from typing import TypedDict

    class State(TypedDict):
        question: str
        answer: str

    def think(state: State) -> dict:
        return {"answer": llm.invoke(state["question"]).content}

    builder = graph_module.StateGraph(State)
    builder.add_node("think", think)
    builder.add_edge(graph_module.START, "think")
    builder.add_edge("think", graph_module.END)
    graph = builder.compile()

    with tracelake.span("user code"):
        assert graph.invoke({"question": "hi graph"})["answer"] == "echo: hi graph"
    spans = collect()
    node = spans.one("think")
    assert node.attributes["langgraph.node"] == "think"
    assert spans.parent(node).name == "LangGraph"
    assert spans.parent(spans.parent(node)).name == "user code"
    [model] = [c for c in spans.children(node) if c.name == "ChatOpenAI"]
    assert [c.name for c in spans.children(model)] == ["chat gpt-4o-mini"]
