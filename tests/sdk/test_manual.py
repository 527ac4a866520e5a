"""@tracelake.trace, tracelake.span(), sessions and users."""
from __future__ import annotations

import asyncio

import pytest

import tracelake


def test_trace_function_records_inputs_and_output(collect):
    @tracelake.trace
    def add(a, b=2, *rest, **options):
        return {"sum": a + b}

    assert add(1, 5, 7, flag=True) == {"sum": 6}
    span = collect().one("test_trace_function_records_inputs_and_output.<locals>.add")
    assert span.scope == "tracelake.sdk.manual" and span.kind == "INTERNAL"
    assert span.attributes["openinference.span.kind"] == "CHAIN"
    assert span.json("input.value") == {"a": 1, "b": 5, "rest": [7], "options": {"flag": True}}
    assert span.attributes["input.mime_type"] == "application/json"
    assert span.json("output.value") == {"sum": 6}


def test_trace_options_and_methods(collect):
    class Agent:
        @tracelake.trace(name="plan", kind="agent", capture_output=False)
        def plan(self, goal):
            return "secret plan"

    assert Agent().plan("win") == "secret plan"
    span = collect().one("plan")
    assert span.attributes["openinference.span.kind"] == "AGENT"
    assert span.json("input.value") == {"goal": "win"}  # self is left out
    assert "output.value" not in span.attributes


def test_trace_records_and_reraises_exceptions(collect):
    @tracelake.trace
    def fail():
        raise KeyError("missing")

    with pytest.raises(KeyError):
        fail()
    span = collect().one("test_trace_records_and_reraises_exceptions.<locals>.fail")
    assert span.status == "ERROR" and span.attributes["error.type"] == "KeyError"
    assert span.events[0].name == "exception"


def test_async_function_generator_and_async_generator(collect):
    @tracelake.trace
    async def fetch(x):
        await asyncio.sleep(0)
        return x * 2

    @tracelake.trace
    def count(n):
        for i in range(n):
            with tracelake.span(f"inside {i}"):
                pass
            yield i

    @tracelake.trace
    async def acount(n):
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    async def main():
        values = [v async for v in acount(3)]
        return await fetch(21), values

    with tracelake.span("consumer"):
        assert list(count(2)) == [0, 1]
        assert asyncio.run(main()) == (42, [0, 1, 2])
    spans = collect()
    gen = spans.one("test_async_function_generator_and_async_generator.<locals>.count")
    assert gen.json("output.value") == [0, 1]
    assert [c.name for c in spans.children(gen)] == ["inside 0", "inside 1"]
    assert spans.one("test_async_function_generator_and_async_generator.<locals>.acount").json("output.value") == [0, 1, 2]
    assert spans.one("test_async_function_generator_and_async_generator.<locals>.fetch").attributes["output.value"] == "42"
    assert spans.parent(gen).name == "consumer"


def test_generator_span_is_not_current_while_the_consumer_runs(collect):
    @tracelake.trace(name="producer")
    def produce():
        yield 1
        yield 2

    with tracelake.span("consumer"):
        for _ in produce():
            with tracelake.span("handle item"):
                pass
    spans = collect()
    assert all(spans.parent(s).name == "consumer" for s in spans.named("handle item"))


def test_generator_stopped_early_ends_cleanly(collect):
    @tracelake.trace(name="endless")
    def endless():
        i = 0
        while True:
            yield i
            i += 1

    for value in endless():
        if value == 2:
            break
    span = collect().one("endless")
    assert span.status == "UNSET" and span.json("output.value") == [0, 1, 2]


def test_span_context_manager(collect):
    with tracelake.span("retrieve", input="what is otel?", kind="retriever", attributes={"k": 3}) as s:
        s.set_output(["doc a", "doc b"])
        s.set_attribute("custom", "yes")
    with pytest.raises(ZeroDivisionError):
        with tracelake.span("boom"):
            1 / 0
    spans = collect()
    retrieve = spans.one("retrieve")
    assert retrieve.attributes["input.value"] == "what is otel?"
    assert retrieve.attributes["input.mime_type"] == "text/plain"
    assert retrieve.json("output.value") == ["doc a", "doc b"]
    assert retrieve.attributes["openinference.span.kind"] == "RETRIEVER"
    assert retrieve.attributes["k"] == 3 and retrieve.attributes["custom"] == "yes"
    assert spans.one("boom").status == "ERROR"


def test_odd_inputs_never_break_the_call(collect):
    class Opaque:
        def __repr__(self):
            raise RuntimeError("no repr")

        def __str__(self):
            raise RuntimeError("no str")

    cycle: list = []
    cycle.append(cycle)

    @tracelake.trace
    def take(thing, loop, data):
        return thing

    thing = Opaque()
    assert take(thing, cycle, b"\x00\x01") is thing  # tracing problems stay inside tracing
    span = collect().one("test_odd_inputs_never_break_the_call.<locals>.take")
    assert span.status == "UNSET"


def test_session_and_user_tag_every_span_beneath(client, server, collect):
    from langchain_core.runnables import RunnableLambda

    @tracelake.trace
    def step():
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        return RunnableLambda(lambda x: x + 1).invoke(1)

    with tracelake.session("chat-42"), tracelake.user("alice"):
        with tracelake.span("turn"):
            step()
    with tracelake.span("untagged"):
        pass

    spans = collect()
    tagged = [s for s in spans if s.name != "untagged"]
    assert {s.scope for s in tagged} == {"tracelake.sdk.manual", "tracelake.sdk.openai", "tracelake.sdk.langchain"}
    for span in tagged:
        assert span.attributes["session.id"] == "chat-42", span
        assert span.attributes["gen_ai.conversation.id"] == "chat-42", span
        assert span.attributes["user.id"] == "alice", span
    assert "session.id" not in spans.one("untagged").attributes
