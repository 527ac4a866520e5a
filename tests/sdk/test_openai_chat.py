"""Chat Completions through the real openai client, asserted on the exported OTLP spans."""
from __future__ import annotations

import asyncio
import gc

import openai
import pytest
from fake_openai import Reply, ToolCall, Usage

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hi"},
]


def test_chat_span_attributes_and_messages(client, server, collect):
    server.enqueue(Reply(text="Hi!", usage=Usage(12, 3, cached_tokens=4, reasoning_tokens=1)))
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        temperature=0.3,
        top_p=0.9,
        max_tokens=50,
        frequency_penalty=0.1,
        presence_penalty=0.2,
        stop="END",
        seed=7,
        n=1,
    )
    span = collect().one("chat gpt-4o-mini")
    a = span.attributes
    assert span.kind == "CLIENT" and span.scope == "tracelake.sdk.openai"
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == server.port
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.request.temperature"] == 0.3
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.request.frequency_penalty"] == 0.1
    assert a["gen_ai.request.presence_penalty"] == 0.2
    assert a["gen_ai.request.stop_sequences"] == ["END"]
    assert a["gen_ai.request.seed"] == 7
    assert "gen_ai.request.choice.count" not in a  # n=1 is the default, not recorded
    assert a["gen_ai.response.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.id"].startswith("chatcmpl_")
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["gen_ai.usage.input_tokens"] == 12
    assert a["gen_ai.usage.output_tokens"] == 3
    assert a["gen_ai.usage.cache_read.input_tokens"] == 4
    assert a["gen_ai.usage.reasoning.output_tokens"] == 1
    assert span.json("gen_ai.input.messages") == [
        {"role": "system", "parts": [{"type": "text", "content": "You are terse."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Say hi"}]},
    ]
    assert span.json("gen_ai.output.messages") == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hi!"}], "finish_reason": "stop"}
    ]
    assert span.status == "UNSET"
    assert span.resource["service.name"] == "sdk-tests"


def test_content_is_not_mangled(client, server, collect):
    tricky = 'Ünïcödé 日本語 <b>"quotes"</b> & \\backslash\n🙂'
    server.enqueue(Reply(text=tricky))
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": tricky}])
    span = collect().one("chat gpt-4o-mini")
    assert span.json("gen_ai.input.messages")[0]["parts"][0]["content"] == tricky
    assert span.json("gen_ai.output.messages")[0]["parts"][0]["content"] == tricky
    assert "日本語" in span.attributes["gen_ai.input.messages"]  # stored as written, not \u-escaped


def test_tool_calls_and_tool_results(client, server, collect):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    server.enqueue(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="call_1")]))
    first = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=tools)
    call = first.choices[0].message.tool_calls[0]
    history = MESSAGES + [
        first.choices[0].message,  # the SDK's own object, as users pass it back
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
    ]
    client.chat.completions.create(model="gpt-4o-mini", messages=history, tools=tools)

    first_span, second_span = sorted(collect().named("chat gpt-4o-mini"), key=lambda s: s.start_ns)
    assert first_span.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert first_span.json("gen_ai.output.messages") == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}],
            "finish_reason": "tool_calls",
        }
    ]
    assert first_span.json("gen_ai.tool.definitions") == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    inputs = second_span.json("gen_ai.input.messages")
    assert inputs[2]["role"] == "assistant"
    assert inputs[2]["parts"] == [
        {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    ]
    assert inputs[3] == {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": "call_1", "response": "18C and sunny"}],
    }


def test_streamed_chat_with_usage_chunk(client, server, collect):
    server.enqueue(Reply(text="one two three four", usage=Usage(5, 4)))
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert isinstance(stream, openai.Stream)  # the proxy keeps the client's type
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "one two three four"

    span = collect().one("chat gpt-4o-mini")
    a = span.attributes
    assert a["tracelake.stream.ended_by"] == "consumed"
    assert a["gen_ai.usage.input_tokens"] == 5 and a["gen_ai.usage.output_tokens"] == 4
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert 0 < a["gen_ai.response.time_to_first_chunk"] < (span.end_ns - span.start_ns) / 1e9
    assert span.json("gen_ai.output.messages") == [
        {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "stop"}
    ]


def test_streamed_tool_calls_are_assembled(client, server, collect):
    server.enqueue(Reply(tool_calls=[ToolCall("lookup", {"q": "otel", "limit": 3}, id="call_s")]))
    with client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True) as stream:
        for _ in stream:
            pass
    span = collect().one("chat gpt-4o-mini")
    assert span.json("gen_ai.output.messages")[0]["parts"] == [
        {"type": "tool_call", "id": "call_s", "name": "lookup", "arguments": {"q": "otel", "limit": 3}}
    ]
    assert span.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]


def test_stream_abandoned_halfway_still_ends_its_span(client, server, collect):
    server.enqueue(Reply(text="alpha beta gamma delta epsilon"))
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    seen = []
    for chunk in stream:
        seen.append(chunk.choices[0].delta.content)
        if len(seen) == 3:  # role chunk, "alpha ", "beta "
            break
    del stream, chunk
    gc.collect()

    span = collect().one("chat gpt-4o-mini")
    assert span.attributes["tracelake.stream.ended_by"] == "abandoned"
    assert span.json("gen_ai.output.messages")[0]["parts"] == [{"type": "text", "content": "alpha beta "}]
    assert "gen_ai.response.finish_reasons" not in span.attributes
    assert span.status == "UNSET"


def test_stream_closed_early(client, server, collect):
    server.enqueue(Reply(text="alpha beta gamma"))
    with client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True) as stream:
        next(stream)
        next(stream)
    assert collect().one("chat gpt-4o-mini").attributes["tracelake.stream.ended_by"] == "closed"


@pytest.mark.parametrize("status, error", [(429, "RateLimitError"), (500, "InternalServerError")])
def test_http_errors(client, server, collect, status, error):
    server.enqueue(Reply(status=status, error_message="slow down"))
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert type(raised.value).__name__ == error  # the app sees the client's own exception

    span = collect().one("chat gpt-4o-mini")
    assert span.status == "ERROR"
    assert "slow down" in span.status_message
    assert span.attributes["error.type"] == error
    assert span.attributes["http.response.status_code"] == status
    [event] = span.events
    assert event.name == "exception" and event.attributes["exception.type"].endswith(error)
    assert "gen_ai.input.messages" in span.attributes  # the request is kept for debugging


def test_connection_error_is_recorded(collect):
    dead = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.APIConnectionError):
        dead.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = collect().one("chat gpt-4o-mini")
    assert span.status == "ERROR" and span.attributes["error.type"] == "APIConnectionError"


def test_async_chat_and_stream(aclient, server, collect):
    async def main():
        await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        stream = await aclient.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        assert isinstance(stream, openai.AsyncStream)
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    server.enqueue(Reply(text="plain"), Reply(text="streamed text", usage=Usage(2, 2)))
    assert asyncio.run(main()) == "streamed text"
    plain, streamed = sorted(collect().named("chat gpt-4o-mini"), key=lambda s: s.start_ns)
    assert plain.json("gen_ai.output.messages")[0]["parts"][0]["content"] == "plain"
    assert streamed.attributes["tracelake.stream.ended_by"] == "consumed"
    assert streamed.attributes["gen_ai.usage.output_tokens"] == 2
    assert streamed.json("gen_ai.output.messages")[0]["parts"][0]["content"] == "streamed text"


def test_async_error(aclient, server, collect):
    server.enqueue(Reply(status=429))
    with pytest.raises(openai.RateLimitError):
        asyncio.run(aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES))
    assert collect().one("chat gpt-4o-mini").attributes["http.response.status_code"] == 429


def test_raw_response_and_stream_helper(client, server, collect):
    server.enqueue(Reply(text="raw"), Reply(text="raw stream"), Reply(text="helper"))
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "raw"
    raw_stream = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in raw_stream.parse()) == "raw stream"
    with client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as helper:
        final = helper.get_final_completion()
    assert final.choices[0].message.content == "helper"

    outputs = [
        s.json("gen_ai.output.messages")[0]["parts"][0]["content"]
        for s in sorted(collect().named("chat gpt-4o-mini"), key=lambda s: s.start_ns)
    ]
    assert outputs == ["raw", "raw stream", "helper"]


def test_reasoning_content_from_compatible_servers(client, server, collect):
    server.enqueue(Reply(text="42", reasoning="think hard"))
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert collect().one("chat gpt-4o-mini").json("gen_ai.output.messages")[0]["parts"] == [
        {"type": "reasoning", "content": "think hard"},
        {"type": "text", "content": "42"},
    ]


def test_parent_is_the_current_span(client, collect):
    import tracelake

    with tracelake.span("handler"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    spans = collect()
    assert spans.tree() == "handler\n  chat gpt-4o-mini"
