"""An alert rule: a filter of the trace list, an aggregate over a window, a threshold.

Values are in the aggregate's unit: ``error_rate`` a fraction (0.05 = 5 %), latencies in ms,
``cost`` in USD, ``tokens`` and ``count`` plain numbers, scores in the score's own scale.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from tracelake.durations import format_duration

NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
OPS = (">", ">=", "<", "<=")
# Plain aggregates; the score ones take an argument: avg_score(name), score_count(name=value).
AGGREGATES = ("error_rate", "count", "p50_latency", "p95_latency", "p99_latency", "tokens", "cost")
SCORE_AGGREGATES = ("avg_score", "score_count")
# How a group is named on a trace row (a trace with several models counts under each of them).
GROUP_BY = ("model", "user", "service", "project", "session")
SEVERITIES = ("info", "warning", "critical")
UNITS = {"error_rate": "", "count": "traces", "p50_latency": "ms", "p95_latency": "ms", "p99_latency": "ms",
         "tokens": "tokens", "cost": "USD", "avg_score": "", "score_count": "scores"}
MIN_WINDOW = timedelta(minutes=1)
MAX_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class Aggregate:
    """``kind`` from :data:`AGGREGATES` or :data:`SCORE_AGGREGATES`; ``score``/``value`` for scores."""

    kind: str
    score: str = ""
    value: str = ""

    def __str__(self) -> str:
        if self.kind == "avg_score":
            return f"avg_score({self.score})"
        if self.kind == "score_count":
            return f"score_count({self.score}={self.value})"
        return self.kind

    @property
    def needs_traces(self) -> bool:
        """A ratio, percentile or average: no value without traces (rather than 0)."""
        return self.kind in ("error_rate", "p50_latency", "p95_latency", "p99_latency", "avg_score")


@dataclass(frozen=True)
class Rule:
    name: str
    aggregate: Aggregate
    window: timedelta
    threshold: float
    op: str = ">"
    clear: float | None = None  # resolves only once the value is past this (hysteresis); None: the threshold
    for_count: int = 1  # consecutive evaluations over (or back under) before firing (or resolving)
    filter: str = ""
    group_by: str = ""
    min_traces: int = 0
    reminder: timedelta | None = None
    destinations: tuple[str, ...] = ()
    project: str = ""  # '' = every project
    severity: str = "warning"
    description: str = ""
    line: int = field(default=0, compare=False)  # where the rule starts in its file

    @property
    def key(self) -> str:
        """Unique among all rules in force: two projects may both name a rule "errors"."""
        return f"{self.project}/{self.name}"

    def breaching(self, value: float | None) -> bool:
        """The value crosses the threshold (None, no data, never does)."""
        return value is not None and _cmp(value, self.op, self.threshold)

    def still_bad(self, value: float | None) -> bool:
        """A firing alert stays firing: the value has not come back past ``clear``."""
        return value is not None and _cmp(value, self.op, self.threshold if self.clear is None else self.clear)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "filter": self.filter, "aggregate": str(self.aggregate),
                "window": format_duration(self.window), "op": self.op, "threshold": self.threshold,
                "clear": self.clear, "for": self.for_count, "group_by": self.group_by or None,
                "min_traces": self.min_traces, "reminder": format_duration(self.reminder) if self.reminder else None,
                "destinations": list(self.destinations), "project": self.project or None,
                "severity": self.severity, "description": self.description, "unit": UNITS[self.aggregate.kind]}


def _cmp(value: float, op: str, limit: float) -> bool:
    if op == ">":
        return value > limit
    if op == ">=":
        return value >= limit
    if op == "<":
        return value < limit
    return value <= limit


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    source: str = ""

    def rule(self, name: str, project: str = "") -> Rule | None:
        return next((r for r in self.rules if r.name == name and r.project == project), None)


__all__ = ["AGGREGATES", "Aggregate", "GROUP_BY", "OPS", "Rule", "RuleSet", "SCORE_AGGREGATES", "SEVERITIES", "UNITS"]
