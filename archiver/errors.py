"""Every refusal of the archiver (rules, pins and holds, erasure, restore, runs), mapped once.

Domain code raises a :class:`RetentionError` subclass; each carries its HTTP ``status``, a message
safe to show to the caller (it names what the caller sent, never another project's data), and
``detail``: extra JSON fields (a form field, the holds in the way, the version that won). The JSON
API answers every one through one handler (:func:`tracelake.archiver.api.common.error_response`);
the UI shows the same message in its forms; the CLI prints it. Modelled on the collector's
``errors.py``: no endpoint picks a status by itself.
"""
from __future__ import annotations

from typing import Any


class RetentionError(Exception):
    """A retention request refused before anything changed."""

    status = 400

    def __init__(self, message: str, status: int | None = None, detail: dict[str, Any] | None = None) -> None:
        Exception.__init__(self, message)  # not super(): a subclass may also be a FilterError (keep.HoldFilterError)
        if status is not None:
            self.status = status
        self.detail: dict[str, Any] = dict(detail or {})

    def to_dict(self) -> dict[str, Any]:
        """The JSON body: ``{"error": message, **detail}``."""
        return {"error": str(self), **self.detail}


class BadRequest(RetentionError, ValueError):
    """What the caller sent cannot be used (400): a body that is not JSON, a bad id or field."""


class Forbidden(RetentionError):
    """The caller's role or project may not do this (403); the message says nothing of others'."""

    status = 403


class NotFound(RetentionError, LookupError):
    """Nothing the caller may see has that name or id (404)."""

    status = 404


class Conflict(RetentionError):
    """Refused because of the state of things (409): a hold, a stale version, a run in progress."""

    status = 409


class Unavailable(RetentionError):
    """Something the archiver needs is not reachable (503)."""

    status = 503


class Busy(Conflict):
    """Another archive pass, erasure or restore holds the archive (one writer per process)."""

    def __init__(self, message: str = "an archive run is in progress; try again when it is done") -> None:
        super().__init__(message)


class NoPolicy(Conflict):
    """A run or plan asked of a server that has no retention rules."""

    def __init__(self) -> None:
        super().__init__("no retention policy: start the server with --retention FILE, apply rules on the "
                         "Retention page, or send one with --retention")


class Failed(RetentionError):
    """An unexpected failure of a plan, reported to the caller with its type (500)."""

    status = 500

    @classmethod
    def of(cls, exc: Exception) -> "Failed":
        return cls(f"{type(exc).__name__}: {exc}")


__all__ = ["BadRequest", "Busy", "Conflict", "Failed", "Forbidden", "NoPolicy", "NotFound", "RetentionError",
           "Unavailable"]
