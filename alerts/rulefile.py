"""Alert rules as a YAML file (``--alerts FILE``, or a version applied on the Alerts page),
validated with errors that name the line and the field, as the retention file is::

    rules:
      - name: checkout-errors
        filter: 'service:checkout'     # the trace list's filter language (optional)
        aggregate: error_rate          # see tracelake.alerts.model.AGGREGATES
        window: 5m
        threshold: 5%                  # fires above 5 % ...
        clear: 2%                      # ... resolves only once back under 2 % (hysteresis)
        for: 2                         # two evaluations in a row, to fire and to resolve
        min_traces: 20
        reminder: 4h
        destinations: [oncall-slack]

Line numbers come from PyYAML's composed nodes, so a message points at the exact place.
"""
from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import yaml

from tracelake.alerts.errors import RuleFileError
from tracelake.alerts.model import (AGGREGATES, GROUP_BY, MAX_WINDOW, MIN_WINDOW, NAME_RE, OPS, SEVERITIES, Aggregate,
                                    Rule, RuleSet)
from tracelake.durations import format_duration, parse_duration

RULE_KEYS = ("name", "description", "filter", "aggregate", "window", "op", "threshold", "clear", "for", "group_by",
             "min_traces", "reminder", "destinations", "project", "severity")
REQUIRED = ("name", "aggregate", "window", "threshold")
MAX_RULES = 1000
MAX_YAML_BYTES = 256 * 1024
_SCORE = re.compile(r"^(avg_score)\(\s*([A-Za-z0-9_.:\-]{1,100})\s*\)$|^(score_count)\(\s*([A-Za-z0-9_.:\-]{1,100})\s*=\s*([^)]{1,100})\)$")
_NUMBER = re.compile(r"^\s*(\$)?\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*(%)?\s*$")


def _where(source: str, node: yaml.Node) -> str:
    return f"{source} line {node.start_mark.line + 1}"


def _scalar(source: str, node: yaml.Node, field: str) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise RuleFileError(f"{_where(source, node)}, {field}: expected a single value, got a "
                            f"{'list' if isinstance(node, yaml.SequenceNode) else 'mapping'}")
    return str(node.value)


def parse_aggregate(text: str) -> Aggregate:
    """``error_rate``, ``p95_latency``, ``avg_score(helpfulness)``, ``score_count(verdict=bad)``."""
    t = text.strip()
    if t in AGGREGATES:
        return Aggregate(t)
    m = _SCORE.match(t)
    if m and m.group(1):
        return Aggregate("avg_score", m.group(2))
    if m and m.group(3):
        return Aggregate("score_count", m.group(4), m.group(5).strip())
    raise ValueError(f"unknown aggregate {t!r}: one of {', '.join(AGGREGATES)}, avg_score(<score>), "
                     "score_count(<score>=<value>)")


def parse_number(text: str, aggregate: Aggregate) -> float:
    """A threshold: a number; ``5%`` (a rate), ``$5`` (a cost) read as people write them."""
    m = _NUMBER.match(text)
    if not m:
        raise ValueError(f"bad number {text!r}: e.g. 0.05, 5%, $5, 1200")
    value = float(m.group(2))
    if m.group(3):
        if aggregate.kind != "error_rate":
            raise ValueError(f"'%' is for error_rate only ({aggregate} is not a rate)")
        value /= 100
    if m.group(1) and aggregate.kind != "cost":
        raise ValueError(f"'$' is for cost only ({aggregate} is not a cost)")
    return value


def _duration(text: str, lo: timedelta, hi: timedelta) -> timedelta:
    value = parse_duration(text, allow_forever=False)
    assert value is not None
    if value < lo or value > hi:
        raise ValueError(f"{text.strip()} is out of range: from {format_duration(lo)} to {format_duration(hi)}")
    return value


def _int(text: str, lo: int, hi: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None
    if not lo <= value <= hi:
        raise ValueError(f"{value} is out of range: from {lo} to {hi}")
    return value


def _check_filter(text: str) -> None:
    from tracelake.query.filters import parse

    parse(text)  # FilterError (a ValueError) says what and where


def _names(source: str, node: yaml.Node, field: str) -> tuple[str, ...]:
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    out = []
    for item in items:
        name = _scalar(source, item, field)
        if not NAME_RE.match(name):
            raise RuleFileError(f"{_where(source, item)}, {field}: bad destination name {name!r} "
                                "(1-64 letters, digits, '_', '-' or '.')")
        out.append(name)
    return tuple(out)


def _rule(source: str, i: int, item: yaml.Node, names: dict[str, str]) -> Rule:
    field = f"rules[{i}]"
    if not isinstance(item, yaml.MappingNode):
        raise RuleFileError(f"{_where(source, item)}, {field}: expected a mapping (name, aggregate, window, threshold, ...)")
    values: dict[str, tuple[str, yaml.Node]] = {}
    for key, value in item.value:
        k = _scalar(source, key, field)
        if k not in RULE_KEYS:
            raise RuleFileError(f"{_where(source, key)}, {field}.{k}: unknown key (allowed: {', '.join(RULE_KEYS)})")
        if k in values:
            raise RuleFileError(f"{_where(source, key)}, {field}.{k}: given twice")
        values[k] = ("" if k == "destinations" else _scalar(source, value, f"{field}.{k}"), value)
    for required in REQUIRED:
        if required not in values:
            raise RuleFileError(f"{_where(source, item)}, {field}.{required}: missing")
    name, name_node = values["name"]
    if not NAME_RE.match(name):
        raise RuleFileError(f"{_where(source, name_node)}, {field}.name: rule names are 1-64 letters, digits, "
                            "'_', '-' or '.'")
    field = f"rules[{i}] ({name})"
    if name in names:
        raise RuleFileError(f"{_where(source, name_node)}, {field}.name: the name is already used at {names[name]}")
    names[name] = _where(source, name_node)

    def read(key: str, parse):  # type: ignore[no-untyped-def]
        text, node = values[key]
        try:
            return parse(text)
        except ValueError as exc:
            raise RuleFileError(f"{_where(source, node)}, {field}.{key}: {exc}") from None

    aggregate = read("aggregate", parse_aggregate)
    op = read("op", lambda t: _choice(t, OPS, "operator")) if "op" in values else ">"
    threshold = read("threshold", lambda t: parse_number(t, aggregate))
    clear = read("clear", lambda t: parse_number(t, aggregate)) if "clear" in values else None
    if clear is not None and (clear > threshold if op.startswith(">") else clear < threshold):
        side = "at or below" if op.startswith(">") else "at or above"
        raise RuleFileError(f"{_where(source, values['clear'][1])}, {field}.clear: must be {side} the threshold "
                            f"({threshold:g}): the alert resolves once the value is back past it")
    if "destinations" in values:
        destinations = _names(source, values["destinations"][1], f"{field}.destinations")
    else:
        destinations = ()
    return Rule(
        name=name, aggregate=aggregate, op=op, threshold=threshold, clear=clear,
        window=read("window", lambda t: _duration(t, MIN_WINDOW, MAX_WINDOW)),
        for_count=read("for", lambda t: _int(t, 1, 100)) if "for" in values else 1,
        filter=read("filter", _filter_text) if "filter" in values else "",
        group_by=read("group_by", lambda t: _choice(t, GROUP_BY, "group")) if "group_by" in values else "",
        min_traces=read("min_traces", lambda t: _int(t, 0, 10**9)) if "min_traces" in values else 0,
        reminder=read("reminder", lambda t: _duration(t, timedelta(minutes=5), timedelta(days=30)))
        if "reminder" in values else None,
        destinations=destinations,
        project=read("project", _project) if "project" in values else "",
        severity=read("severity", lambda t: _choice(t, SEVERITIES, "severity")) if "severity" in values else "warning",
        description=values["description"][0][:1000] if "description" in values else "",
        line=item.start_mark.line + 1)


def _choice(text: str, allowed: tuple[str, ...], what: str) -> str:
    t = text.strip()
    if t not in allowed:
        raise ValueError(f"unknown {what} {t!r}: one of {', '.join(allowed)}")
    return t


def _filter_text(text: str) -> str:
    if text.strip():
        _check_filter(text)
    return text.strip()


def _project(text: str) -> str:
    from tracelake.auth.roles import valid_project

    if not valid_project(text.strip()):
        raise ValueError(f"bad project name {text!r}")
    return text.strip()


def parse_rules(text: str, source: str = "<alerts>", project: str = "") -> RuleSet:
    """Validate YAML text and build the rules; raises :class:`RuleFileError` (line and field).

    ``project``: the file of one project (edited by its ops): its rules read that project's traces
    and a ``project:`` key naming another is refused. '' (the ``--alerts`` file, the admins' file):
    a rule reads the project it names, or every project."""
    if len(text.encode("utf-8")) > MAX_YAML_BYTES:
        raise RuleFileError(f"{source}: the rules are larger than {MAX_YAML_BYTES // 1024} KiB")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source} line {mark.line + 1}" if mark is not None else source
        raise RuleFileError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if root is None:
        raise RuleFileError(f"{source}: the file is empty; it needs a 'rules:' list")
    if not isinstance(root, yaml.MappingNode):
        raise RuleFileError(f"{_where(source, root)}: expected a mapping with a 'rules:' list")
    rules_node = None
    for key, value in root.value:
        name = _scalar(source, key, "key")
        if name != "rules":
            raise RuleFileError(f"{_where(source, key)}, {name}: unknown key (the file has only 'rules:'; "
                                "destinations are made on the Alerts page or with /api/alerts/destinations)")
        rules_node = value
    if rules_node is None:
        raise RuleFileError(f"{_where(source, root)}: missing 'rules:'")
    if isinstance(rules_node, yaml.ScalarNode) and rules_node.value in ("", "null", "~"):
        return RuleSet((), source)  # `rules:` with nothing: no alerts
    if not isinstance(rules_node, yaml.SequenceNode):
        raise RuleFileError(f"{_where(source, rules_node)}, rules: expected a list of rules")
    if len(rules_node.value) > MAX_RULES:
        raise RuleFileError(f"{_where(source, rules_node)}, rules: more than {MAX_RULES} rules")
    names: dict[str, str] = {}
    rules = []
    for i, item in enumerate(rules_node.value):
        rule = _rule(source, i, item, names)
        if project and rule.project and rule.project != project:
            raise RuleFileError(f"{source} line {rule.line}, rules[{i}] ({rule.name}).project: this is the file of "
                                f"project {project}: its rules read that project (leave 'project' out)")
        rules.append(replace(rule, project=project) if project else rule)
    return RuleSet(tuple(rules), source)


def load_rules(path: str | Path) -> RuleSet:
    """Read and validate a rule file; raises :class:`RuleFileError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleFileError(f"{p}: cannot read the alerts file: {exc.strerror or exc}") from None
    return parse_rules(text, str(p))


__all__ = ["load_rules", "parse_aggregate", "parse_number", "parse_rules"]
