"""The alerts' JSON API (/api/alerts/...); the Alerts page calls the same actions.

Reads (rules with states, history, deliveries, silences) need ``read`` and show the caller's
projects; changes (rules, destinations, silences, a round now) need ``alerts`` (ops, admin) and
are audited, never with a destination's secret. Every refusal is an
:class:`~tracelake.alerts.errors.AlertError`, answered by :func:`access.error_response`.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from tracelake.alerts import access, delivery, destinations, history, silences, versions, views
from tracelake.alerts.access import json_response
from tracelake.alerts.errors import BadRequest, Conflict, NotFound
from tracelake.alerts.model import NAME_RE, RuleSet
from tracelake.alerts.preview import preview as replay
from tracelake.alerts.rulefile import parse_rules
from tracelake.alerts.service import combine, source, stored_files
from tracelake.auth.roles import Perm
from tracelake.auth.routes import needs
from tracelake.durations import parse_duration

router = APIRouter(prefix="/api/alerts", tags=["alerts"])
MAX_PREVIEW_DAYS = 14


# --- actions ---------------------------------------------------------------------------------------
def rules_overview(request: Request) -> dict[str, Any]:
    store = access.process_store(request)
    rules = [r for r in access.rules_in_force(request).rules if access.visible(request, r)]
    rows = getattr(request.app.state, "alert_trace_rows", None)
    e = access.engine(request)
    return {"evaluated_at": e.last.at.isoformat() if e is not None and e.last else None,
            "every_s": int(access.config(request).every.total_seconds()),
            "rules": views.overview(store, rules, access.projects(request), rows, access.now())}


def find_rule(request: Request, name: str, project: str | None) -> Any:
    rules = access.rules_in_force(request)
    found = [r for r in rules.rules if r.name == name and access.visible(request, r)
             and (project is None or r.project == project)]
    if not found:
        raise NotFound(f"no rule {name[:64]!r} you may see")
    return found[0]


def rule_detail(request: Request, name: str, project: str | None) -> dict[str, Any]:
    rule = find_rule(request, name, project)
    return views.rule_detail(access.process_store(request), rule, getattr(request.app.state, "alert_trace_rows", None),
                             access.config(request).public_url, access.now())


def preview(request: Request, yaml_text: str, project: str | None, days: float = 7) -> dict[str, Any]:
    """Validate the edited file (RuleFileError: line and field) and replay it over the last days."""
    owner = access.own_project(request, project)
    cfg = access.config(request)
    edited = parse_rules(yaml_text, versions.SOURCE, owner)
    src = source(access.process_store(request), cfg, owner)
    _combined(request, owner, edited)
    span = timedelta(days=max(min(float(days), MAX_PREVIEW_DAYS), 1 / 24))
    result = replay(access.process_store(request), edited, access.trace_rows(request), end=access.now(), span=span,
                    every=cfg.every)
    return {"valid": True, "project": owner or None, "base_version": src.base_version, "source": src.to_dict(),
            **result}


def _combined(request: Request, owner: str, edited: RuleSet) -> RuleSet:
    """Every project's file with this one replaced: Conflict when a rule would be defined twice."""
    files = stored_files(access.process_store(request))
    files[owner] = edited
    return combine(files)


def apply(request: Request, yaml_text: str, project: str | None, base_version: int, comment: str) -> dict[str, Any]:
    owner = access.own_project(request, project)
    cfg = access.config(request)
    if cfg.rules_file is not None:
        raise Conflict(f"the rules come from the file {cfg.rules_file} given with --alerts, which stays the source of "
                       "truth: edit that file and restart the server", {"reason": "file"})
    edited = parse_rules(yaml_text, versions.SOURCE, owner)
    _combined(request, owner, edited)
    who, role = access.actor(request)
    store = access.process_store(request)
    version = versions.save(store, yaml_text, project=owner, actor=who, role=role, comment=comment, expected=base_version)
    access.audit(request, "alerts.apply", f"{owner or 'admins'} version {version.version}",
                 f"{len(edited.rules)} rules: {', '.join(r.name for r in edited.rules)}; sha256 {version.sha256[:16]}; "
                 f"{comment}", project=owner)
    e = access.engine(request)
    if e is not None and e.refresh is not None:
        fresh = e.refresh(store)  # in force from the next round (the schedule reads it again anyway)
        if fresh is not None:
            e.use(fresh)
    return {"version": version.to_dict(with_yaml=False), "rules": len(edited.rules)}


def put_destination(request: Request, name: str, body: dict[str, Any]) -> destinations.Destination:
    owner = access.own_project(request, body.get("project") if isinstance(body.get("project"), str) else None)
    kind, secret = str(body.get("kind") or ""), body.get("secret")
    if not isinstance(secret, str) or not secret.strip():
        raise BadRequest("missing 'secret': the webhook URL or the e-mail addresses (write-only)", {"field": "secret"})
    existing = destinations.get(access.process_store(request), name)
    mine = access.projects(request)
    if existing is not None and mine is not None and existing.project not in mine:
        raise BadRequest(f"the name {name[:64]!r} is taken", {"field": "name"})
    who, _ = access.actor(request)
    d = destinations.put(access.process_store(request), name=name, kind=kind, secret=secret, project=owner, actor=who,
                         now=access.now())
    access.audit(request, "alerts.destination." + ("replace" if existing else "create"), name,
                 f"kind {d.kind}; fingerprint {d.fingerprint}", project=owner)  # never the secret
    return d


def delete_destination(request: Request, name: str) -> None:
    who, _ = access.actor(request)
    d = destinations.get(access.process_store(request), name)
    destinations.delete(access.process_store(request), name, access.projects(request), who, access.now())
    access.audit(request, "alerts.destination.delete", name, project=d.project if d else "")


def test_destination(request: Request, name: str) -> list[dict[str, Any]]:
    """Send a test message to the destination now (through the outbox: retried like any other)."""
    store = access.process_store(request)
    d = destinations.get(store, name)
    mine = access.projects(request)
    if d is None or (mine is not None and d.project not in mine and d.project != ""):
        raise NotFound(f"no destination {name[:64]!r}")
    from tracelake.alerts.messages import VERSION
    from tracelake.alerts import db

    now = access.now()
    mid = db.new_id()
    who, _ = access.actor(request)
    body = {"version": VERSION, "id": mid, "kind": "test", "state": "test", "at": now.isoformat(),
            "rule": {"name": "test", "filter": "", "aggregate": "count", "window": "1m", "op": ">", "threshold": 0,
                     "project": d.project or None, "severity": "info", "description": f"test message sent by {who}",
                     "group_by": None},
            "group": None, "value": None, "value_text": "test", "threshold_text": "", "since": now.isoformat(),
            "window": {"start": now.isoformat(), "end": now.isoformat()},
            "links": {"traces": access.config(request).public_url + "/traces", "rule": access.config(request).public_url + "/alerts"}}
    delivery.enqueue(store, [delivery.Message(mid, name, d.project, "test", "", "test", body, now, now)])
    delivery.deliver_due(store, access.config(request), now)
    access.audit(request, "alerts.destination.test", name, project=d.project)
    return delivery.delivery_log(store, message_id=mid)


def create_silence(request: Request, body: dict[str, Any]) -> silences.Silence:
    rule = str(body.get("rule") or "").strip()
    if rule != "*" and not NAME_RE.match(rule):
        raise BadRequest("'rule': a rule name, or * for every rule of the project", {"field": "rule"})
    owner = access.own_project(request, body.get("project") if isinstance(body.get("project"), str) else None)
    now = access.now()
    ends_at = _ends_at(body, now)
    who, _ = access.actor(request)
    s = silences.create(access.process_store(request), rule=rule, group=str(body.get("group") or "")[:500],
                        project=owner, ends_at=ends_at, reason=str(body.get("reason") or ""), actor=who, now=now)
    access.audit(request, "alerts.silence", f"{rule}{'/' + s.group if s.group else ''}",
                 f"until {s.ends_at.isoformat()}: {s.reason}", project=owner)
    return s


def _ends_at(body: dict[str, Any], now: datetime) -> datetime:
    if body.get("for"):
        try:
            length = parse_duration(str(body["for"]), allow_forever=False)
        except ValueError as exc:
            raise BadRequest(f"'for': {exc}", {"field": "for"}) from None
        assert length is not None
        return now + length
    text = str(body.get("ends_at") or "").strip()
    if not text:
        raise BadRequest("give 'for' (e.g. 2h) or 'ends_at' (ISO time, UTC)", {"field": "ends_at"})
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"'ends_at': not an ISO time: {text[:40]!r}", {"field": "ends_at"}) from None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t


def lift_silence(request: Request, silence_id: str) -> silences.Silence:
    s = silences.lift(access.process_store(request), silence_id, access.projects(request))
    access.audit(request, "alerts.silence.lift", f"{s.rule}{'/' + s.group if s.group else ''}", s.reason,
                 project=s.project)
    return s


def evaluate_now(request: Request) -> dict[str, Any]:
    e = access.engine(request)
    if e is None:
        raise Conflict("no alert schedule runs in this process (tracelake server runs it)")
    now = access.now()
    done = e.evaluate(now)
    delivery.deliver_due(e.store, e.config, now)
    access.audit(request, "alerts.evaluate", f"{done.rules} rules", f"{len(done.changes)} changes")
    mine = access.projects(request)
    return {**done.summary(), "changes": [{"rule": c.rule.name, "project": c.rule.project or None,
                                           "group": c.group if c.rule.group_by else None, "to": c.to_state,
                                           "value": c.value} for c in done.changes
                                          if mine is None or c.rule.project in mine]}


def _project_arg(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# --- routes ----------------------------------------------------------------------------------------
@router.get("/rules", summary="The rules in force with their states and sparklines", dependencies=[needs(Perm.READ)])
async def rules_list(request: Request) -> Response:
    return json_response(await run_in_threadpool(rules_overview, request))


@router.get("/rules/{name}", summary="One rule: states, history with trace links, deliveries",
            dependencies=[needs(Perm.READ)])
async def rule_get(request: Request, name: str, project: str | None = None) -> Response:
    return json_response(await run_in_threadpool(rule_detail, request, name, project))


@router.get("/events", summary="Changes of state, newest first", dependencies=[needs(Perm.READ)])
async def events_list(request: Request, rule: str = "", limit: int = 200) -> Response:
    found = await run_in_threadpool(lambda: history.events(access.process_store(request), rule=rule,
                                                           projects=access.projects(request), limit=limit))
    return json_response({"events": found})


@router.get("/deliveries", summary="The delivery log: every attempt of every message", dependencies=[needs(Perm.READ)])
async def deliveries_list(request: Request, rule: str = "", message: str = "", limit: int = 200) -> Response:
    found = await run_in_threadpool(lambda: delivery.delivery_log(
        access.process_store(request), projects=access.projects(request), rule=rule, message_id=message, limit=limit))
    return json_response({"deliveries": found})


@router.get("/silences", summary="Silences (active and past)", dependencies=[needs(Perm.READ)])
async def silences_list(request: Request) -> Response:
    now = access.now()
    found = await run_in_threadpool(silences.all_silences, access.process_store(request), access.projects(request))
    return json_response({"silences": [s.to_dict(now) for s in found]})


@router.post("/silences", summary="Silence a rule (or a group, or * for all) until a time, with a reason",
             dependencies=[needs(Perm.ALERTS)])
async def silences_create(request: Request) -> Response:
    body = await access.read_body(request)
    s = await run_in_threadpool(create_silence, request, body)
    return json_response({"silence": s.to_dict(access.now())}, 201)


@router.post("/silences/{silence_id}/lift", summary="End a silence now", dependencies=[needs(Perm.ALERTS)])
async def silences_lift(request: Request, silence_id: str) -> Response:
    s = await run_in_threadpool(lift_silence, request, silence_id)
    return json_response({"silence": s.to_dict(access.now())})


@router.post("/preview", summary="Validate edited rules and replay them over the last days (nothing is saved)",
             dependencies=[needs(Perm.ALERTS)])
async def preview_json(request: Request, project: str | None = None) -> Response:
    body = await access.read_body(request)
    text = body.get("yaml")
    if not isinstance(text, str):
        raise BadRequest("missing 'yaml': the alert rules as YAML text", {"field": "yaml"})
    days = body.get("days", 7)
    if not isinstance(days, (int, float)) or isinstance(days, bool):
        raise BadRequest("'days' must be a number", {"field": "days"})
    return json_response(await run_in_threadpool(preview, request, text, _project_arg(body.get("project")) or project,
                                                 float(days)))


@router.post("/apply", summary="Save edited rules as a new version of the project's file",
             dependencies=[needs(Perm.ALERTS)])
async def apply_json(request: Request, project: str | None = None) -> Response:
    body = await access.read_body(request)
    text, base, comment = body.get("yaml"), body.get("base_version"), body.get("comment") or ""
    if not isinstance(text, str):
        raise BadRequest("missing 'yaml': the alert rules as YAML text", {"field": "yaml"})
    if not isinstance(base, int) or isinstance(base, bool) or base < 0:
        raise BadRequest("missing 'base_version': the version your preview was based on (0 when none)",
                         {"field": "base_version"})
    if not isinstance(comment, str):
        raise BadRequest("'comment' must be text", {"field": "comment"})
    done = await run_in_threadpool(apply, request, text, _project_arg(body.get("project")) or project, base, comment)
    return json_response(done)


@router.get("/versions", summary="Versions of the project's rule file, newest first", dependencies=[needs(Perm.ALERTS)])
async def versions_list(request: Request, project: str | None = None, limit: int = 100) -> Response:
    owner = access.own_project(request, project)
    found = await run_in_threadpool(versions.history, access.process_store(request), owner, limit)
    src = await run_in_threadpool(source, access.process_store(request), access.config(request), owner)
    return json_response({"source": src.to_dict(), "versions": [v.to_dict(with_yaml=False) for v in found]})


@router.get("/versions/{version}", summary="One version with its YAML", dependencies=[needs(Perm.ALERTS)])
async def version_get(request: Request, version: int, project: str | None = None) -> Response:
    owner = access.own_project(request, project)
    found = await run_in_threadpool(versions.get, access.process_store(request), version, owner)
    if found is None:
        raise NotFound(f"no version {version}")
    return json_response(found.to_dict())


@router.get("/destinations", summary="Destinations: name, kind, fingerprint (never the secret)",
            dependencies=[needs(Perm.ALERTS)])
async def destinations_list(request: Request) -> Response:
    found = await run_in_threadpool(destinations.all_destinations, access.process_store(request),
                                    access.projects(request))
    return json_response({"destinations": [d.to_dict() for d in found]})


@router.put("/destinations/{name}", summary="Create or replace a destination (its secret is write-only)",
            dependencies=[needs(Perm.ALERTS)])
async def destinations_put(request: Request, name: str) -> Response:
    body = await access.read_body(request)
    d = await run_in_threadpool(put_destination, request, name, body)
    return json_response({"destination": d.to_dict()}, 201)


@router.delete("/destinations/{name}", summary="Delete a destination", dependencies=[needs(Perm.ALERTS)])
async def destinations_delete(request: Request, name: str) -> Response:
    await run_in_threadpool(delete_destination, request, name)
    return json_response({"deleted": name})


@router.post("/destinations/{name}/test", summary="Send a test message now", dependencies=[needs(Perm.ALERTS)])
async def destinations_test(request: Request, name: str) -> Response:
    attempts = await run_in_threadpool(test_destination, request, name)
    return json_response({"attempts": attempts})


@router.post("/evaluate", summary="Evaluate every rule now and send what is due", dependencies=[needs(Perm.ALERTS)])
async def evaluate_json(request: Request) -> Response:
    return json_response(await run_in_threadpool(evaluate_now, request))


__all__ = ["apply", "create_silence", "delete_destination", "evaluate_now", "find_rule", "lift_silence", "preview",
           "put_destination", "router", "rule_detail", "rules_overview", "test_destination"]
