"""End to end: the real SDK in an app process -> OTLP/HTTP -> collector with extraction ->
ClickHouse + object store (local directory or S3 over HTTP) -> GET /api/attachments/{sha256}."""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from att_helpers import chat_messages, run_agent, stored_blob
from att_media import png, wav



@pytest.mark.parametrize("backend", ["file", "s3"])
def test_sdk_chat_with_image_and_audio(backend: str, start_stack, tmp_path: Path, request) -> None:
    if backend == "file":
        settings = {"object_store": (tmp_path / "objects").as_uri()}
    else:
        bucket = request.getfixturevalue("s3_bucket")
        settings = {"object_store": f"s3://{bucket}/tracelake/att", "s3_endpoint_url": request.getfixturevalue("moto_endpoint")}
    stack = start_stack(**settings)
    image, audio = png(120, 80, seed=1), wav(0.5)
    image_sha, audio_sha = hashlib.sha256(image).hexdigest(), hashlib.sha256(audio).hexdigest()

    run_agent(stack, tmp_path, chat_messages(image, audio))

    rows = stack.wait_sql("SELECT SpanAttributes['gen_ai.input.messages'] AS messages, "
                          "SpanAttributes['tracelake.attachments'] AS refs, "
                          "length(toString(SpanAttributes)) AS attr_bytes "
                          "FROM otel_traces WHERE ServiceName = 'attachments-agent' AND messages != ''")
    assert len(rows) == 1, rows
    row = rows[0]
    # The span holds references in place of the media, in the part's place in the message.
    parts = json.loads(row["messages"])[0]["parts"]
    assert parts[0]["type"] == "text"
    assert parts[1] == {"type": "uri", "modality": "image", "mime_type": "image/png",
                        "uri": f"/api/attachments/{image_sha}", "size": len(image)}
    assert parts[2] == {"type": "uri", "modality": "audio", "mime_type": "audio/wav",
                        "uri": f"/api/attachments/{audio_sha}", "size": len(audio)}
    assert "base64" not in row["messages"]
    assert row["attr_bytes"] < 3000  # no media left in ClickHouse (the image alone is ~38 KB)
    refs = json.loads(row["refs"])
    assert {(r["uri"], r["mime_type"], r["size"]) for r in refs} == {
        (f"/api/attachments/{image_sha}", "image/png", len(image)),
        (f"/api/attachments/{audio_sha}", "audio/wav", len(audio))}

    # The blobs in the store are byte-identical.
    assert stored_blob(backend, settings, image_sha) == image
    assert stored_blob(backend, settings, audio_sha) == audio

    # The endpoint serves them with the stored type and safe headers.
    r = stack.http.get(f"/api/attachments/{image_sha}")
    assert r.status_code == 200 and r.content == image
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-disposition"].startswith("inline")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert r.headers["accept-ranges"] == "bytes"

    # Audio seeks: byte ranges.
    r = stack.http.get(f"/api/attachments/{audio_sha}", headers={"Range": "bytes=100-1099"})
    assert r.status_code == 206 and r.content == audio[100:1100]
    assert r.headers["content-range"] == f"bytes 100-1099/{len(audio)}"
    assert r.headers["content-type"] == "audio/wav"
    r = stack.http.get(f"/api/attachments/{audio_sha}", headers={"Range": "bytes=-44"})
    assert r.status_code == 206 and r.content == audio[-44:]
    r = stack.http.get(f"/api/attachments/{audio_sha}", headers={"Range": f"bytes={len(audio)}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(audio)}"
    r = stack.http.head(f"/api/attachments/{audio_sha}")
    assert r.status_code == 200 and r.headers["content-length"] == str(len(audio)) and r.content == b""

    # The ClickHouse index knows both blobs (flushed about once a second).
    index = stack.wait_sql("SELECT Sha256, any(MimeType) AS mime, max(Size) AS size FROM attachments "
                           "GROUP BY Sha256 ORDER BY Sha256", lambda rows: len(rows) == 2)
    assert {(r["Sha256"], r["mime"], r["size"]) for r in index} == {
        (image_sha, "image/png", len(image)), (audio_sha, "audio/wav", len(audio))}


def test_limits_and_bad_input_through_the_collector(start_stack, tmp_path: Path) -> None:
    from google.rpc import status_pb2

    from att_media import SVG_WITH_SCRIPT
    from att_otlp import request

    objects = tmp_path / "objects"
    stack = start_stack(object_store=objects.as_uri(), attachment_min_bytes=256, max_attachment_bytes=30_000,
                        max_request_media_bytes=60_000)
    small, big = png(40, 30, seed=5), png(120, 100, seed=6)  # ~3.7 KB and ~36 KB
    assert len(small) < 30_000 < len(big)
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731

    # Over the per-request limit: refused as a whole with a clear message; nothing stored.
    many = request(*({"name": "refused", "attrs": {"img": f"data:image/png;base64,{b64(png(80, 80, seed=s))}"}}
                     for s in range(4)))
    r = stack.post_otlp(many)
    assert r.status_code == 413
    assert "max_request_media_bytes=60000" in status_pb2.Status.FromString(r.content).message

    svg_sha = hashlib.sha256(SVG_WITH_SCRIPT).hexdigest()
    body = request(
        {"name": "media", "attrs": {
            "too_big": f"data:image/png;base64,{b64(big)}",
            "broken": "data:image/png;base64,!!!!" + b64(small)[4:],
            "mismatch": f"data:audio/wav;base64,{b64(small)}",
            "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [
                {"type": "blob", "modality": "image", "mime_type": "image/svg+xml", "content": b64(SVG_WITH_SCRIPT)}]}]),
        }},
        {"name": "bystander", "attrs": {"gen_ai.prompt.0.content": "plain text", "input.value": '{"q": 1}'}},
    )
    for _ in range(20):  # the same request over and over (an exporter retrying, or a loop)
        assert stack.post_otlp(body).status_code == 200

    rows = stack.wait_sql("SELECT SpanName, SpanAttributes AS a FROM otel_traces ORDER BY SpanName LIMIT 1 BY SpanId",
                          lambda rows: len(rows) == 2)
    assert [row["SpanName"] for row in rows] == ["bystander", "media"]
    bystander, media = dict(rows[0]["a"]), dict(rows[1]["a"])  # maps arrive as key/value pairs
    assert bystander["gen_ai.prompt.0.content"] == "plain text" and "tracelake.attachment_errors" not in bystander
    assert media["too_big"] == f"[tracelake: image/png attachment of {len(big)} bytes omitted, over the 30000-byte limit]"
    assert media["broken"] == "data:image/png;base64,!!!!" + b64(small)[4:]
    assert media["mismatch"] == f"data:audio/wav;base64,{b64(small)}"
    errors = {e["attribute"]: e["error"] for e in json.loads(media["tracelake.attachment_errors"])}
    assert errors == {"too_big": "too_large", "broken": "invalid_base64", "mismatch": "mime_mismatch"}
    part = json.loads(media["gen_ai.input.messages"])[0]["parts"][0]
    assert part["uri"] == f"/api/attachments/{svg_sha}" and part["mime_type"] == "image/svg+xml"

    # Twenty requests, one blob; the SVG is served as a download with no script allowed.
    assert [p.name for p in objects.rglob("*") if p.is_file() and not p.name.startswith(".")] == [svg_sha]
    r = stack.http.get(f"/api/attachments/{svg_sha}")
    assert r.status_code == 200 and r.content == SVG_WITH_SCRIPT
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert stack.http.get("/api/attachments/" + "0" * 64).status_code == 404
    assert stack.sql("SELECT count() AS n FROM otel_traces WHERE SpanName = 'refused'")[0]["n"] == 0
