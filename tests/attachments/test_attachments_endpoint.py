"""GET/HEAD /api/attachments/{sha256} on a real HTTP server: headers, ranges, traversal attempts."""
from __future__ import annotations

import hashlib
import http.client
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from server_process import free_port
from att_media import SVG_WITH_SCRIPT, png, wav

from tracelake.attachments import install, object_key
from tracelake.attachments.http import parse_range
from tracelake.config import Settings
from tracelake.objectstore.local import LocalObjectStore

IMAGE, AUDIO = png(40, 30, seed=3), wav(0.2)
HTML = b"<html><body><script>alert(1)</script></body></html>"


class SpyStore(LocalObjectStore):
    """Records every key the endpoint asks for."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.asked: list[str] = []

    def head(self, key: str):  # noqa: ANN201
        self.asked.append(key)
        return super().head(key)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        self.asked.append(key)
        return super().get(key, offset, length)


def _put(store: LocalObjectStore, data: bytes, mime: str) -> str:
    sha = hashlib.sha256(data).hexdigest()
    store.put(object_key(sha), data, content_type=mime)
    return sha


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    root = tmp_path_factory.mktemp("att")
    store = SpyStore(root / "objects")
    (root / "secret.txt").write_text("top secret")  # beside the store: must never be served
    app = FastAPI()
    app.state.settings = Settings(data_dir=root)
    app.state.object_store = store
    install(app)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started, "uvicorn did not start within 60 s"
    ns = SimpleNamespace(port=port, store=store, image=_put(store, IMAGE, "image/png"),
                         audio=_put(store, AUDIO, "audio/wav"), svg=_put(store, SVG_WITH_SCRIPT, "image/svg+xml"),
                         html=_put(store, HTML, "text/html"), other=_put(store, b"\x00binary" * 10, "application/x-foo"))
    yield ns
    srv.should_exit = True
    thread.join(10)


def fetch(server: SimpleNamespace, path: str, method: str = "GET", headers: dict[str, str] | None = None) -> Any:
    """Send the path exactly as written (http.client does not normalise '..' or '%2e')."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest(method, path, skip_accept_encoding=True)
    for k, v in (headers or {}).items():
        conn.putheader(k, v)
    conn.endheaders()
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return SimpleNamespace(status=r.status, headers={k.lower(): v for k, v in r.getheaders()}, body=body)


def test_serves_the_blob_with_safe_headers(server: SimpleNamespace) -> None:
    r = fetch(server, f"/api/attachments/{server.image}")
    assert r.status == 200 and r.body == IMAGE
    h = r.headers
    assert h["content-type"] == "image/png"
    assert h["content-length"] == str(len(IMAGE))
    assert h["content-disposition"] == f'inline; filename="{server.image[:16]}.png"'
    assert h["x-content-type-options"] == "nosniff"
    assert h["content-security-policy"] == "default-src 'none'; sandbox"
    assert h["accept-ranges"] == "bytes"
    assert h["etag"] == f'"{server.image}"'
    assert "immutable" in h["cache-control"]
    assert fetch(server, f"/api/attachments/{server.image}", headers={"If-None-Match": h["etag"]}).status == 304


def test_head(server: SimpleNamespace) -> None:
    r = fetch(server, f"/api/attachments/{server.audio}", "HEAD")
    assert r.status == 200 and r.body == b"" and r.headers["content-length"] == str(len(AUDIO))
    assert r.headers["content-type"] == "audio/wav"
    r = fetch(server, f"/api/attachments/{server.audio}", "HEAD", {"Range": "bytes=0-9"})
    assert r.status == 206 and r.headers["content-length"] == "10"
    assert fetch(server, f"/api/attachments/{'0' * 64}", "HEAD").status == 404


@pytest.mark.parametrize("header,expected", [
    ("bytes=0-0", (0, 0)), ("bytes=10-19", (10, 19)), ("bytes=100-", (100, None)), ("bytes=-16", (-16, None)),
    ("bytes=0-999999999", (0, None)),
])
def test_ranges(server: SimpleNamespace, header: str, expected: tuple[int, int | None]) -> None:
    r = fetch(server, f"/api/attachments/{server.audio}", headers={"Range": header})
    start, end = expected
    want = AUDIO[start:] if end is None else AUDIO[start:end + 1]
    first = start if start >= 0 else len(AUDIO) + start
    assert r.status == 206 and r.body == want
    assert r.headers["content-range"] == f"bytes {first}-{first + len(want) - 1}/{len(AUDIO)}"
    assert r.headers["content-length"] == str(len(want))


@pytest.mark.parametrize("header", [f"bytes={len(AUDIO)}-", f"bytes={len(AUDIO) + 5}-{len(AUDIO) + 9}", "bytes=-0"])
def test_unsatisfiable_range(server: SimpleNamespace, header: str) -> None:
    r = fetch(server, f"/api/attachments/{server.audio}", headers={"Range": header})
    assert r.status == 416 and r.headers["content-range"] == f"bytes */{len(AUDIO)}"


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "items=0-5", "bytes=abc", "bytes=9-3", "bytes=-"])
def test_ranges_we_ignore_send_everything(server: SimpleNamespace, header: str) -> None:
    r = fetch(server, f"/api/attachments/{server.audio}", headers={"Range": header})
    assert r.status == 200 and r.body == AUDIO


def test_if_range_with_another_validator_sends_everything(server: SimpleNamespace) -> None:
    r = fetch(server, f"/api/attachments/{server.audio}", headers={"Range": "bytes=0-3", "If-Range": '"other"'})
    assert r.status == 200 and r.body == AUDIO


def test_parse_range_edge_cases() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-", 0) == "unsatisfiable"
    assert parse_range("bytes=-5", 3) == (0, 2)


@pytest.mark.parametrize("sha_attr,disposition", [
    ("svg", "attachment"), ("html", "attachment"), ("other", "attachment"), ("audio", "inline")])
def test_active_content_is_only_ever_a_download(server: SimpleNamespace, sha_attr: str, disposition: str) -> None:
    sha = getattr(server, sha_attr)
    r = fetch(server, f"/api/attachments/{sha}")
    assert r.status == 200
    assert r.headers["content-disposition"].startswith(disposition + ";")
    assert r.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert r.headers["x-content-type-options"] == "nosniff"
    if sha_attr == "svg":
        assert r.headers["content-type"] == "image/svg+xml" and b"<script>" in r.body
        assert r.headers["content-disposition"].endswith('.svg"')


TRAVERSALS = [
    "/api/attachments/../../secret.txt",
    "/api/attachments/..%2f..%2fsecret.txt",
    "/api/attachments/%2e%2e/%2e%2e/secret.txt",
    "/api/attachments/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/api/attachments/..",
    "/api/attachments/%2e%2e",
    "/api/attachments//etc/passwd",
    "/api/attachments/%2fetc%2fpasswd",
    "/api/attachments/blobs%2fsha256%2f00",
    "/api/attachments/" + "A" * 64,
    "/api/attachments/" + "0" * 63,
    "/api/attachments/" + "0" * 65,
    "/api/attachments/" + "0" * 63 + "%00",
    "/api/attachments/" + "0" * 64 + "%00",
    "/api/attachments/" + "g" * 64,
    "/api/attachments/" + "0" * 64 + "%2f..",
    "/api/attachments/" + "0" * 64 + ".png",
    "/api/attachments/%20" + "0" * 63,
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_and_malformed_ids_are_404_without_touching_storage(server: SimpleNamespace, path: str) -> None:
    server.store.asked.clear()
    r = fetch(server, path)
    assert r.status == 404
    assert b"top secret" not in r.body
    assert server.store.asked == []


def test_uppercase_of_a_stored_id_is_404(server: SimpleNamespace) -> None:
    assert fetch(server, f"/api/attachments/{server.image.upper()}").status == 404


def test_unknown_id_is_404(server: SimpleNamespace) -> None:
    server.store.asked.clear()
    r = fetch(server, f"/api/attachments/{'ab' * 32}")
    assert r.status == 404 and r.headers["x-content-type-options"] == "nosniff"
    assert server.store.asked == [object_key("ab" * 32)]


def test_install_opens_the_configured_store(tmp_path: Path) -> None:
    app = FastAPI()
    app.state.settings = Settings(data_dir=tmp_path)
    install(app)
    assert isinstance(app.state.object_store, LocalObjectStore)
    assert app.state.object_store.root == (tmp_path / "attachments").resolve()
    assert "/api/attachments/{sha256}" in app.openapi()["paths"]
