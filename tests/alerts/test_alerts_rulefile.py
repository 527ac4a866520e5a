"""A bad rule file is refused with the line and the field; a good one says what it means."""
from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest

from tracelake.alerts.errors import RuleFileError
from tracelake.alerts.rulefile import load_rules, parse_rules

GOOD = """rules:
  - name: errors
    filter: 'service:checkout'
    aggregate: error_rate
    window: 5m
    threshold: 5%
    clear: 2%
    for: 2
    min_traces: 20
    reminder: 4h
    destinations: [oncall, pager]
  - name: cost-per-user
    aggregate: cost
    window: 1d
    threshold: $5
    group_by: user
  - name: judged-bad
    aggregate: score_count(verdict=bad)
    window: 1h
    op: '>='
    threshold: 3
"""


def test_a_good_file_reads_as_written():
    rules = parse_rules(GOOD, "alerts.yaml")
    errors, cost, judged = rules.rules
    assert (errors.threshold, errors.clear, errors.for_count, errors.window) == (0.05, 0.02, 2, timedelta(minutes=5))
    assert errors.destinations == ("oncall", "pager") and errors.reminder == timedelta(hours=4)
    assert (cost.aggregate.kind, cost.threshold, cost.group_by) == ("cost", 5.0, "user")
    assert (str(judged.aggregate), judged.op) == ("score_count(verdict=bad)", ">=")
    assert errors.line == 2 and cost.line == 12


@pytest.mark.parametrize("text, line, field, words", [
    ("rules:\n  - name: a\n    aggregate: error_rate\n    window: 5 minutes\n    threshold: 1\n",
     4, "rules[0] (a).window", "bad duration"),
    ("rules:\n  - name: a\n    aggregate: errors\n    window: 5m\n    threshold: 1\n",
     3, "rules[0] (a).aggregate", "unknown aggregate"),
    ("rules:\n  - name: a\n    aggregate: count\n    window: 5m\n    threshold: 1\n"
     "  - name: b\n    aggregate: count\n    window: 5m\n    threshold: ten\n",
     9, "rules[1] (b).threshold", "bad number"),
    ("rules:\n  - name: a\n    aggregate: count\n    window: 5m\n    threshold: 5%\n",
     5, "rules[0] (a).threshold", "error_rate only"),
    ("rules:\n  - name: a\n    aggregate: count\n    window: 5m\n    threshold: 10\n    clear: 20\n",
     6, "rules[0] (a).clear", "at or below the threshold"),
    ("rules:\n  - name: a\n    aggregate: count\n    window: 5m\n    threshold: 10\n    filter: 'status:maybe'\n",
     6, "rules[0] (a).filter", "status"),
    ("rules:\n  - name: a\n    aggregate: count\n    window: 5m\n    threshold: 10\n    group_by: colour\n",
     6, "rules[0] (a).group_by", "unknown group"),
    ("rules:\n  - name: a\n    aggregate: count\n    window: 30d\n    threshold: 10\n",
     4, "rules[0] (a).window", "out of range"),
    ("rules:\n  - name: a\n    aggregate: count\n    threshold: 10\n", 2, "rules[0].window", "missing"),
    ("rules:\n  - name: a\n    aggregate: count\n    window: 5m\n    threshold: 1\n    colour: red\n",
     6, "rules[0].colour", "unknown key"),
    ("rules:\n  - name: a\n    aggregate: count\n    window: 5m\n    threshold: 1\n"
     "  - name: a\n    aggregate: count\n    window: 5m\n    threshold: 1\n", 6, "rules[1] (a).name", "already used at"),
    ("rules:\n  - name: a\n    aggregate: count\n    window: 5m\n    threshold: 1\n    destinations: [ok, 'bad name']\n",
     6, "rules[0] (a).destinations", "bad destination name"),
    ("rules:\n  - name: a\n    aggregate: count\n  window: 5m\n", 4, "", "not valid YAML"),
])
def test_a_bad_file_is_refused_with_line_and_field(text, line, field, words):
    with pytest.raises(RuleFileError) as caught:
        parse_rules(text, "alerts.yaml")
    err = caught.value
    assert (err.line, err.field) == (line, field), str(err)
    assert words in str(err) and str(err).startswith(f"alerts.yaml line {line}")
    assert err.to_dict()["valid"] is False


def test_a_project_file_cannot_name_another_project():
    text = "rules:\n  - name: a\n    aggregate: count\n    window: 5m\n    threshold: 1\n    project: beta\n"
    with pytest.raises(RuleFileError) as caught:
        parse_rules(text, "YAML", project="alpha")
    assert caught.value.field == "rules[0] (a).project"
    assert parse_rules(text.replace("    project: beta\n", ""), "YAML", project="alpha").rules[0].project == "alpha"


def test_the_server_refuses_to_start_on_a_bad_file(tmp_path):
    bad = tmp_path / "alerts.yaml"
    bad.write_text("rules:\n  - name: a\n    aggregate: count\n    window: 5m\n    threshold: many\n")
    with pytest.raises(RuleFileError):
        load_rules(bad)
    done = subprocess.run([sys.executable, "-m", "tracelake.cli", "server", "--alerts", str(bad), "--data-dir",
                           str(tmp_path / "data")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"alerts file refused: {bad} line 5, rules[0] (a).threshold: bad number" in done.stderr
    assert not (tmp_path / "data").exists()  # refused before anything started
