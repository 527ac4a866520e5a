"""Responses API and embeddings through the real openai client."""
from __future__ import annotations

import asyncio
import gc

import pytest
from fake_openai import Reply, ToolCall, Usage


def test_responses_create(client, server, collect):
    server.enqueue(Reply(text="Bonjour", usage=Usage(9, 2, cached_tokens=3)))
    client.responses.create(
        model="gpt-4.1-mini", instructions="Answer in French.", input="Hello", temperature=0.5, max_output_tokens=40
    )
    span = collect().one("chat gpt-4.1-mini")
    a = span.attributes
    assert span.kind == "CLIENT"
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.temperature"] == 0.5 and a["gen_ai.request.max_tokens"] == 40
    assert a["gen_ai.response.id"].startswith("resp_")
    assert a["gen_ai.usage.input_tokens"] == 9 and a["gen_ai.usage.output_tokens"] == 2
    assert a["gen_ai.usage.cache_read.input_tokens"] == 3
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert span.json("gen_ai.system_instructions") == [{"type": "text", "content": "Answer in French."}]
    assert span.json("gen_ai.input.messages") == [{"role": "user", "parts": [{"type": "text", "content": "Hello"}]}]
    assert span.json("gen_ai.output.messages") == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Bonjour"}], "finish_reason": "stop"}
    ]


def test_responses_tool_round_trip(client, server, collect):
    tools = [{"type": "function", "name": "add", "parameters": {"type": "object", "properties": {}}}]
    server.enqueue(Reply(tool_calls=[ToolCall("add", {"a": 1, "b": 2}, id="call_add")]), Reply(text="3"))
    first = client.responses.create(model="gpt-4.1-mini", input="1+2?", tools=tools)
    call = first.output[0]
    client.responses.create(
        model="gpt-4.1-mini",
        tools=tools,
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "1+2?"}]},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "3"},
        ],
    )
    first_span, second_span = sorted(collect().named("chat gpt-4.1-mini"), key=lambda s: s.start_ns)
    assert first_span.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert first_span.json("gen_ai.output.messages")[0]["parts"] == [
        {"type": "tool_call", "id": "call_add", "name": "add", "arguments": {"a": 1, "b": 2}}
    ]
    assert first_span.json("gen_ai.tool.definitions") == tools
    assert second_span.json("gen_ai.input.messages") == [
        {"role": "user", "parts": [{"type": "text", "content": "1+2?"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_add", "name": "add", "arguments": {"a": 1, "b": 2}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_add", "response": "3"}]},
    ]


def test_responses_stream_consumed(client, server, collect):
    server.enqueue(Reply(text="streaming responses work", reasoning="short thought", usage=Usage(4, 3)))
    events = [e.type for e in client.responses.create(model="gpt-4.1-mini", input="go", stream=True)]
    assert events[-1] == "response.completed"
    span = collect().one("chat gpt-4.1-mini")
    a = span.attributes
    assert a["tracelake.stream.ended_by"] == "consumed"
    assert a["gen_ai.usage.output_tokens"] == 3
    assert a["gen_ai.response.time_to_first_chunk"] > 0
    assert span.json("gen_ai.output.messages")[0]["parts"] == [
        {"type": "reasoning", "content": "short thought"},
        {"type": "text", "content": "streaming responses work"},
    ]


def test_responses_stream_abandoned(client, server, collect):
    server.enqueue(Reply(text="one two three four five"))
    stream = client.responses.create(model="gpt-4.1-mini", input="go", stream=True)
    for event in stream:
        if event.type == "response.output_text.delta" and event.delta == "two ":
            break
    del stream, event
    gc.collect()
    span = collect().one("chat gpt-4.1-mini")
    assert span.attributes["tracelake.stream.ended_by"] == "abandoned"
    assert span.attributes["gen_ai.response.id"].startswith("resp_")  # known from response.created
    assert span.json("gen_ai.output.messages")[0]["parts"] == [{"type": "text", "content": "one two "}]


def test_responses_async_stream_and_error(aclient, server, collect):
    async def main():
        stream = await aclient.responses.create(model="gpt-4.1-mini", input="go", stream=True)
        async for _ in stream:
            pass
        with pytest.raises(Exception):
            await aclient.responses.create(model="gpt-4.1-mini", input="again")

    server.enqueue(Reply(text="async ok"), Reply(status=500))
    asyncio.run(main())
    ok, failed = sorted(collect().named("chat gpt-4.1-mini"), key=lambda s: s.start_ns)
    assert ok.json("gen_ai.output.messages")[0]["parts"] == [{"type": "text", "content": "async ok"}]
    assert failed.status == "ERROR" and failed.attributes["http.response.status_code"] == 500


def test_embeddings(client, aclient, server, collect):
    result = client.embeddings.create(model="text-embedding-3-small", input=["first text", "second"], dimensions=4)
    assert len(result.data) == 2
    asyncio.run(aclient.embeddings.create(model="text-embedding-3-small", input="async text"))
    sync_span, async_span = sorted(collect().named("embeddings text-embedding-3-small"), key=lambda s: s.start_ns)
    a = sync_span.attributes
    assert sync_span.kind == "CLIENT"
    assert a["gen_ai.operation.name"] == "embeddings"
    assert a["gen_ai.request.model"] == "text-embedding-3-small"
    assert a["gen_ai.embeddings.dimension.count"] == 4
    assert a["gen_ai.usage.input_tokens"] == 3
    assert sync_span.json("input.value") == ["first text", "second"]
    assert async_span.attributes["input.value"] == "async text"
    assert async_span.attributes["gen_ai.embeddings.dimension.count"] == 8
