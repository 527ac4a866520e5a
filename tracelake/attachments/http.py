"""``GET|HEAD /api/attachments/{sha256}``: a stored blob, safe to open in a browser.

The id must be 64 lower-case hex digits before any storage is touched, and the object key is
built from it alone, so no request can name anything outside ``blobs/sha256/``. Responses carry
the stored type, ``nosniff``, a CSP under which no script runs even if the blob is HTML or SVG,
and ``Content-Disposition: attachment`` for every type not on the inline allow-list. Single byte
ranges are served (206 / 416) so audio and video seek; blobs are immutable, hence the long cache.
"""
from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tracelake.attachments import SHA256_RE, mime, object_key
from tracelake.auth.roles import Perm
from tracelake.auth.routes import needs
from tracelake.objectstore import ObjectNotFound, ObjectStore, ObjectStoreError

router = APIRouter(tags=["attachments"])

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_SECURITY = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Referrer-Policy": "no-referrer",
}


def _not_found() -> Response:
    return Response("attachment not found\n", status_code=404, media_type="text/plain", headers=_SECURITY)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(start, end inclusive) for one satisfiable range; None to send everything (no header,
    a syntax we ignore, several ranges); 'unsatisfiable' for 416."""
    if not header:
        return None
    m = _RANGE.fullmatch(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None  # RFC 9110: an invalid Range is ignored (multi-range too: we send it all)
    first, last = m.group(1), m.group(2)
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if last and int(last) < start:
            return None
        if start >= size:
            return "unsatisfiable"
        return start, end
    suffix = int(last)  # bytes=-N: the last N bytes
    if suffix == 0 or size == 0:
        return "unsatisfiable"
    return max(0, size - suffix), size - 1


@router.get("/api/attachments/{sha256}", response_class=Response,
            summary="An attachment extracted from spans, by sha256 (byte ranges supported)",
            dependencies=[needs(Perm.READ)])
@router.head("/api/attachments/{sha256}", include_in_schema=False, dependencies=[needs(Perm.READ)])
def get_attachment(sha256: str, request: Request) -> Response:
    if not SHA256_RE.fullmatch(sha256):
        return _not_found()
    store: ObjectStore = request.app.state.object_store
    key = object_key(sha256)
    try:
        info = store.head(key)
    except ObjectStoreError as exc:
        return Response(f"attachment store unavailable: {exc}\n", status_code=503, media_type="text/plain",
                        headers={**_SECURITY, "Retry-After": "1"})
    if info is None:
        return _not_found()
    content_type = mime.normalize(info.content_type) or mime.OCTET_STREAM
    etag = f'"{sha256}"'
    headers = {
        **_SECURITY,
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Cache-Control": "private, max-age=31536000, immutable",
        "Content-Disposition": f'{mime.disposition(content_type)}; filename="{sha256[:16]}.{mime.extension(content_type)}"',
    }
    if sha256 in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    wanted = parse_range(request.headers.get("range"), info.size)
    if request.headers.get("if-range") not in (None, etag):
        wanted = None  # blobs never change, but honour the rule: a foreign validator gets it all
    if wanted == "unsatisfiable":
        headers["Content-Range"] = f"bytes */{info.size}"
        return Response(status_code=416, headers=headers, media_type=content_type)
    status, start, length = 200, 0, info.size
    if isinstance(wanted, tuple):
        start, end = wanted
        status, length = 206, end - start + 1
        headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    if request.method == "HEAD":
        headers["Content-Length"] = str(length)
        return Response(status_code=status, headers=headers, media_type=content_type)
    try:
        body = store.get(key, start, length) if status == 206 else store.get(key)
    except ObjectNotFound:
        return _not_found()
    except ObjectStoreError as exc:
        return Response(f"attachment store unavailable: {exc}\n", status_code=503, media_type="text/plain",
                        headers={**_SECURITY, "Retry-After": "1"})
    return Response(body, status_code=status, headers=headers, media_type=content_type)
