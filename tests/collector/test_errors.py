"""Every refusal, both protocols: one table says what the client sees (fast, in-process)."""
from __future__ import annotations

import grpc
import orjson
import pytest
from google.rpc import error_details_pb2, status_pb2

from tracelake.collector import errors
from tracelake.collector.grpc_server import error_reply
from tracelake.collector.http import error_response

# class -> (HTTP status, gRPC code, retryable, plain-text HTTP body, metrics outcome)
EXPECTED = {
    errors.BadRequest: (400, grpc.StatusCode.INVALID_ARGUMENT, False, False, "bad_request"),
    errors.TooLarge: (413, grpc.StatusCode.RESOURCE_EXHAUSTED, False, False, "too_large"),
    errors.UnsupportedMediaType: (415, grpc.StatusCode.INVALID_ARGUMENT, False, True, "unsupported_media_type"),
    errors.UnsupportedEncoding: (415, grpc.StatusCode.INVALID_ARGUMENT, False, True, "unsupported_encoding"),
    errors.Backpressure: (503, grpc.StatusCode.UNAVAILABLE, True, False, "backpressure"),
    errors.NotStored: (503, grpc.StatusCode.UNAVAILABLE, True, False, "store_error"),
    errors.MediaRefused: (413, grpc.StatusCode.RESOURCE_EXHAUSTED, False, False, "refused"),
    errors.MediaStoreUnavailable: (503, grpc.StatusCode.UNAVAILABLE, True, False, "refused"),
}


def test_the_table_covers_every_error_class():
    assert set(EXPECTED) == set(errors.ALL)
    assert all(issubclass(cls, errors.IngestError) for cls in errors.ALL)


@pytest.mark.parametrize("cls", errors.ALL, ids=lambda c: c.__name__)
@pytest.mark.parametrize("as_json", [False, True], ids=["protobuf", "json"])
def test_http_reply(cls, as_json):
    status, code, retryable, plain, _ = EXPECTED[cls]
    response = error_response(cls("what went wrong"), as_json, retry_after_s=7)
    assert response.status_code == status
    assert response.headers.get("retry-after") == ("7" if retryable else None)
    if plain:
        assert response.media_type == "text/plain" and b"what went wrong" in response.body
    elif as_json:
        assert orjson.loads(response.body) == {"code": code.value[0], "message": "what went wrong"}
    else:
        body = status_pb2.Status.FromString(response.body)
        assert (body.code, body.message) == (code.value[0], "what went wrong")


@pytest.mark.parametrize("cls", errors.ALL, ids=lambda c: c.__name__)
def test_grpc_reply(cls):
    _, code, retryable, _, _ = EXPECTED[cls]
    got_code, details, trailers = error_reply(cls("what went wrong"), retry_after_s=7)
    assert (got_code, details) == (code, "what went wrong")
    if retryable:
        [(key, value)] = trailers
        assert key == "google.rpc.retryinfo-bin"
        assert error_details_pb2.RetryInfo.FromString(value).retry_delay.seconds == 7
    else:
        assert trailers == ()


@pytest.mark.parametrize("cls", errors.ALL, ids=lambda c: c.__name__)
def test_metrics_outcome(cls):
    assert cls("x").outcome == EXPECTED[cls][4]
