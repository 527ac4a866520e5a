"""Retention files: valid ones load; bad ones are refused with the line and the field."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tracelake.archiver.policy import PolicyError, format_duration, load_policy, parse_duration, parse_policy

GOOD = """\
rules:                      # first match wins
  - name: errors
    match: 'status:error'
    hot: 30d
    archive: 365d
  - name: big-spenders
    match: 'cost>1 OR model:gpt-4*'
    hot: 12h
    archive: forever
  - name: default
    hot: 7d
    archive: 0d
"""


def test_a_good_file_loads(tmp_path: Path):
    path = tmp_path / "retention.yaml"
    path.write_text(GOOD)
    policy = load_policy(path)
    assert [r.name for r in policy.rules] == ["errors", "big-spenders", "default"]
    errors, spenders, default = policy.rules
    assert (errors.match, errors.hot, errors.archive) == ("status:error", timedelta(days=30), timedelta(days=365))
    assert spenders.archive is None and spenders.hot == timedelta(hours=12)
    assert default.is_default and default.archive == timedelta(0)


@pytest.mark.parametrize("text,expected", [
    (GOOD.replace("    hot: 30d\n", "    hot: 30d\n    keep: 1d\n"), ["line 5", "rules[0].keep", "unknown key"]),
    (GOOD.replace("hot: 12h", "hot: 12 hours"), ["line 8", "rules[1] (big-spenders).hot", "bad duration '12 hours'"]),
    (GOOD.replace("archive: 365d", "archive: -1d"), ["line 5", "rules[0] (errors).archive", "bad duration"]),
    (GOOD.replace("hot: 7d", "hot: forever"), ["line 11", "(default).hot", "bad duration 'forever'"]),
    (GOOD.replace("'status:error'", "'status:maybe'"), ["line 3", "rules[0] (errors).match"]),
    (GOOD.replace("'status:error'", "'(status:error'"), ["line 3", "rules[0] (errors).match"]),
    (GOOD.replace("'status:error'", "'nosuch:1'"), ["line 3", "rules[0] (errors).match"]),
    (GOOD + "  - name: other\n    hot: 1d\n    archive: 1d\n", ["line 13", "second default rule", "line 10"]),
    (GOOD.replace("  - name: errors\n", "  - name: default\n", 1).replace("    match: 'status:error'\n", "", 1),
     ["name is already used"]),
    (GOOD.replace("    hot: 30d\n", "", 1), ["line 2", "rules[0].hot: missing"]),
    ("rules: []\n", ["line 1", "non-empty list"]),
    ("retention:\n  - name: x\n", ["line 1", "retention: unknown key"]),
    ("", ["empty"]),
    ("rules:\n  - name: x\n    hot: [1d]\n    archive: 1d\n", ["line 3", "rules[0].hot: expected a single value"]),
    ("rules:\n  - name: x\n  hot: 1d\n", ["line 3", "not valid YAML"]),
    (GOOD.replace("  - name: default\n    hot: 7d\n    archive: 0d\n", "")
     .replace("  - name: errors\n", "  - name: default\n    hot: 1d\n    archive: 1d\n  - name: errors\n"),
     ["default rule must be last"]),
])
def test_bad_files_are_refused_with_line_and_field(text: str, expected: list[str]):
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "retention.yaml")
    message = str(info.value)
    assert message.startswith("retention.yaml")
    for part in expected:
        assert part in message, message


def test_a_missing_file_is_named(tmp_path: Path):
    with pytest.raises(PolicyError, match="cannot read the retention file"):
        load_policy(tmp_path / "nope.yaml")


def test_durations_round_trip():
    for text in ("30d", "12h", "90m", "2w", "0d", "45s"):
        value = parse_duration(text, allow_forever=False)
        assert parse_duration(format_duration(value), allow_forever=False) == value
    assert parse_duration("forever", allow_forever=True) is None
    assert format_duration(None) == "forever"
    with pytest.raises(ValueError):
        parse_duration("forever", allow_forever=False)


def test_hot_below_an_hour_is_accepted_and_settles_for_an_hour():
    from tracelake.archiver.plan import SETTLE, leave_after

    policy = parse_policy("rules:\n  - name: gone\n    hot: 0d\n    archive: 0d\n")
    assert policy.rules[0].hot == timedelta(0) and policy.rules[0].archive == timedelta(0)
    # A trace still leaves hot only when its last span is SETTLE old (never split while running).
    assert leave_after(policy.rules[0].hot) == SETTLE == timedelta(hours=1)
    assert leave_after(timedelta(days=2)) == timedelta(days=2)
