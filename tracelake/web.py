"""The UI/API port: operations endpoints, read-only SQL, and whatever the UI installs.

Handlers reach shared objects through ``request.app.state``: ``store`` (a
:class:`tracelake.store.Store`), ``settings`` and, when running, ``collector``.
"""
from __future__ import annotations

import importlib
import logging
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from tracelake.auth.roles import Perm
from tracelake.auth.routes import PUBLIC, declare, needs
from tracelake.config import Settings
from tracelake.store.base import Store, StoreError
from tracelake.store.messages import readable

log = logging.getLogger(__name__)

ops = APIRouter()

# Optional parts that add routes when present: each module has install(app: FastAPI) -> None.
EXTENSIONS = ("tracelake.ui", "tracelake.attachments", "tracelake.archiver", "tracelake.alerts", "tracelake.auth")


def _json(content: Any, status_code: int = 200) -> Response:
    body = orjson.dumps(content, default=str, option=orjson.OPT_NON_STR_KEYS)
    return Response(body, status_code=status_code, media_type="application/json")


@ops.get("/healthz", include_in_schema=False, dependencies=[needs(PUBLIC)])
def healthz() -> PlainTextResponse:
    return PlainTextResponse("ok\n")


@ops.get("/readyz", include_in_schema=False, dependencies=[needs(PUBLIC)])
def readyz(request: Request) -> PlainTextResponse:
    store: Store = request.app.state.store
    if store.ping():
        return PlainTextResponse("ready\n")
    return PlainTextResponse("store unreachable\n", status_code=503)


@ops.get("/metrics", include_in_schema=False, dependencies=[needs(Perm.READ)])
def metrics(request: Request) -> Response:
    collector = getattr(request.app.state, "collector", None)
    if collector is None:
        return PlainTextResponse("# no collector in this process\n")
    from tracelake.collector.metrics import CONTENT_TYPE_LATEST

    return Response(collector.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def _table_json(table: Any) -> dict[str, Any]:
    columns = table.column_names
    return {"columns": columns, "rows": [list(r.values()) for r in table.to_pylist()], "row_count": table.num_rows}


async def _sql_request(request: Request) -> tuple[str, dict[str, str]]:
    """The SQL (``q``) and its ``param_<name>`` values, from the query string, a form or JSON."""
    fields: dict[str, Any] = dict(request.query_params)
    if request.method == "POST":
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("application/json"):
            try:
                body = orjson.loads(await request.body() or b"{}")
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"request body is not JSON: {exc}") from None
            fields.update(body if isinstance(body, dict) else {})
        elif ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            fields.update(dict(await request.form()))
        else:
            text = (await request.body()).decode()
            if text.strip():
                fields["q"] = text
    params = {k[len("param_"):]: str(v) for k, v in fields.items() if k.startswith("param_")}
    if isinstance(fields.get("params"), dict):
        params.update({k: str(v) for k, v in fields["params"].items()})
    return str(fields.get("q", "")), params


_SQL_SUMMARY = "Read-only SQL: q=<SELECT ...>, param_<name>=<value> for {name:Type} placeholders"


@ops.get("/api/sql", tags=["sql"], summary=_SQL_SUMMARY, operation_id="sql_get", dependencies=[needs(Perm.READ)])
@ops.post("/api/sql", tags=["sql"], summary=_SQL_SUMMARY, operation_id="sql_post", dependencies=[needs(Perm.READ)])
async def sql(request: Request) -> Response:
    try:
        query, params = await _sql_request(request)
    except ValueError as exc:  # a body that does not parse
        return _json({"error": str(exc)}, 400)
    if not query.strip():
        return _json({"error": "missing q: the SQL to run"}, 400)
    from tracelake.auth.scope import untrusted_reader

    store = untrusted_reader(request.app.state.store)  # one statement, no INTO OUTFILE (tracelake.auth.scope)
    try:
        table = await run_in_threadpool(store.query_readonly, query, params)
    except StoreError as exc:
        return _json({"error": readable(str(exc))}, 400)
    return _json(_cut(table, request.app.state.settings))


def _cut(table: Any, settings: Settings) -> dict[str, Any]:
    """The answer, saying so when the result reached a size limit. ClickHouse stops reading at the
    limit (``result_overflow_mode=break``) but hands over whole blocks, so more rows than the limit
    mean it was cut; the surplus is dropped here."""
    truncated = table.num_rows > settings.sql_max_result_rows or table.nbytes > settings.sql_max_result_bytes
    doc = _table_json(table.slice(0, settings.sql_max_result_rows))
    if truncated:
        doc["truncated"] = True
        doc["note"] = (f"result cut at {settings.sql_max_result_rows} rows / {settings.sql_max_result_bytes} bytes "
                       "(sql_max_result_rows, sql_max_result_bytes): add a LIMIT or aggregate")
    return doc


def create_app(store: Store, settings: Settings, collector: Any = None) -> FastAPI:
    # /api/docs is tracelake.ui.api_docs: Swagger UI served from the package, not FastAPI's CDN page.
    app = FastAPI(title="tracelake", version="0.1.0", docs_url=None, openapi_url="/api/openapi.json", redoc_url=None)
    declare(next(r for r in app.routes if getattr(r, "path", None) == app.openapi_url), Perm.READ)
    app.state.store = store
    app.state.settings = settings
    app.state.collector = collector
    app.include_router(ops)
    from tracelake.limits import ConcurrencyLimits

    # Added first, so it runs inside the auth guard (which names the caller it counts by).
    app.add_middleware(ConcurrencyLimits, settings=settings)
    for name in EXTENSIONS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        install = getattr(module, "install", None)
        if install is not None:
            install(app)
    return app


__all__ = ["create_app"]
