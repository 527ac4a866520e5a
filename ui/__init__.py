"""tracelake.ui: the trace browser (FastAPI + Jinja2 + htmx, server-rendered, no build step).

``install(app)`` adds the pages (``/traces``, ``/sessions``, ``/dashboard``), their JSON twins under
``/api/``, the static files and the security headers. Modules, one job each:
``queries`` (page SQL, one module per page; the filter language and compiler are :mod:`tracelake.query`), ``views`` (one view per page), ``messages`` (span I/O normalization),
``render`` (Jinja environment and formatting), ``charts`` (SVG geometry), ``security`` (CSP),
``routes`` (HTML pages), ``api`` (JSON), ``api_docs`` (the OpenAPI page, served offline),
``routes_rules`` and ``routes_retention`` (the Retention page's tabs and the trace page's retention
panel: forms and htmx partials over :mod:`tracelake.archiver`, which never imports the UI).
"""
from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    from fastapi.staticfiles import StaticFiles

    from tracelake.ui import api, api_docs, routes, security
    from tracelake.ui.render import STATIC_DIR

    from tracelake.auth.routes import PUBLIC, declare

    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    declare(app.routes[-1], PUBLIC)  # the mount serves only files under its directory
    api_docs.install(app)  # /api/docs with Swagger UI's files from the package (no CDN)
    app.include_router(api.router)
    app.include_router(routes.router)
    from tracelake.ui import routes_retention, routes_rules  # the Retention page's tabs, the trace's panel
    from tracelake.ui import routes_prices  # the Prices page and /api/prices

    app.include_router(routes_rules.router)
    app.include_router(routes_retention.router)
    app.include_router(routes_prices.router)
    from tracelake.ui import routes_review, routes_scores  # scores: the API, the trace's panel, review mode

    app.include_router(routes_scores.router)
    app.include_router(routes_review.router)
    security.install_headers(app)
    from tracelake.events import on_prices_changed, on_traces_changed
    from tracelake.ui.queries import trace_tree

    on_traces_changed(trace_tree.forget)  # an erased trace's tree is not served from memory
    on_prices_changed(trace_tree.forget_all)  # trees keep their spans' cost: re-priced, they are rebuilt
    from tracelake.ui import routes_alerts
    from tracelake.ui.queries.dashboard import trace_rows

    app.include_router(routes_alerts.router)
    app.state.alert_trace_rows = trace_rows  # the alerts (a lower layer) read the dashboard's per-trace rows


__all__ = ["install"]
