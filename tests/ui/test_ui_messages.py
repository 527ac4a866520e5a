"""Span attributes -> messages, for the three conventions, and media classification safety."""
from __future__ import annotations

import json

from tracelake.ui.messages import media_from_url, normalize, parts_from_content

SHA = "d" * 64


def types(msg):
    return [p.type for p in msg.parts]


def test_otel_genai_messages_parts_and_system():
    io = normalize({
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be nice."}]),
        "gen_ai.input.messages": json.dumps([
            {"role": "user", "parts": [{"type": "text", "content": "hi"},
                                       {"type": "uri", "modality": "image", "mime_type": "image/png", "uri": f"/api/attachments/{SHA}"}]},
            {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "f", "arguments": {"a": 1}}]},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": {"ok": True}}]},
        ]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "finish_reason": "stop",
                                               "parts": [{"type": "reasoning", "content": "think"}, {"type": "text", "content": "done"}]}]),
    })
    assert io.conventions == ["otel-genai"]
    assert io.system[0].parts[0].text == "Be nice."
    assert [m.role for m in io.input] == ["user", "assistant", "tool"]
    assert types(io.input[0]) == ["text", "media"]
    media = io.input[0].parts[1].media
    assert (media.modality, media.sha256, media.src) == ("image", SHA, f"/api/attachments/{SHA}")
    call = io.input[1].parts[0]
    assert (call.type, call.name, call.id, json.loads(call.text)) == ("tool_call", "f", "c1", {"a": 1})
    assert io.input[2].parts[0].type == "tool_result" and json.loads(io.input[2].parts[0].text) == {"ok": True}
    assert io.output[0].finish_reason == "stop" and types(io.output[0]) == ["reasoning", "text"]
    assert [m.sha256 for m in io.attachments] == [SHA]


def test_genai_blob_and_audio_and_file_parts():
    io = normalize({"gen_ai.input.messages": json.dumps([{"role": "user", "parts": [
        {"type": "blob", "modality": "image", "mime_type": "image/png", "content": "iVBORw0KGgo="},
        {"type": "uri", "modality": "audio", "mime_type": "audio/wav", "uri": f"/api/attachments/{SHA}"},
        {"type": "file", "mime_type": "application/pdf", "uri": f"/api/attachments/{'e' * 64}", "size": 10},
    ]}])})
    blob, audio, pdf = (p.media for p in io.input[0].parts)
    assert blob.modality == "image" and blob.src.startswith("data:image/png;base64,")
    assert audio.modality == "audio" and audio.src == f"/api/attachments/{SHA}"
    assert pdf.modality == "file" and pdf.mime_type == "application/pdf" and pdf.size == 10


def test_openinference_flattened_messages_sorted_numerically_with_gaps():
    attrs = {
        "llm.input_messages.0.message.role": "system", "llm.input_messages.0.message.content": "sys",
        "llm.input_messages.10.message.role": "tool", "llm.input_messages.10.message.content": "{\"t\": 1}",
        "llm.input_messages.10.message.tool_call_id": "x",
        "llm.input_messages.2.message.role": "user",
        "llm.input_messages.2.message.contents.0.message_content.type": "text",
        "llm.input_messages.2.message.contents.0.message_content.text": "look",
        "llm.input_messages.2.message.contents.1.message_content.type": "image",
        "llm.input_messages.2.message.contents.1.message_content.image.image.url": "https://example.com/cat.png",
        "llm.input_messages.3.message.role": "assistant",
        "llm.input_messages.3.message.tool_calls.0.tool_call.id": "x",
        "llm.input_messages.3.message.tool_calls.0.tool_call.function.name": "weather",
        "llm.input_messages.3.message.tool_calls.0.tool_call.function.arguments": "{\"city\": \"Paris\"}",
        "llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": "answer",
        "input.value": "ignored when messages exist",
    }
    io = normalize(attrs)
    assert "openinference" in io.conventions
    assert [m.role for m in io.system] == ["system"]
    assert [m.role for m in io.input] == ["user", "assistant", "tool"]
    assert types(io.input[0]) == ["text", "media"] and io.input[0].parts[1].media.src == "https://example.com/cat.png"
    assert io.input[1].parts[0].name == "weather" and json.loads(io.input[1].parts[0].text) == {"city": "Paris"}
    assert io.input[2].parts[0].type == "tool_result" and io.input[2].parts[0].id == "x"
    assert io.output[0].parts[0].text == "answer"
    assert io.input_value is None


def test_openinference_values_and_documents():
    io = normalize({"input.value": '{"q": 1}', "input.mime_type": "application/json", "output.value": "plain",
                    "retrieval.documents.1.document.content": "second", "retrieval.documents.1.document.score": "0.5",
                    "retrieval.documents.0.document.content": "first", "retrieval.documents.0.document.id": "d0",
                    "retrieval.documents.0.document.metadata": '{"src": "x"}'})
    assert io.input_value.json and io.input_value.text == '{\n  "q": 1\n}'
    assert not io.output_value.json and io.output_value.text == "plain"
    assert [d.content for d in io.documents] == ["first", "second"]
    assert io.documents[0].id == "d0" and io.documents[1].score == 0.5 and '"src"' in io.documents[0].metadata


def test_openllmetry_prompts_completions_tool_calls():
    io = normalize({
        "gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": "terse",
        "gen_ai.prompt.1.role": "user", "gen_ai.prompt.1.content": "weather?",
        "gen_ai.prompt.2.role": "tool", "gen_ai.prompt.2.content": "4C", "gen_ai.prompt.2.tool_call_id": "c0",
        "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.finish_reason": "tool_calls",
        "gen_ai.completion.0.tool_calls.0.name": "get_weather", "gen_ai.completion.0.tool_calls.0.id": "c1",
        "gen_ai.completion.0.tool_calls.0.arguments": '{"city": "Oslo"}',
    })
    assert io.conventions == ["openllmetry"]
    assert io.system[0].parts[0].text == "terse"
    assert [m.role for m in io.input] == ["user", "tool"]
    assert io.input[1].parts[0].type == "tool_result"
    out = io.output[0]
    assert out.finish_reason == "tool_calls" and out.parts[0].name == "get_weather" and out.parts[0].id == "c1"


def test_openllmetry_content_as_openai_parts_and_entity_io():
    content = json.dumps([{"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": f"/api/attachments/{SHA}"}},
                          {"type": "input_audio", "input_audio": {"data": f"/api/attachments/{'f' * 64}", "format": "wav"}}])
    io = normalize({"gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": content,
                    "traceloop.entity.input": '{"inputs": {"a": 1}}'})
    parts = io.input[0].parts
    assert [p.type for p in parts] == ["text", "media", "media"]
    assert parts[1].media.modality == "image" and parts[2].media.modality == "audio"
    assert parts[2].media.mime_type == "audio/wav"
    assert io.input_value is None  # messages win over the entity input
    io2 = normalize({"traceloop.entity.input": '{"inputs": {"a": 1}}', "traceloop.entity.output": "x"})
    assert io2.input_value.json and io2.output_value.text == "x"


def test_genai_tool_span_values():
    io = normalize({"gen_ai.tool.call.arguments": '{"id": 1}', "gen_ai.tool.call.result": "ok"})
    assert io.input_value.json and io.output_value.text == "ok"


def test_media_safety():
    assert media_from_url("javascript:alert(1)", "image").src == ""
    assert media_from_url("JaVaScRiPt:alert(1)").src == ""
    svg = media_from_url("data:image/svg+xml;base64,PHN2Zz4=", "image")
    assert svg.src == "" and svg.mime_type == "image/svg+xml"
    assert media_from_url("data:text/html;base64,PHNjcmlwdD4=").src == ""
    assert media_from_url("data:image/png;base64,iVBORw0KGgo=").src.startswith("data:image/png")
    assert media_from_url('data:image/png;base64,AAA" onerror="x').src == ""
    assert media_from_url("https://example.com/a.png").modality == "image"
    assert media_from_url('https://example.com/a.png" onerror=1').src == ""
    assert media_from_url("/api/attachments/../../etc/passwd").src == ""
    assert media_from_url("//evil.example/x.png").src == ""


def test_garbage_never_raises():
    for attrs in [{"gen_ai.input.messages": "not json"}, {"gen_ai.input.messages": "[1, null, \"x\", {}]"},
                  {"gen_ai.input.messages": '{"role": "user"}'}, {"gen_ai.output.messages": "[{\"parts\": 5}]"},
                  {"llm.input_messages.x.message.role": "user"}, {"gen_ai.prompt.0.content": "[{\"type\": 1}]"},
                  {"retrieval.documents": "[1, {\"content\": 2}]"}, {"input.value": "[" * 5000}]:
        normalize(attrs)
    assert parts_from_content(None) == []
