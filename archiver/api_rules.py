"""HTTP endpoints for editing the retention rules (the Retention page uses the same functions).

* ``POST /api/retention/preview``  body ``{"yaml": "..."}`` (or the YAML itself as the body) ->
  400 ``{"error", "line", "field"}`` when it does not validate, else both plans per rule
  (``rules[]``: today vs edited, what changed) and ``base_version`` to send with the apply;
* ``POST /api/retention/apply``    body ``{"yaml", "base_version", "comment"}`` -> the new version;
  409 when ``--retention FILE`` is the source of truth, or when another version was applied
  after the preview (stale);
* ``GET  /api/retention/versions`` -> the history (who, when, comment), newest first;
* ``GET  /api/retention/versions/{n}`` -> one version with its YAML.

Under auth, preview and the reads need the ``retention`` permission (ops); apply needs admin
(it changes what every project keeps). Plans count every project's traces (counts, no content),
as the Retention page does.
"""
from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from tracelake.archiver import policy_store, rules
from tracelake.archiver.api import json_response as _json
from tracelake.archiver.policy import PolicyError

router = APIRouter(prefix="/api/retention", tags=["retention"])


def process_store(request: Request) -> Any:
    """The process's store (a caller's scoped store hides the versions table; plans count every
    project, as the Retention page does)."""
    store = request.app.state.store
    return getattr(store, "inner", store)


def base_state(request: Request) -> Any:
    """``app.state`` itself (under auth, request.app.state is a per-request view: setting the
    archiver on it would not last)."""
    state = request.app.state
    return getattr(state, "_base", state)


def caller_of(request: Request) -> tuple[str, str]:
    """(actor, role): the caller's key id and role; "local" when auth is off."""
    caller = (request.scope.get("state") or {}).get("caller")
    return (caller.actor, caller.role.value) if caller is not None else ("local", "local")


def today_policy(request: Request, src: rules.Source) -> Any:
    """The policy the next run would use: the newest stored version (the archiver reads it again at
    each pass, even when another process applied it), else the running archiver's (the file's)."""
    if src.kind == "store" and src.policy is not None:
        return src.policy
    archiver = getattr(request.app.state, "archiver", None)
    if archiver is not None:
        return archiver.pending_policy or archiver.policy
    return src.policy


def do_preview(request: Request, yaml_text: str) -> dict[str, Any]:
    store = process_store(request)
    src = rules.source(store, request.app.state.settings, getattr(request.app.state, "archiver", None))
    result = rules.preview(store, today_policy(request, src), yaml_text)
    return {"valid": True, "base_version": src.base_version, "source": src.to_dict(), **result}


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > 4 * policy_store.MAX_YAML_BYTES:
        raise PolicyError("request body too large")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json" or raw.lstrip().startswith(b"{"):
        try:
            doc = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError as exc:
            raise PolicyError(f"request body is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise PolicyError("request body must be a JSON object with 'yaml'")
        return doc
    return {"yaml": raw.decode("utf-8", errors="replace")}


def _yaml_of(doc: dict[str, Any]) -> str:
    text = doc.get("yaml")
    if not isinstance(text, str) or not text.strip():
        raise PolicyError("missing 'yaml': the retention rules as YAML text")
    return text


@router.post("/preview", summary="Validate edited rules and plan them beside today's (nothing is saved)")
async def preview(request: Request) -> Response:
    try:
        text = _yaml_of(await _body(request))
        result = await run_in_threadpool(do_preview, request, text)
    except PolicyError as exc:
        return _json({"valid": False, **rules.EditError.of(exc).to_dict()}, 400)
    return _json(result)


@router.post("/apply", summary="Apply edited rules as a new version (admin; refused with --retention FILE)")
async def apply(request: Request) -> Response:
    try:
        doc = await _body(request)
        text = _yaml_of(doc)
    except PolicyError as exc:
        return _json(rules.EditError.of(exc).to_dict(), 400)
    base = doc.get("base_version")
    if not isinstance(base, int) or isinstance(base, bool) or base < 0:
        return _json({"error": "missing 'base_version': the version your preview was based on (0 when none)"}, 400)
    comment = doc.get("comment") or ""
    if not isinstance(comment, str):
        return _json({"error": "'comment' must be text"}, 400)
    actor, role = caller_of(request)
    try:
        version, outcome = await run_in_threadpool(
            rules.apply, base_state(request), process_store(request), text, base_version=base, actor=actor, role=role,
            comment=comment, remote=request.client.host if request.client else "")
    except rules.FileIsSource as exc:
        return _json({"error": str(exc), "reason": "file", "path": exc.path}, 409)
    except rules.StaleVersion as exc:
        current = exc.current.to_dict(with_yaml=False) if exc.current else None
        return _json({"error": str(exc), "reason": "stale", "current": current}, 409)
    except PolicyError as exc:
        return _json(rules.EditError.of(exc).to_dict(), 400)
    return _json({"version": version.to_dict(), "archiver": outcome})


@router.get("/versions", summary="Applied rule versions: who, when, comment (newest first)")
async def versions(request: Request, limit: int = 100) -> Response:
    store = process_store(request)
    rows = await run_in_threadpool(policy_store.history, store, limit)
    src = await run_in_threadpool(rules.source, store, request.app.state.settings,
                                  getattr(request.app.state, "archiver", None))
    return _json({"source": src.kind, "path": src.path or None, "current": src.base_version,
                  "versions": [v.to_dict(with_yaml=False) for v in rows]})


@router.get("/versions/{version}", summary="One applied version with its YAML")
async def version(request: Request, version: int) -> Response:
    found = await run_in_threadpool(policy_store.get, process_store(request), version)
    if found is None:
        return _json({"error": f"no rules version {version}"}, 404)
    return _json(found.to_dict())
