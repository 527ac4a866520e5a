"""Archive runs on the UI/API port (``tracelake archiver`` talks to these when the store is
embedded in the running server).

* ``POST /api/archiver/plan``  -> the plan (JSON); body ``{"retention": "<yaml>"}`` optional
* ``POST /api/archiver/run``   -> one pass, streamed as NDJSON progress events then the result
* ``GET  /api/archiver/runs``  -> recent runs
* ``GET  /api/archiver/status`` -> policy, schedule, last error

Without a body, the server's own policy (``--retention``) is used; a body's policy is validated
like a file (400 with the line and field when it is bad) and used for that call only; no policy
at all is a 409.

Plan and run act on every project's traces, so they need an admin key; the GET endpoints need
the ``retention`` permission (ops). Runs asked for here are audited.
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

from tracelake.archiver.api.common import audit, config, json_response, signed_in
from tracelake.archiver.errors import Failed, NoPolicy
from tracelake.archiver.policy import PolicyError, parse_policy
from tracelake.archiver.runs import list_runs
from tracelake.archiver.service import Archiver, archiver_for
from tracelake.auth.roles import Perm
from tracelake.auth.routes import needs

router = APIRouter(prefix="/api/archiver", tags=["archiver"])


async def _archiver(request: Request) -> Archiver:
    """The archiver for this call: one made for the body's policy, else the server's (NoPolicy)."""
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
        return archiver_for(store, config(request), policy)
    archiver = getattr(request.app.state, "archiver", None)
    if archiver is None:
        raise NoPolicy()
    return archiver


def _done_with(request: Request, archiver: Archiver) -> None:
    """Release the connection of an Archiver made for one request (not the server's own)."""
    if archiver is not getattr(request.app.state, "archiver", None):
        archiver.release()


@router.post("/plan", dependencies=[needs(Perm.ADMIN)])
async def plan(request: Request) -> Response:
    archiver = await _archiver(request)
    try:
        result = await run_in_threadpool(archiver.plan)
    except Exception as exc:  # noqa: BLE001 - reported to the caller
        raise Failed.of(exc) from exc
    finally:
        _done_with(request, archiver)
    return json_response(result.to_dict())


@router.post("/run", dependencies=[needs(Perm.ADMIN)])
async def run(request: Request) -> Response:
    archiver = await _archiver(request)
    if signed_in(request) is not None:  # who asked for a run (without auth there is no caller to name)
        await run_in_threadpool(audit, request, "archiver.run", "", "policy sent with the request" if archiver is not
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


@router.get("/runs", dependencies=[needs(Perm.RETENTION)])
async def runs_list(request: Request, limit: int = 50) -> Response:
    rows = await run_in_threadpool(list_runs, request.app.state.store, max(1, min(limit, 1000)))
    return json_response({"runs": [r.to_dict() for r in rows]})


@router.get("/status", dependencies=[needs(Perm.RETENTION)])
async def status(request: Request) -> Response:
    archiver: Archiver | None = getattr(request.app.state, "archiver", None)
    if archiver is None:
        return json_response({"enabled": False})
    return json_response({"enabled": True, "archive": archiver.location.uri,
                          "rules": [r.describe() for r in archiver.policy.rules], "last_error": archiver.last_error})
