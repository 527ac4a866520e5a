"""Content capture off, the redaction callback, and what stays recorded without content."""
from __future__ import annotations

import re

import pytest
from langchain_core.runnables import RunnableLambda

import tracelake

CONTENT_KEYS = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions", "gen_ai.tool.definitions", "input.value", "output.value")


def test_capture_off_keeps_metadata_but_no_content(client, collect):
    tracelake.autotrace(capture_content=False)

    @tracelake.trace
    def handle(question):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
        client.responses.create(model="gpt-4o-mini", input=question, instructions="secret instructions")
        return RunnableLambda(lambda q: q.upper()).invoke(question)

    handle("my secret question")
    spans = collect()
    assert len(spans) == 4
    for span in spans:
        leaked = [k for k in span.attributes if k.startswith(CONTENT_KEYS) or "secret" in str(span.attributes[k])]
        assert leaked == [], span
    chat = spans.named("chat gpt-4o-mini")[0]
    assert chat.attributes["gen_ai.usage.input_tokens"] > 0
    assert chat.attributes["gen_ai.response.finish_reasons"] == ["stop"]


def test_redaction_callback_masks_every_content_attribute(client, collect):
    seen_keys = set()

    def mask_emails(key, value):
        seen_keys.add(key)
        return re.sub(r"[\w.]+@[\w.]+", "<email>", value)

    tracelake.autotrace(redact=mask_emails)
    with tracelake.span("lookup", input="find bob@example.com") as s:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "mail alice@example.com"}])
        s.set_output({"found": "bob@example.com"})
    spans = collect()
    for span in spans:
        assert "@example.com" not in str(span.attributes), span
    assert spans.one("lookup").attributes["input.value"] == "find <email>"
    assert spans.one("chat gpt-4o-mini").json("gen_ai.output.messages")[0]["parts"][0]["content"] == "echo: mail <email>"
    assert {"input.value", "output.value", "gen_ai.input.messages", "gen_ai.output.messages"} <= seen_keys


def test_redaction_can_drop_and_failures_drop(client, collect):
    def redact(key, value):
        if key == "gen_ai.output.messages":
            raise RuntimeError("redactor bug")
        return None if key == "gen_ai.input.messages" else value

    tracelake.autotrace(redact=redact)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "echo: hi"  # the app is unaffected
    span = collect().one("chat gpt-4o-mini")
    assert "gen_ai.input.messages" not in span.attributes
    assert "gen_ai.output.messages" not in span.attributes  # failing closed: never unredacted
    assert span.attributes["gen_ai.usage.input_tokens"] == 1


@pytest.mark.parametrize("value", ["x" * 3000, {"text": "y" * 3000, "n": 1}])
def test_size_cap_keeps_json_valid(collect, value):
    tracelake.autotrace(max_content_bytes=1000)
    with tracelake.span("big", input=value):
        pass
    span = collect().one("big")
    assert len(span.attributes["input.value"].encode()) <= 1000
    if isinstance(value, dict):
        assert span.json("input.value")["n"] == 1
