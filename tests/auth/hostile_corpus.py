"""Hostile input for the access tests: XSS payloads (each sets window.__xss or opens a dialog if it
ever runs), path traversal strings, and a span carrying the payloads in every field it has."""
from __future__ import annotations

import time

from otlp_spans import new_span_id, new_trace_id, request, span

XSS = [
    "<script>window.__xss=1;alert(1)</script>",
    '"><img src=x onerror="window.__xss=2;alert(2)">',
    "'><svg onload=window.__xss=3>",
    "javascript:window.__xss=4",
    "</textarea></title></style><script>window.__xss=5</script>",
    '<a href="javascript:window.__xss=6">x</a>',
    "{{7*7}}{% raw %}${7*7}<%= 7*7 %>",
    '<iframe srcdoc="<script>parent.__xss=7</script>"></iframe>',
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__xss=8>",
    '" autofocus onfocus="window.__xss=9',
    "data:text/html;base64,PHNjcmlwdD53aW5kb3cuX194c3M9MTA8L3NjcmlwdD4=",
    "\u202e<script>window.__xss=11</script>\u0000\x1b[31m",
]

TRAVERSAL = [
    "../../../../etc/passwd",
    "..%2f..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "....//....//....//etc/passwd",
    "%252e%252e%252fetc%252fpasswd",
    "..\\..\\..\\etc\\passwd",
    "/etc/passwd%00.png",
    "%2Fetc%2Fpasswd",
]


def hostile_request() -> tuple[bytes, str, str]:
    """(protobuf body, trace id hex, root span id hex): every field and attribute key hostile."""
    trace = new_trace_id()
    root_id = new_span_id()
    now = time.time_ns()
    attrs = {payload: payload for payload in XSS}
    attrs.update({"session.id": XSS[0], "user.id": XSS[1], "gen_ai.request.model": XSS[2],
                  "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": %s}]}]'
                  % __import__("json").dumps(XSS[0] + XSS[1]),
                  "input.value": XSS[3], "output.value": XSS[4]})
    root = span(XSS[0], trace, root_id, start_ns=now - 5_000_000, attrs=attrs, status=2, status_message=XSS[1],
                events=[(XSS[5], {XSS[6]: XSS[7]}), ("exception", {"exception.message": XSS[8],
                                                                   "exception.stacktrace": XSS[9]})])
    child = span(XSS[10], trace, parent=root_id, start_ns=now - 4_000_000, attrs={XSS[11]: XSS[11]})
    body = request([root, child], service=XSS[1], resource={XSS[2]: XSS[3]}).SerializeToString()
    return body, trace.hex(), root_id.hex()
