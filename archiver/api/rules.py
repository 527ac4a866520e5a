"""Editing the retention rules (the Retention page's editor calls the same functions).

* ``POST /api/retention/preview``  body ``{"yaml": "..."}`` (or the YAML itself as the body) ->
  400 ``{"valid": false, "error", "line", "field"}`` when it does not validate, else both plans per
  rule (``rules[]``: today vs edited, what changed) and ``base_version`` to send with the apply;
* ``POST /api/retention/apply``    body ``{"yaml", "base_version", "comment"}`` -> the new version;
  409 when ``--retention FILE`` is the source of truth, or when another version was applied
  after the preview (stale);
* ``GET  /api/retention/versions`` -> the history (who, when, comment), newest first;
* ``GET  /api/retention/versions/{n}`` -> one version with its YAML.

Preview and the reads need the ``retention`` permission (ops); apply needs admin (it changes what
every project keeps). Plans count every project's traces (counts, no content), as the Retention
page does.
"""
from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from tracelake.archiver import policy_store, rules
from tracelake.archiver.api.common import base_state, caller_of, config, json_response, process_store
from tracelake.archiver.errors import BadRequest, NotFound
from tracelake.archiver.policy import PolicyError, RetentionPolicy
from tracelake.auth.roles import Perm
from tracelake.auth.routes import needs

router = APIRouter(prefix="/api/retention", tags=["retention"])


# --- actions (the JSON API and the UI's editor) ---------------------------------------------------
def today_policy(request: Request, src: rules.Source) -> RetentionPolicy | None:
    """The policy the next run would use: the newest stored version (the archiver reads it again at
    each pass, even when another process applied it), else the running archiver's (the file's)."""
    if src.kind == "store" and src.policy is not None:
        return src.policy
    archiver = getattr(request.app.state, "archiver", None)
    if archiver is not None:
        return archiver.pending_policy or archiver.policy
    return src.policy


def preview(request: Request, yaml_text: str) -> dict[str, Any]:
    """Both plans of edited rules beside today's; PolicyError (line and field) when they are bad."""
    store = process_store(request)
    src = rules.source(store, config(request), getattr(request.app.state, "archiver", None))
    result = rules.preview(store, today_policy(request, src), yaml_text)
    return {"valid": True, "base_version": src.base_version, "source": src.to_dict(), **result}


def apply(request: Request, yaml_text: str, base_version: int, comment: str) -> tuple[Any, str]:
    """Apply as the caller: (the new version, what the archiver did). FileIsSource, StaleVersion,
    PolicyError when refused; nothing is saved then."""
    actor, role = caller_of(request)
    return rules.apply(base_state(request), process_store(request), yaml_text, base_version=base_version,
                       actor=actor, role=role, comment=comment, remote=request.client.host if request.client else "")


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


@router.post("/preview", summary="Validate edited rules and plan them beside today's (nothing is saved)",
             dependencies=[needs(Perm.RETENTION)])
async def preview_json(request: Request) -> Response:
    text = _yaml_of(await _body(request))
    return json_response(await run_in_threadpool(preview, request, text))


@router.post("/apply", summary="Apply edited rules as a new version (admin; refused with --retention FILE)",
             dependencies=[needs(Perm.ADMIN)])  # rules: every project's retention
async def apply_json(request: Request) -> Response:
    doc = await _body(request)
    text = _yaml_of(doc)
    base = doc.get("base_version")
    if not isinstance(base, int) or isinstance(base, bool) or base < 0:
        raise BadRequest("missing 'base_version': the version your preview was based on (0 when none)")
    comment = doc.get("comment") or ""
    if not isinstance(comment, str):
        raise BadRequest("'comment' must be text")
    version, outcome = await run_in_threadpool(apply, request, text, base, comment)
    return json_response({"version": version.to_dict(), "archiver": outcome})


@router.get("/versions", summary="Applied rule versions: who, when, comment (newest first)",
            dependencies=[needs(Perm.RETENTION)])
async def versions(request: Request, limit: int = 100) -> Response:
    store = process_store(request)
    rows = await run_in_threadpool(policy_store.history, store, limit)
    src = await run_in_threadpool(rules.source, store, config(request), getattr(request.app.state, "archiver", None))
    return json_response({"source": src.kind, "path": src.path or None, "current": src.base_version,
                          "versions": [v.to_dict(with_yaml=False) for v in rows]})


@router.get("/versions/{version}", summary="One applied version with its YAML", dependencies=[needs(Perm.RETENTION)])
async def version(request: Request, version: int) -> Response:
    found = await run_in_threadpool(policy_store.get, process_store(request), version)
    if found is None:
        raise NotFound(f"no rules version {version}")
    return json_response(found.to_dict())
