"""Images, audio and files in messages become typed parts, with mime type, size and content."""
from __future__ import annotations

import base64
import os

import tracelake

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)
PNG_B64 = base64.b64encode(PNG).decode()
WAV_B64 = base64.b64encode(b"RIFF" + os.urandom(1000)).decode()
PDF_B64 = base64.b64encode(b"%PDF-1.7" + os.urandom(500)).decode()


def test_chat_image_audio_and_file_parts(client, collect):
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg?size=large"}},
        {"type": "input_audio", "input_audio": {"data": WAV_B64, "format": "wav"}},
        {"type": "file", "file": {"file_id": "file-abc123"}},
        {"type": "file", "file": {"filename": "report.pdf", "file_data": f"data:application/pdf;base64,{PDF_B64}"}},
    ]
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": content}])
    parts = collect().one("chat gpt-4o").json("gen_ai.input.messages")[0]["parts"]
    assert parts == [
        {"type": "text", "content": "What is in these?"},
        {"type": "blob", "modality": "image", "mime_type": "image/png", "content": PNG_B64, "size": len(PNG)},
        {"type": "uri", "modality": "image", "mime_type": "image/jpeg", "uri": "https://example.com/cat.jpg?size=large"},
        {"type": "blob", "modality": "audio", "mime_type": "audio/wav", "content": WAV_B64, "size": 1004},
        {"type": "file", "modality": "document", "file_id": "file-abc123"},
        {"type": "blob", "modality": "document", "mime_type": "application/pdf", "content": PDF_B64, "size": 508},
    ]
    assert base64.b64decode(parts[1]["content"]) == PNG  # the bytes survive intact


def test_responses_image_and_file_parts(client, collect):
    client.responses.create(
        model="gpt-4.1",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Describe"},
                    {"type": "input_image", "image_url": f"data:image/png;base64,{PNG_B64}", "detail": "auto"},
                    {"type": "input_image", "file_id": "file-img"},
                    {"type": "input_file", "file_url": "https://example.com/paper.pdf"},
                ],
            }
        ],
    )
    parts = collect().one("chat gpt-4.1").json("gen_ai.input.messages")[0]["parts"]
    assert parts[1] == {"type": "blob", "modality": "image", "mime_type": "image/png", "content": PNG_B64, "size": len(PNG)}
    assert parts[2] == {"type": "file", "modality": "image", "file_id": "file-img"}
    assert parts[3] == {"type": "uri", "modality": "document", "mime_type": "application/pdf", "uri": "https://example.com/paper.pdf"}


def test_langchain_content_blocks(collect):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langchain_core.messages import HumanMessage

    model = FakeListChatModel(responses=["a cat"])
    model.invoke(
        [
            HumanMessage(
                content=[
                    {"type": "text", "text": "What is this?"},
                    {"type": "image", "base64": PNG_B64, "mime_type": "image/png"},
                    {"type": "image", "url": "https://example.com/a.webp"},
                    {"type": "audio", "source_type": "base64", "data": WAV_B64, "mime_type": "audio/wav"},
                    {"type": "file", "file_id": "file-9", "mime_type": "application/pdf"},
                ]
            )
        ]
    )
    # No provider span beneath a fake model, so the LangChain span holds the messages itself.
    parts = collect().one("FakeListChatModel").json("gen_ai.input.messages")[0]["parts"]
    assert parts == [
        {"type": "text", "content": "What is this?"},
        {"type": "blob", "modality": "image", "mime_type": "image/png", "content": PNG_B64, "size": len(PNG)},
        {"type": "uri", "modality": "image", "mime_type": "image/webp", "uri": "https://example.com/a.webp"},
        {"type": "blob", "modality": "audio", "mime_type": "audio/wav", "content": WAV_B64, "size": 1004},
        {"type": "file", "modality": "document", "mime_type": "application/pdf", "file_id": "file-9"},
    ]


def test_chat_openai_image_reaches_the_openai_span(server, collect):
    from langchain_core.messages import HumanMessage
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="gpt-4o", base_url=server.base_url, api_key="k", max_retries=0)
    llm.invoke([HumanMessage(content=[{"type": "image", "base64": PNG_B64, "mime_type": "image/png"}])])
    parts = collect().one("chat gpt-4o").json("gen_ai.input.messages")[0]["parts"]
    assert parts == [{"type": "blob", "modality": "image", "mime_type": "image/png", "content": PNG_B64, "size": len(PNG)}]


def test_size_cap_drops_blob_payloads_but_keeps_the_part(client, collect):
    tracelake.autotrace(max_content_bytes=2000)  # the collect fixture restores the setting
    long_text = "x" * 5000
    client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "short"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                    {"type": "text", "text": long_text},
                ],
            }
        ],
    )
    span = collect().one("chat gpt-4o")
    raw = span.attributes["gen_ai.input.messages"]
    assert len(raw.encode()) <= 2000
    parts = span.json("gen_ai.input.messages")[0]["parts"]  # still valid JSON
    assert parts[0] == {"type": "text", "content": "short"}
    assert parts[1] == {
        "type": "blob",
        "modality": "image",
        "mime_type": "image/png",
        "size": len(PNG),
        "content_dropped": "max_content_bytes",
    }
    assert parts[2]["content"].startswith("xxxx") and "[truncated" in parts[2]["content"]
