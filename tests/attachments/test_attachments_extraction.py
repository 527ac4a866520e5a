"""Extraction in the collector's body hook: every attribute family, dedup, limits, bad input."""
from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from att_media import SVG_WITH_SCRIPT, png, wav
from att_otlp import request, spans

from tracelake.attachments import object_key
from tracelake.collector.media import (
    Limits,
    MediaExtractor,
    MediaRefused,
    MediaStoreUnavailable,
    build_body_hook,
    might_have_media,
    omitted_marker,
)
from tracelake.config import Settings
from tracelake.objectstore import ObjectStoreError
from tracelake.objectstore.local import LocalObjectStore

IMAGE = png(64, 48, seed=7)
AUDIO = wav(0.25)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8
B64_IMAGE = base64.b64encode(IMAGE).decode()
B64_AUDIO = base64.b64encode(AUDIO).decode()
IMAGE_REF = f"/api/attachments/{hashlib.sha256(IMAGE).hexdigest()}"
AUDIO_REF = f"/api/attachments/{hashlib.sha256(AUDIO).hexdigest()}"


class CountingStore(LocalObjectStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls: list[tuple[str, str]] = []

    def put(self, key: str, data: bytes, **kw: Any) -> None:
        self.calls.append(("put", key))
        super().put(key, data, **kw)

    def head(self, key: str):  # noqa: ANN201
        self.calls.append(("head", key))
        return super().head(key)


@pytest.fixture()
def store(tmp_path: Path) -> CountingStore:
    return CountingStore(tmp_path / "objects")


@pytest.fixture()
def extract(store: CountingStore) -> MediaExtractor:
    return MediaExtractor(store, Limits(min_bytes=512, max_attachment_bytes=200_000, max_request_media_bytes=500_000))


def only_span(body: bytes) -> dict[str, Any]:
    (span,) = spans(body)
    return span


def refs(span: dict[str, Any]) -> list[dict[str, Any]]:
    return json.loads(span["attrs"].get("tracelake.attachments", "[]"))


def errors(span: dict[str, Any]) -> list[dict[str, Any]]:
    return json.loads(span["attrs"].get("tracelake.attachment_errors", "[]"))


def test_requests_without_media_come_back_untouched(extract: MediaExtractor, store: CountingStore) -> None:
    prose = "Describe the attached chart and say which region grew fastest. " * 200
    body = request({"attrs": {"gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": prose}]}],
                              "ids": ", ".join(hashlib.sha256(bytes([i])).hexdigest() for i in range(40))}})
    assert not might_have_media(body, 512)
    assert extract(body) is body
    # A long base64-like run that is not media: looked at, and the very same bytes come back.
    run = request({"attrs": {"weird": "x" * 5000, "vec": base64.b64encode(bytes(4000)).decode()}})
    assert might_have_media(run, 512)
    assert extract(run) is run
    # Media below the threshold: not even parsed.
    small = request({"attrs": {"img": "data:image/png;base64," + base64.b64encode(IMAGE[:100]).decode()}})
    assert not might_have_media(small, 512)
    assert extract(small) is small
    assert store.calls == [] and extract.stats.requests_parsed == 0


def test_otel_genai_blob_parts_become_uri_parts(extract: MediaExtractor, store: CountingStore) -> None:
    messages = [{"role": "user", "parts": [
        {"type": "text", "content": "describe"},
        {"type": "blob", "modality": "image", "mime_type": "image/png", "content": B64_IMAGE, "name": "cat.png"},
        {"type": "blob", "mime_type": "audio/wav", "content": B64_AUDIO},
    ]}]
    out = only_span(extract(request({"attrs": {
        "gen_ai.input.messages": messages,
        "gen_ai.system_instructions": [{"type": "blob", "modality": "image", "mime_type": "image/png", "content": B64_IMAGE}],
        "gen_ai.output.messages": [{"role": "assistant", "parts": [{"type": "text", "content": "a cat"}]}],
    }})))
    parts = json.loads(out["attrs"]["gen_ai.input.messages"])[0]["parts"]
    assert parts[0] == {"type": "text", "content": "describe"}
    assert parts[1] == {"type": "uri", "modality": "image", "mime_type": "image/png", "uri": IMAGE_REF,
                        "size": len(IMAGE), "name": "cat.png"}
    assert parts[2] == {"type": "uri", "modality": "audio", "mime_type": "audio/wav", "uri": AUDIO_REF,
                        "size": len(AUDIO)}
    assert json.loads(out["attrs"]["gen_ai.system_instructions"])[0]["uri"] == IMAGE_REF
    assert json.loads(out["attrs"]["gen_ai.output.messages"])[0]["parts"][0]["content"] == "a cat"
    assert [(r["attribute"], r["path"], r["uri"]) for r in refs(out)] == [
        ("gen_ai.input.messages", "$[0].parts[1].content", IMAGE_REF),
        ("gen_ai.input.messages", "$[0].parts[2].content", AUDIO_REF),
        ("gen_ai.system_instructions", "$[0].content", IMAGE_REF)]
    assert store.get(object_key(IMAGE_REF[-64:])) == IMAGE and store.get(object_key(AUDIO_REF[-64:])) == AUDIO
    assert store.head(object_key(AUDIO_REF[-64:])).content_type == "audio/wav"
    assert [c[0] for c in store.calls].count("put") == 2  # the image twice in one request: stored once


def test_openai_shapes_in_openinference_and_openllmetry(extract: MediaExtractor) -> None:
    openai_content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{B64_IMAGE}", "detail": "low"}},
        {"type": "input_audio", "input_audio": {"data": B64_AUDIO, "format": "wav"}},
    ]
    prefix = "llm.input_messages.0.message.contents"
    out = only_span(extract(request({"attrs": {
        "input.value": {"model": "gpt-4o", "messages": [{"role": "user", "content": openai_content}]},
        "gen_ai.prompt.0.content": openai_content,
        "gen_ai.prompt.0.role": "user",
        f"{prefix}.1.message_content.type": "image",
        f"{prefix}.1.message_content.image.image.url": f"data:image/png;base64,{B64_IMAGE}",
        f"{prefix}.2.message_content.audio.audio.url": f"data:audio/wav;base64,{B64_AUDIO}",
        "llm.model_name": "gpt-4o",
    }})))
    a = out["attrs"]
    content = json.loads(a["input.value"])["messages"][0]["content"]
    assert content[1] == {"type": "image_url", "image_url": {"url": IMAGE_REF, "detail": "low"}}
    assert content[2] == {"type": "input_audio", "input_audio": {"data": AUDIO_REF, "format": "wav"}}
    assert json.loads(a["gen_ai.prompt.0.content"]) == [openai_content[0], content[1], content[2]]
    assert a[f"{prefix}.1.message_content.image.image.url"] == IMAGE_REF
    assert a[f"{prefix}.2.message_content.audio.audio.url"] == AUDIO_REF
    assert a["llm.model_name"] == "gpt-4o" and a[f"{prefix}.1.message_content.type"] == "image"
    assert {(r["uri"], r["mime_type"]) for r in refs(out)} == {(IMAGE_REF, "image/png"), (AUDIO_REF, "audio/wav")}


def test_other_shapes_events_arrays_and_embedded_text(extract: MediaExtractor) -> None:
    out = only_span(extract(request({
        "attrs": {
            "anthropic": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": B64_IMAGE}}]}],
            "gemini": {"contents": [{"parts": [{"inline_data": {"mime_type": "audio/wav", "data": B64_AUDIO}}]}]},
            "openai.output": {"audio": {"id": "a1", "data": B64_AUDIO, "transcript": "hi", "expires_at": 1}},
            "markdown": f"look: ![x](data:image/png;base64,{B64_IMAGE}) and more text",
            "double": json.dumps({"inner": json.dumps({"url": f"data:image/png;base64,{B64_IMAGE}"})}),
            "urls": ["https://example.com/a.png", f"data:image/png;base64,{B64_IMAGE}"],
        },
        "events": [{"name": "gen_ai.user.message",
                    "attrs": {"content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{B64_IMAGE}"}}]}}],
    })))
    a = out["attrs"]
    assert json.loads(a["anthropic"])[0]["content"][0]["source"] == {"type": "base64", "media_type": "image/png", "data": IMAGE_REF}
    assert json.loads(a["gemini"])["contents"][0]["parts"][0]["inline_data"]["data"] == AUDIO_REF
    assert json.loads(a["openai.output"])["audio"]["data"] == AUDIO_REF
    assert a["markdown"] == f"look: ![x]({IMAGE_REF}) and more text"
    assert json.loads(json.loads(a["double"])["inner"])["url"] == IMAGE_REF
    assert a["urls"] == ["https://example.com/a.png", IMAGE_REF]
    event_content = json.loads(out["events"][0]["attrs"]["content"])
    assert event_content[0]["image_url"]["url"] == IMAGE_REF
    assert "events[0].content" in {r["attribute"] for r in refs(out)}


def test_identical_media_sent_a_thousand_times_is_stored_once(extract: MediaExtractor, store: CountingStore) -> None:
    part = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{B64_IMAGE}"}}
    body = request(*({"attrs": {"gen_ai.prompt.0.content": [part]}} for _ in range(100)))
    for _ in range(10):  # 10 requests of 100 spans
        out = spans(extract(body))
        assert all(json.loads(s["attrs"]["gen_ai.prompt.0.content"])[0]["image_url"]["url"] == IMAGE_REF for s in out)
    assert store.calls == [("head", object_key(IMAGE_REF[-64:])), ("put", object_key(IMAGE_REF[-64:]))]
    assert extract.stats.stored == 1 and extract.stats.extracted == 1000
    # A second collector (fresh memory) finds it already stored: HEAD, no PUT.
    other = MediaExtractor(store, extract.limits)
    other(body)
    assert [c[0] for c in store.calls] == ["head", "put", "head"]
    assert [i.key for i in store.list()] == [object_key(IMAGE_REF[-64:])]


def test_small_media_stays_inline(store: CountingStore) -> None:
    extract = MediaExtractor(store, Limits(min_bytes=len(IMAGE) + 1))
    body = request({"attrs": {"u": f"data:image/png;base64,{B64_IMAGE}"}})
    assert extract(body) is body and store.calls == []


def test_media_over_the_attachment_limit_becomes_a_marker(store: CountingStore) -> None:
    extract = MediaExtractor(store, Limits(min_bytes=100, max_attachment_bytes=len(IMAGE) - 1))
    out = only_span(extract(request({"attrs": {
        "u": f"data:image/png;base64,{B64_IMAGE}",
        "gen_ai.input.messages": [{"role": "user", "parts": [
            {"type": "blob", "modality": "image", "mime_type": "image/png", "content": B64_IMAGE}]}],
        "small": f"data:image/png;base64,{base64.b64encode(IMAGE[:300]).decode()}",
    }})))
    size = len(IMAGE)
    assert out["attrs"]["u"] == omitted_marker("image/png", size, size - 1)
    assert out["attrs"]["u"] == f"[tracelake: image/png attachment of {size} bytes omitted, over the {size - 1}-byte limit]"
    part = json.loads(out["attrs"]["gen_ai.input.messages"])[0]["parts"][0]
    assert part == {"type": "blob", "modality": "image", "mime_type": "image/png", "size": size,
                    "tracelake.omitted": f"over the {size - 1}-byte attachment limit"}
    assert {e["error"] for e in errors(out)} == {"too_large"}
    assert all(e["size"] == size and e["mime_type"] == "image/png" for e in errors(out))
    assert ("put", object_key(hashlib.sha256(IMAGE[:300]).hexdigest())) in store.calls  # below the limit: stored
    assert not any(object_key(IMAGE_REF[-64:]) == key for _, key in store.calls)


def test_request_over_the_media_limit_is_refused(store: CountingStore) -> None:
    extract = MediaExtractor(store, Limits(min_bytes=100, max_request_media_bytes=len(IMAGE) + len(AUDIO) - 1))
    body = request({"attrs": {"a": f"data:image/png;base64,{B64_IMAGE}"}},
                   {"attrs": {"b": f"data:audio/wav;base64,{B64_AUDIO}"}},
                   {"attrs": {"c": f"data:image/png;base64,{B64_IMAGE}"}})  # a repeat does not count twice
    with pytest.raises(MediaRefused) as info:
        extract(body)
    assert info.value.http_status == 413 and info.value.grpc_code == 8
    assert "max_request_media_bytes" in str(info.value)
    assert store.calls == []  # nothing stored for a refused request
    import grpc

    from tracelake.collector.grpc_server import error_reply

    assert error_reply(info.value, 1)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    # One byte more of allowance and the same request passes.
    MediaExtractor(store, Limits(min_bytes=100, max_request_media_bytes=len(IMAGE) + len(AUDIO)))(body)


@pytest.mark.parametrize("payload", [
    "!!!!" + B64_IMAGE[4:],  # characters outside base64
    B64_IMAGE.rstrip("=")[:4 * 1000 + 1],  # truncated: one char in the last quantum
])
def test_broken_base64_is_kept_with_a_marker(extract: MediaExtractor, store: CountingStore, payload: str) -> None:
    blob = {"type": "blob", "modality": "image", "mime_type": "image/png", "content": payload}
    body = request(
        {"attrs": {"u": f"data:image/png;base64,{payload}", "gen_ai.input.messages": [{"role": "user", "parts": [blob]}],
                   "input.value": {"messages": [{"content": [{"type": "input_audio", "input_audio": {"data": payload, "format": "wav"}}]}]},
                   "ok": f"data:audio/wav;base64,{B64_AUDIO}"}},
        {"name": "bystander", "attrs": {"gen_ai.prompt.0.content": "hello", "n": 3}},
    )
    first, second = spans(extract(body))
    before_first, before_second = spans(body)
    assert first["attrs"]["u"] == f"data:image/png;base64,{payload}"  # the text is not lost
    part = json.loads(first["attrs"]["gen_ai.input.messages"])[0]["parts"][0]
    assert part["content"] == payload and part["type"] == "blob" and "invalid base64" in part["tracelake.error"]
    assert first["attrs"]["input.value"] == before_first["attrs"]["input.value"]
    assert first["attrs"]["ok"] == AUDIO_REF  # the rest of the request is still extracted
    assert {(e["attribute"], e["error"]) for e in errors(first)} == {
        ("u", "invalid_base64"), ("gen_ai.input.messages", "invalid_base64"), ("input.value", "invalid_base64")}
    assert second == before_second  # other spans untouched
    assert [c for c in store.calls if c[0] == "put"] == [("put", object_key(AUDIO_REF[-64:]))]


def test_declared_type_contradicting_the_bytes_is_kept_with_a_marker(extract: MediaExtractor, store: CountingStore) -> None:
    b64_jpeg = base64.b64encode(JPEG).decode()
    out = only_span(extract(request({"attrs": {
        "claims_png": f"data:image/png;base64,{b64_jpeg}",
        "claims_wav": {"input_audio": {"data": B64_IMAGE, "format": "wav"}},
        "gen_ai.input.messages": [{"role": "user", "parts": [
            {"type": "blob", "modality": "audio", "mime_type": "audio/mpeg", "content": B64_IMAGE}]}],
        "right": f"data:image/jpg;base64,{b64_jpeg}",  # an alias of image/jpeg: fine
        "unknown_type": f"data:application/x-custom;base64,{b64_jpeg}",  # nothing to contradict
    }})))
    a = out["attrs"]
    assert a["claims_png"] == f"data:image/png;base64,{b64_jpeg}"
    assert json.loads(a["claims_wav"])["input_audio"]["data"] == B64_IMAGE
    part = json.loads(a["gen_ai.input.messages"])[0]["parts"][0]
    assert part["content"] == B64_IMAGE and part["tracelake.error"] == "declared audio/mpeg but the bytes look like image/png"
    jpeg_ref = f"/api/attachments/{hashlib.sha256(JPEG).hexdigest()}"
    assert a["right"] == jpeg_ref and a["unknown_type"] == jpeg_ref
    assert sorted(e["attribute"] for e in errors(out) if e["error"] == "mime_mismatch") == [
        "claims_png", "claims_wav", "gen_ai.input.messages"]
    # The first type seen for identical bytes is the one stored (content-addressed).
    assert store.head(object_key(jpeg_ref[-64:])).content_type == "image/jpeg"


def test_undeclared_types_are_sniffed_and_svg_is_stored_as_svg(extract: MediaExtractor, store: CountingStore) -> None:
    svg_b64 = base64.b64encode(SVG_WITH_SCRIPT).decode()
    out = only_span(extract(request({"attrs": {
        "audio": {"input_audio": {"data": B64_AUDIO}},
        "svg": f"data:image/svg+xml;base64,{svg_b64}",
        "nomime": f"data:;base64,{B64_IMAGE}",
    }})))
    by_attr = {r["attribute"]: r["mime_type"] for r in refs(out)}
    assert by_attr == {"audio": "audio/wav", "svg": "image/svg+xml", "nomime": "image/png"}


def test_base64_variants_decode(extract: MediaExtractor, store: CountingStore) -> None:
    urlsafe = base64.urlsafe_b64encode(IMAGE).decode().rstrip("=")
    wrapped = "\n".join(B64_IMAGE[i:i + 76] for i in range(0, len(B64_IMAGE), 76))
    out = only_span(extract(request({"attrs": {
        "a": f"data:image/png;base64,{urlsafe}",
        "b": {"type": "blob", "mime_type": "image/png", "content": wrapped},
        "c": f"data:image/png;name=cat.png;base64,{B64_IMAGE}",
    }})))
    assert out["attrs"]["a"] == IMAGE_REF and out["attrs"]["c"] == IMAGE_REF
    assert json.loads(out["attrs"]["b"])["uri"] == IMAGE_REF
    assert errors(out) == []


def test_extraction_is_idempotent_and_replaces_client_annotations(extract: MediaExtractor) -> None:
    body = request({"attrs": {"tracelake.attachments": "forged", "u": f"data:image/png;base64,{B64_IMAGE}"}})
    once = extract(body)
    assert [r["uri"] for r in refs(only_span(once))] == [IMAGE_REF]
    assert list(only_span(once)["attrs"]).count("tracelake.attachments") == 1
    assert extract(once) is once  # an extracted body has nothing left to extract


def test_store_failure_asks_the_client_to_retry(tmp_path: Path) -> None:
    class Down(LocalObjectStore):
        def head(self, key: str):  # noqa: ANN201
            raise ObjectStoreError("connection refused")

    extract = MediaExtractor(Down(tmp_path), Limits(min_bytes=100))
    with pytest.raises(MediaStoreUnavailable) as info:
        extract(request({"attrs": {"u": f"data:image/png;base64,{B64_IMAGE}"}}))
    assert info.value.http_status == 503 and info.value.grpc_code == 14


def test_a_bug_in_extraction_never_costs_spans(extract: MediaExtractor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MediaExtractor, "_walk", lambda *a: 1 / 0)
    body = request({"attrs": {"u": f"data:image/png;base64,{B64_IMAGE}"}})
    assert extract(body) is body


def test_build_body_hook_from_settings(tmp_path: Path) -> None:
    hook = build_body_hook(Settings(data_dir=tmp_path, attachment_min_bytes=10, max_attachment_bytes=1000,
                                    max_request_media_bytes=2000))
    assert isinstance(hook, MediaExtractor) and hook.limits == Limits(10, 1000, 2000)
    assert hook.object_store.root == (tmp_path / "attachments").resolve()
    assert build_body_hook(Settings(data_dir=tmp_path, extract_attachments=False)) is None


def test_the_sampled_scan_never_misses_a_payload() -> None:
    """Any base64 run of the threshold length is found, wherever it starts, for any threshold."""
    import random

    from tracelake.collector.media import RunDetector, min_chars

    rng = random.Random(1)
    prose = b"The quick brown fox, who jumps; over the lazy dog. " * 200
    for _ in range(400):
        min_bytes = rng.choice([1, 10, 100, 192, 256, 1000, 1024, 4096])
        detect = RunDetector(min_chars(min_bytes))
        payload = base64.b64encode(rng.randbytes(min_bytes + rng.randrange(3))).rstrip(b"=")
        at = rng.randrange(len(prose))
        body = prose[:at] + b'"' + payload + b'"' + prose[at:]
        assert detect(body), (min_bytes, at)
        assert detect(body.decode())
    assert not RunDetector(min_chars(1024))(prose)


def test_a_repeated_payload_is_not_decoded_again(extract: MediaExtractor, store: CountingStore,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from tracelake.collector.media import walk as media  # where the walk decodes

    decoded: list[int] = []
    real = media._b64decode
    monkeypatch.setattr(media, "_b64decode", lambda raw: decoded.append(len(raw)) or real(raw))
    turn = {"attrs": {"gen_ai.input.messages": [{"role": "user", "parts": [
        {"type": "blob", "modality": "image", "mime_type": "image/png", "content": B64_IMAGE}]}]}}
    for _ in range(5):  # a conversation re-sending its image with every turn
        out = only_span(extract(request(turn)))
        assert json.loads(out["attrs"]["gen_ai.input.messages"])[0]["parts"][0]["uri"] == IMAGE_REF
        assert refs(out)[0]["mime_type"] == "image/png" and refs(out)[0]["size"] == len(IMAGE)
    assert len(decoded) == 1
    # Declared differently, the same text is judged again (and here found to be a mismatch).
    out = only_span(extract(request({"attrs": {"u": f"data:image/jpeg;base64,{B64_IMAGE}"}})))
    assert errors(out)[0]["error"] == "mime_mismatch" and len(decoded) == 2
    # Entries expire, so a blob deleted from the store meanwhile is stored again.
    store.delete(object_key(IMAGE_REF[-64:]))
    monkeypatch.setattr(time, "monotonic", lambda real=time.monotonic: real() + 3600)
    extract(request(turn))
    assert store.get(object_key(IMAGE_REF[-64:])) == IMAGE
