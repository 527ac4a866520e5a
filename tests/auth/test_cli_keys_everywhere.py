"""Every CLI command that talks to a server sends TRACELAKE_KEY, and every refusal is one readable
line that says what to do (issue 21, item 1): run against the shared authenticated server."""
from __future__ import annotations

import pytest

from auth_stack import cli

MISSING = "ffffffffffffffffffffffffffffffff"  # no such trace

# Each command that talks to the server, and what it prints when it gets through with a key.
COMMANDS = [
    (("sql", "SELECT 41 + 1"), "42"),
    (("keys", "list"), "viewer"),
    (("archiver", "runs"), "archive runs"),
    (("archiver", "plan"), None),  # no rules on this server: a readable refusal, past sign-in
    (("archiver", "run"), None),
    (("archiver", "explain", MISSING), None),
    (("archiver", "pin", MISSING), None),
    (("archiver", "unpin", MISSING), None),
    (("archiver", "hold", "list"), None),
    (("archiver", "restore", MISSING), None),
    (("erase", "--user", "nobody-at-all", "--dry-run"), None),
]


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr  # no traceback, no dict
    assert lines[0].startswith("error: ") and "{" not in lines[0] and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize("args,expect", COMMANDS, ids=[" ".join(c[0][:2]) for c in COMMANDS])
def test_each_command_sends_the_key(stack, args, expect):
    done = cli(stack.server, *args)
    said = done.stdout + done.stderr
    assert "sign in first" not in said and "requires a key" not in said, said
    if expect is not None:
        assert done.returncode == 0 and expect in done.stdout, said
    elif done.returncode != 0:
        _one_line_error(done.stderr)  # refused for what it asked, in a line a person can act on


@pytest.mark.parametrize("args,expect", COMMANDS, ids=[" ".join(c[0][:2]) for c in COMMANDS])
def test_without_a_key_each_command_says_to_set_it(stack, args, expect):
    done = cli(stack.server, *args, key="")
    assert done.returncode != 0
    line = _one_line_error(done.stderr)
    assert "TRACELAKE_KEY" in line, line


def test_a_viewer_is_told_what_its_role_may_not_do(stack):
    done = cli(stack.server, "archiver", "runs", key=stack.keys["A:viewer"])
    line = _one_line_error(done.stderr)
    assert line.startswith("error: your key may not do this:"), line
    wrong = cli(stack.server, "sql", "SELECT 1", key="tl_000000000000_" + "x" * 43)
    assert "refused the key in TRACELAKE_KEY" in _one_line_error(wrong.stderr)


def test_pages_a_role_cannot_use_are_not_offered_and_say_why(stack):
    """Issue 21, item 3: a viewer's navigation has no Retention link; following one anyway gives a
    page (not JSON) naming the role and the permission; the API keeps its JSON refusal."""
    viewer, ops = stack.client("A:viewer"), stack.client("A:ops")
    assert 'href="/retention"' not in viewer.get("/traces").text
    assert 'href="/retention"' in ops.get("/traces").text
    page = viewer.get("/retention", headers={"Accept": "text/html"})
    assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
    assert "This page is not for your role" in page.text and "<strong>viewer</strong>" in page.text
    api = viewer.get("/api/retention")
    assert api.status_code == 403 and "needs the retention permission" in api.json()["error"]["message"]
