"""Alerts: rules over the trace aggregates, evaluated on a schedule, messages to webhooks, Slack
and e-mail (docs/alerts.md).

``rulefile`` (YAML, line and field errors) -> ``model`` (a rule) -> ``query`` (many rules' values
in few queries) -> ``state`` (hysteresis, one message per change) -> ``engine`` (a round) ->
``delivery`` (outbox, retries, log) -> ``destinations`` (write-only secrets); ``silences``,
``history``, ``versions`` (the page's rule files), ``preview`` (replay the past), ``service`` (the
schedule and the rules' source), ``api`` and ``views`` (what callers see), ``errors`` (statuses).
"""
from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """The routes, the error handler and the configuration the endpoints read."""
    from tracelake.alerts import access, api
    from tracelake.alerts.config import AlertsConfig
    from tracelake.alerts.errors import AlertError

    app.state.alerts_config = AlertsConfig.from_settings(app.state.settings)
    if not hasattr(app.state, "alerts"):
        app.state.alerts = None  # the engine: set by `tracelake server`, which runs the schedule
    app.include_router(api.router)
    app.add_exception_handler(AlertError, access.error_response)


__all__ = ["install"]
