"""The OpenAPI docs page with Swagger UI's files vendored in ``ui/static/swagger`` (swagger-ui-dist
5.35.0, Apache-2.0; docs/ui.md "Vendored files"), not FastAPI's CDN page: ``/api/docs`` works on a
machine without internet, like every other page. Swagger UI 5 is needed for OpenAPI 3.1, which
FastAPI emits (the PyPI package swagger-ui-bundle ships 4.x: "Unable to render this definition")."""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from tracelake.auth.roles import Perm
from tracelake.auth.routes import needs

ASSETS = "/ui/static/swagger"


def install(app: FastAPI) -> None:
    @app.get("/api/docs", include_in_schema=False, dependencies=[needs(Perm.READ)])
    def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/api/openapi.json", title="tracelake API",
                                   swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url="/ui/static/favicon.svg")
