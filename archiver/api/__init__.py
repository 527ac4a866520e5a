"""The archiver's JSON API, one module per job: ``runs`` (/api/archiver: plan, run, status),
``rules`` (/api/retention: preview, apply, versions), ``keep`` (explain, pins, holds), ``erase``
(erasure, receipts, restore); ``common`` is what they share, the UI's retention pages included.

Every refusal is a :class:`~tracelake.archiver.errors.RetentionError`, answered by the one
handler :func:`~tracelake.archiver.api.common.error_response` that :func:`install` adds.
"""
from __future__ import annotations

from fastapi import FastAPI

from tracelake.archiver.api import common, erase, keep, rules, runs
from tracelake.archiver.config import ArchiverConfig
from tracelake.archiver.errors import RetentionError


def install(app: FastAPI) -> None:
    """The routes, the error handler, and the configuration the endpoints read."""
    app.state.archiver_config = ArchiverConfig.from_settings(app.state.settings)
    for module in (runs, keep, rules, erase):
        app.include_router(module.router)
    app.add_exception_handler(RetentionError, common.error_response)


__all__ = ["install"]
