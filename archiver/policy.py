"""Retention policy: a YAML file of rules, validated with errors that name the line and the field.

    rules:                      # first match wins; a trace is matched as a whole
      - name: errors
        match: 'status:error'   # the UI's filter language
        hot: 30d                # stays in ClickHouse until its last span is this old
        archive: 365d           # then in the archive this long, then deleted; "forever" keeps it
      - name: default           # a rule without match is the default (at most one)
        hot: 7d
        archive: 90d

Durations: a number and a unit among s, m, h, d, w (``0d`` is allowed: ``archive: 0d`` deletes
when leaving hot; a ``hot`` below 1h, ``0d`` included, acts as 1h, because no trace leaves hot
before its last span is :data:`tracelake.archiver.plan.SETTLE` old — spans of a trace still
running must not be split from it). Line numbers come from PyYAML's composed nodes, so a message points at the
exact place in the file.
"""
from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, field_validator

from tracelake.archiver.errors import BadRequest
from tracelake.durations import format_duration, parse_duration

_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
RULE_KEYS = ("name", "match", "hot", "archive")
_WHERE = re.compile(r"^YAML line (\d+)(?:, ([^:]+))?: ")


class PolicyError(BadRequest):
    """A retention file that cannot be used; the message names the file, line and field."""

    @property
    def line(self) -> int | None:
        m = _WHERE.match(str(self))
        return int(m.group(1)) if m else None

    @property
    def field(self) -> str:
        m = _WHERE.match(str(self))
        return (m.group(2) or "") if m else ""

    def to_dict(self) -> dict[str, Any]:
        return {"valid": False, "error": str(self), "line": self.line, "field": self.field or None, **self.detail}


class Rule(BaseModel):
    """One rule: traces matching ``match`` (None: every trace) stay ``hot`` then ``archive``."""

    model_config = ConfigDict(frozen=True)

    name: str
    match: str | None = None
    hot: timedelta
    archive: timedelta | None  # None = forever

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("rule names are 1-64 letters, digits, '_', '-' or '.'")
        return v

    @property
    def is_default(self) -> bool:
        return self.match is None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "match": self.match, "hot": format_duration(self.hot),
                "archive": format_duration(self.archive)}


class RetentionPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    rules: list[Rule]
    source: str = ""

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)


def _where(source: str, node: yaml.Node) -> str:
    return f"{source} line {node.start_mark.line + 1}"


def _scalar(source: str, node: yaml.Node, field: str) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise PolicyError(f"{_where(source, node)}, {field}: expected a single value, got a "
                          f"{'list' if isinstance(node, yaml.SequenceNode) else 'mapping'}")
    return str(node.value)


def parse_policy(text: str, source: str = "<retention>") -> RetentionPolicy:
    """Validate YAML text and build the policy; raises :class:`PolicyError`."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source} line {mark.line + 1}" if mark is not None else source
        raise PolicyError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from exc
    if root is None:
        raise PolicyError(f"{source}: the file is empty; it needs a 'rules:' list")
    if not isinstance(root, yaml.MappingNode):
        raise PolicyError(f"{_where(source, root)}: expected a mapping with a 'rules:' list")
    rules_node = None
    for key, value in root.value:
        name = _scalar(source, key, "key")
        if name != "rules":
            raise PolicyError(f"{_where(source, key)}, {name}: unknown key (the file has only 'rules:')")
        rules_node = value
    if rules_node is None:
        raise PolicyError(f"{_where(source, root)}: missing 'rules:'")
    if not isinstance(rules_node, yaml.SequenceNode) or not rules_node.value:
        raise PolicyError(f"{_where(source, rules_node)}, rules: expected a non-empty list of rules")
    rules: list[Rule] = []
    default_at: str | None = None
    names: dict[str, str] = {}
    for i, item in enumerate(rules_node.value):
        field = f"rules[{i}]"
        if not isinstance(item, yaml.MappingNode):
            raise PolicyError(f"{_where(source, item)}, {field}: expected a mapping (name, match, hot, archive)")
        values: dict[str, tuple[str, yaml.Node]] = {}
        for key, value in item.value:
            k = _scalar(source, key, field)
            if k not in RULE_KEYS:
                raise PolicyError(f"{_where(source, key)}, {field}.{k}: unknown key "
                                  f"(allowed: {', '.join(RULE_KEYS)})")
            if k in values:
                raise PolicyError(f"{_where(source, key)}, {field}.{k}: given twice")
            values[k] = (_scalar(source, value, f"{field}.{k}"), value)
        for required in ("name", "hot", "archive"):
            if required not in values:
                raise PolicyError(f"{_where(source, item)}, {field}.{required}: missing")
        name, name_node = values["name"]
        field = f"rules[{i}] ({name})"
        if name in names:
            raise PolicyError(f"{_where(source, name_node)}, {field}.name: the name is already used at {names[name]}")
        names[name] = _where(source, name_node)
        parsed: dict[str, Any] = {"name": name}
        for key, allow_forever in (("hot", False), ("archive", True)):
            text_value, node = values[key]
            try:
                parsed[key] = parse_duration(text_value, allow_forever=allow_forever)
            except ValueError as exc:
                raise PolicyError(f"{_where(source, node)}, {field}.{key}: {exc}") from exc
        if "match" in values:
            text_value, node = values["match"]
            if not text_value.strip():
                raise PolicyError(f"{_where(source, node)}, {field}.match: empty filter "
                                  "(leave 'match' out for the default rule)")
            _check_filter(text_value, source, node, field)
            parsed["match"] = text_value
        elif default_at is not None:
            raise PolicyError(f"{_where(source, item)}, {field}: a second default rule (no 'match'); "
                              f"the first is at {default_at}")
        else:
            default_at = _where(source, item)
        try:
            rules.append(Rule(**parsed))
        except ValueError as exc:
            raise PolicyError(f"{_where(source, item)}, {field}: {exc}") from exc
    for i, rule in enumerate(rules[:-1]):
        if rule.is_default:
            later = rules[i + 1].name
            raise PolicyError(f"{default_at}, rules[{i}] ({rule.name}): the default rule must be last "
                              f"(rule {later!r} after it could never match)")
    return RetentionPolicy(rules=rules, source=source)


def _check_filter(text: str, source: str, node: yaml.Node, field: str) -> None:
    from tracelake.query.filters import FilterError, parse

    try:
        parse(text)
    except FilterError as exc:
        raise PolicyError(f"{_where(source, node)}, {field}.match: {exc}") from exc


def load_policy(path: str | Path) -> RetentionPolicy:
    """Read and validate a retention file; raises :class:`PolicyError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{p}: cannot read the retention file: {exc.strerror or exc}") from exc
    return parse_policy(text, str(p))
