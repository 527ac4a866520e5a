"""HTTP endpoints of the archiver, on the UI/API port (``tracelake archiver`` talks to these when
the store is embedded in the running server).

* ``POST /api/archiver/plan``  -> the plan (JSON); body ``{"retention": "<yaml>"}`` optional
* ``POST /api/archiver/run``   -> one pass, streamed as NDJSON progress events then the result
* ``GET  /api/archiver/runs``  -> recent runs
* ``GET  /api/archiver/status`` -> policy, schedule, last error

Without a body, the server's own policy (``--retention``) is used; a body's policy is validated
like a file (400 with the line and field when it is bad) and used for that call only.

Under auth (tracelake.auth.web), plan and run act on every project's traces, so they need an admin
key; the GET endpoints need the ``retention`` permission (ops). Runs asked for here are audited.
"""
from __future__ import annotations

import json
import queue
import threading
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from tracelake.archiver.policy import PolicyError, parse_policy
from tracelake.archiver.service import Archiver, archiver_from_settings

router = APIRouter(prefix="/api/archiver", tags=["archiver"])


def json_response(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON answer of every archiver endpoint (orjson; datetimes and the like as strings)."""
    return Response(orjson.dumps(content, default=str), status_code=status_code, media_type="application/json",
                    headers=headers)



class _NoArchiver(Exception):
    pass


def _audit(request: Request, action: str, detail: str) -> None:
    """Record who asked for a run (only under auth: without it there is no caller to name)."""
    caller = (request.scope.get("state") or {}).get("caller")
    if caller is None:
        return
    from tracelake.auth import audit

    audit.record(request.app.state.auth_registry.store, actor=caller.actor, role=caller.role.value, action=action,
                 detail=detail, remote=request.client.host if request.client else "")


async def _archiver(request: Request) -> Archiver:
    body = await request.body()
    text = None
    if body.strip():
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise PolicyError(f"request body is not JSON: {exc}") from exc
        text = doc.get("retention") if isinstance(doc, dict) else None
    if text:
        policy = parse_policy(text, "retention")
        # Under auth the request's store is the caller's ScopedStore; only admins get here, and the
        # archiver works on every project, so it takes the process's store.
        store = getattr(request.app.state.store, "inner", request.app.state.store)
        return archiver_from_settings(store, request.app.state.settings, policy)
    archiver = getattr(request.app.state, "archiver", None)
    if archiver is None:
        raise _NoArchiver()
    return archiver


def _done_with(request: Request, archiver: Archiver) -> None:
    """Release the connection of an Archiver made for one request (not the server's own)."""
    if archiver is not getattr(request.app.state, "archiver", None):
        archiver.release()


_NO_POLICY = {"error": "no retention policy: start the server with --retention FILE, apply rules on the Retention "
                      "page, or send one with --retention"}


async def _archiver_or_error(request: Request) -> Archiver | Response:
    """The archiver for this call, or the answer saying why there is none (400 bad policy, 409 none)."""
    try:
        return await _archiver(request)
    except PolicyError as exc:
        return json_response({"error": str(exc)}, 400)
    except _NoArchiver:
        return json_response(_NO_POLICY, 409)


@router.post("/plan")
async def plan(request: Request) -> Response:
    archiver = await _archiver_or_error(request)
    if isinstance(archiver, Response):
        return archiver
    try:
        result = await run_in_threadpool(archiver.plan)
    except Exception as exc:  # noqa: BLE001 - reported to the caller
        return json_response({"error": f"{type(exc).__name__}: {exc}"}, 500)
    finally:
        _done_with(request, archiver)
    return json_response(result.to_dict())


@router.post("/run")
async def run(request: Request) -> Response:
    archiver = await _archiver_or_error(request)
    if isinstance(archiver, Response):
        return archiver
    await run_in_threadpool(_audit, request, "archiver.run", "policy sent with the request" if archiver is not
                            getattr(request.app.state, "archiver", None) else "server policy")
    events: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def progress(phase: str, done: int, total: int) -> None:
        events.put({"event": "progress", "phase": phase, "done": done, "total": total})

    def work() -> None:
        try:
            events.put({"event": "result", **archiver.run_once(progress).to_dict()})
        except Exception as exc:  # noqa: BLE001 - reported in the stream
            events.put({"event": "error", "error": f"{type(exc).__name__}: {exc}"})
        finally:
            _done_with(request, archiver)
            events.put(None)

    threading.Thread(target=work, name="tracelake-archiver-api", daemon=True).start()

    async def stream():
        while True:
            item = await run_in_threadpool(events.get)
            if item is None:
                return
            yield orjson.dumps(item, default=str) + b"\n"

    return StreamingResponse(stream(), media_type="application/x-ndjson")


@router.get("/runs")
async def runs_list(request: Request, limit: int = 50) -> Response:
    from tracelake.archiver.runs import list_runs

    rows = await run_in_threadpool(list_runs, request.app.state.store, max(1, min(limit, 1000)))
    return json_response({"runs": [r.to_dict() for r in rows]})


@router.get("/status")
async def status(request: Request) -> Response:
    archiver: Archiver | None = getattr(request.app.state, "archiver", None)
    if archiver is None:
        return json_response({"enabled": False})
    return json_response({"enabled": True, "archive": archiver.location.uri,
                  "rules": [r.describe() for r in archiver.policy.rules], "last_error": archiver.last_error})
