"""Issue 19, finding 4: a blob's sha256 is not enough to read it.

Before, ``/api/attachments/<sha>`` was served to a caller when some span it could read *named* the
blob; a span of project A that merely contained ``/api/attachments/<B's sha>`` made B's blob
readable to A, and told A whether a given file existed anywhere on the server. Now a blob is
served only when it was lifted from a span of the caller's own project (its attachments index
row), and any other sha gets the very answer an unknown one gets. Sending the same bytes shares
storage, never access: A then reads the blob it sent itself.

Read probes on the shared ``stack``; the spans sent here are new traces of their own.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets

import pytest

from att_media import png
from auth_stack import ADMIN_KEY, post_spans
from otlp_spans import new_trace_id, span
from server_process import wait_until

_SAME = ("content-type", "content-security-policy", "x-content-type-options")


@pytest.fixture(scope="module")
def named(stack):
    """A's spans that name B's blob in text and in a forged ``tracelake.attachments`` attribute."""
    b_sha = stack.attachments["B"]
    ref = f"/api/attachments/{b_sha}"
    forged = json.dumps([{"uri": ref, "mime_type": "image/png", "size": 10, "attribute": "x", "path": "$"}])
    post_spans(stack.server, stack.keys["A:ingest"], [span("a-names-b", new_trace_id(), attrs={
        "output.value": f"here is the picture: ![img]({ref})", "tracelake.attachments": forged})])
    stack.server.wait_loaded(ADMIN_KEY)
    return b_sha


def test_naming_another_projects_blob_does_not_make_it_readable(stack, named):
    for role in ("viewer", "engineer", "ops"):
        a = stack.client(f"A:{role}")
        assert a.get(f"/api/attachments/{named}").status_code == 404, role
        assert a.http.head(f"/api/attachments/{named}").status_code == 404, role
        assert a.get(f"/api/attachments/{named}", headers={"Range": "bytes=0-3"}).status_code == 404, role
    assert stack.client("B:viewer").get(f"/api/attachments/{named}").status_code == 200
    assert stack.admin.get(f"/api/attachments/{named}").status_code == 200


def test_another_projects_blob_answers_like_an_unknown_one(stack, named):
    a = stack.client("A:viewer")
    theirs, unknown = a.get(f"/api/attachments/{named}"), a.get(f"/api/attachments/{secrets.token_hex(32)}")
    assert (theirs.status_code, theirs.content) == (unknown.status_code, unknown.content) == (404, unknown.content)
    assert [theirs.headers.get(h) for h in _SAME] == [unknown.headers.get(h) for h in _SAME]
    # Nor does the trace page's metadata lookup tell A anything about B's blob.
    assert a.sql(f"SELECT count() FROM attachments WHERE Sha256 = '{named}'").json()["rows"] == [[0]]


def _send_image(stack, project: str, image: bytes, name: str) -> None:
    post_spans(stack.server, stack.keys[f"{project}:ingest"], [span(name, new_trace_id(), attrs={
        "image": "data:image/png;base64," + base64.b64encode(image).decode()})])
    stack.server.wait_loaded(ADMIN_KEY)


def test_sending_the_same_bytes_shares_storage_not_access(stack):
    image = png(31, 17, 211)
    sha = hashlib.sha256(image).hexdigest()
    a, b = stack.client("A:viewer"), stack.client("B:viewer")
    _send_image(stack, "B", image, "b-sends-image")
    wait_until(lambda: b.get(f"/api/attachments/{sha}").status_code == 200, "B's blob indexed for B")
    assert a.get(f"/api/attachments/{sha}").status_code == 404
    _send_image(stack, "A", image, "a-sends-same-image")  # stored already: deduplicated in storage only
    wait_until(lambda: a.get(f"/api/attachments/{sha}").status_code == 200, "A's own copy indexed for A")
    assert a.get(f"/api/attachments/{sha}").content == image
    rows = stack.admin.sql(f"SELECT Project FROM attachments WHERE Sha256 = '{sha}' ORDER BY Project").json()["rows"]
    assert rows == [["A"], ["B"]]  # one blob stored, indexed once per project that sent it
