"""The real ``tracelake server`` process: --object-store, extraction on OTLP/HTTP and gRPC, serving."""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import grpc
import pytest

from att_media import png, wav
from att_otlp import request
from server_process import start_server
from att_helpers import chat_messages, run_agent

from tracelake.attachments import object_key

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def test_tracelake_server_with_object_store_flag(tmp_path: Path) -> None:
    objects = tmp_path / "objects"
    env = {"TRACELAKE_MAX_REQUEST_MEDIA_BYTES": "60000", "TRACELAKE_ATTACHMENT_MIN_BYTES": "512"}
    with start_server(tmp_path / "data", object_store=objects.as_uri(), env=env) as server:
        image, audio = png(100, 60, seed=11), wav(0.3)
        image_sha, audio_sha = hashlib.sha256(image).hexdigest(), hashlib.sha256(audio).hexdigest()
        server.otlp_url = server.otlp_http_url  # what _run_agent sends to
        run_agent(server, tmp_path, chat_messages(image, audio))

        assert server.wait_for_count("SELECT count() FROM otel_traces WHERE ServiceName = 'attachments-agent' "
                                     "AND SpanAttributes['gen_ai.input.messages'] != ''", 1) == 1
        (messages,) = server.sql("SELECT SpanAttributes['gen_ai.input.messages'] FROM otel_traces "
                                 "WHERE ServiceName = 'attachments-agent' AND SpanAttributes['gen_ai.input.messages'] != ''")[0]
        uris = [p.get("uri") for p in json.loads(messages)[0]["parts"]]
        assert uris[1:] == [f"/api/attachments/{image_sha}", f"/api/attachments/{audio_sha}"]
        assert (objects / object_key(image_sha)).read_bytes() == image
        assert (objects / object_key(audio_sha)).read_bytes() == audio

        import httpx

        r = httpx.get(f"{server.ui_url}/api/attachments/{audio_sha}", headers={"Range": "bytes=44-"}, timeout=30)
        assert r.status_code == 206 and r.content == audio[44:] and r.headers["content-type"] == "audio/wav"

        # gRPC: a request over the media limit is RESOURCE_EXHAUSTED; one under it is extracted.
        b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
        too_much = request(*({"name": "grpc-refused", "attrs": {"u": f"data:image/png;base64,{b64(png(80, 80, seed=s))}"}}
                             for s in range(4)))
        with grpc.insecure_channel(server.otlp_grpc_addr) as channel:
            export = channel.unary_unary(EXPORT)
            with pytest.raises(grpc.RpcError) as info:
                export(too_much, timeout=30)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_request_media_bytes=60000" in info.value.details()
            export(request({"name": "grpc-ok", "attrs": {"u": f"data:image/png;base64,{b64(image)}"}}), timeout=30)
        assert server.wait_for_count("SELECT count() FROM otel_traces WHERE SpanName = 'grpc-ok' "
                                     f"AND SpanAttributes['u'] = '/api/attachments/{image_sha}'", 1) == 1
        assert server.sql("SELECT count() FROM otel_traces WHERE SpanName = 'grpc-refused'")[0][0] == 0
        # The server feeds the ClickHouse index of blobs (flushed about once a second).
        assert server.wait_for_count("SELECT uniqExact(Sha256) FROM attachments", 2) == 2
        assert sorted(map(tuple, server.sql("SELECT Sha256, any(MimeType), max(Size) FROM attachments GROUP BY Sha256"))) == \
            sorted([(image_sha, "image/png", len(image)), (audio_sha, "audio/wav", len(audio))])
