"""Every refusal of the alerts component, mapped to an HTTP status in one place.

Domain code raises an :class:`AlertError` subclass carrying its ``status`` and a message safe to
show to the caller (never a destination's secret); the JSON API answers all of them through
:func:`tracelake.alerts.api.error_response`, the page shows the same message in its forms.
"""
from __future__ import annotations

import re
from typing import Any


class AlertError(Exception):
    """A request about alerts refused before anything changed."""

    status = 400

    def __init__(self, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.detail: dict[str, Any] = dict(detail or {})

    def to_dict(self) -> dict[str, Any]:
        return {"error": str(self), **self.detail}


class BadRequest(AlertError, ValueError):
    """What the caller sent cannot be used (400)."""


_WHERE = re.compile(r"^(?:.*? )?line (\d+)(?:, ([^:]+))?: ")


class RuleFileError(BadRequest):
    """A rule file that cannot be used; the message names the file, line and field:
    ``alerts.yaml line 7, rules[1] (slow).window: bad duration ...``."""

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


class Forbidden(AlertError):
    """The caller's role or project may not do this (403)."""

    status = 403


class NotFound(AlertError, LookupError):
    """Nothing the caller may see has that name (404)."""

    status = 404


class Conflict(AlertError):
    """Refused because of the state of things (409): the rule file is the source, a stale version."""

    status = 409


class ScoresUnavailable(AlertError):
    """A score aggregate, before the scores table exists in this build (wired when it is merged)."""

    status = 501


__all__ = ["AlertError", "BadRequest", "Conflict", "Forbidden", "NotFound", "RuleFileError", "ScoresUnavailable"]
