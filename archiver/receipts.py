"""Erasure and restore requests as recorded state machines, their frozen targets, and receipts.

A request's state is its row with the highest Version in ``retention_requests`` (migration 22);
each row carries the request's whole JSON document so far (``Doc``): criteria, who and when,
counts, per-step timestamps. A finished erasure's receipt is that document, stored in
``erasure_receipts``. Targets (the (project, trace id) pairs frozen at the start) live in
``retention_targets``.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from tracelake.archiver.runs import as_utc
from tracelake.store.base import Store

HEX_ID = re.compile(r"^[0-9a-f]{1,64}$")

_STATE_SCHEMA = pa.schema([("RequestId", pa.string()), ("Kind", pa.string()), ("State", pa.string()),
                           ("Version", pa.uint64()), ("CreatedAt", pa.timestamp("ms")),
                           ("UpdatedAt", pa.timestamp("ms")), ("Actor", pa.string()), ("Role", pa.string()),
                           ("Doc", pa.string()), ("Error", pa.string())])


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def iso(value: datetime | None = None) -> str:
    return (value or now_utc()).astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _naive(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def check_trace_id(value: str) -> str:
    """A trace id as stored (lower-case hex); anything else is refused before it reaches a predicate."""
    v = value.strip().lower()
    if not HEX_ID.match(v):
        raise ValueError(f"not a trace id (hex): {value[:80]!r}")
    return v


@dataclass
class Request:
    """One erasure or restore, as its latest state row says."""

    request_id: str
    kind: str  # erase | restore
    state: str
    actor: str = "local"
    role: str = "admin"
    version: int = 0
    created_at: datetime = field(default_factory=now_utc)
    updated_at: datetime = field(default_factory=now_utc)
    doc: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    def step(self, name: str) -> None:
        """Note when a step finished (kept in the receipt)."""
        self.doc.setdefault("steps", {})[name] = iso()

    def to_dict(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "kind": self.kind, "state": self.state, "actor": self.actor,
                "role": self.role, "created_at": iso(self.created_at), "updated_at": iso(self.updated_at),
                "error": self.error, **{k: v for k, v in self.doc.items() if k != "trace_ids"}}


def new_request(kind: str, actor: str, role: str, doc: dict[str, Any]) -> Request:
    now = now_utc()
    rid = f"{kind}-{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"
    return Request(rid, kind, "new", actor, role, 0, now, now, doc)


def record(store: Store, req: Request, state: str, error: str = "") -> Request:
    """Write the request's new state (a row with a higher Version): the only way a state changes."""
    req.state, req.version, req.updated_at, req.error = state, req.version + 1, now_utc(), error
    row = {"RequestId": req.request_id, "Kind": req.kind, "State": state, "Version": req.version,
           "CreatedAt": _naive(req.created_at), "UpdatedAt": _naive(req.updated_at), "Actor": req.actor,
           "Role": req.role, "Doc": json.dumps(req.doc, default=str), "Error": error[:4000]}
    store.insert_arrow("retention_requests", pa.Table.from_pylist([row], schema=_STATE_SCHEMA))
    return req


_SELECT = """
SELECT RequestId, argMax(Kind, Version) AS Kind, argMax(State, Version) AS State, max(Version) AS V,
       min(CreatedAt) AS CreatedAt, max(UpdatedAt) AS UpdatedAt, argMax(Actor, Version) AS Actor,
       argMax(Role, Version) AS Role, argMax(Doc, Version) AS Doc, argMax(Error, Version) AS Error
FROM retention_requests GROUP BY RequestId
"""


def _request(r: dict[str, Any]) -> Request:
    try:
        doc = json.loads(r["Doc"] or "{}")
    except ValueError:
        doc = {}
    return Request(r["RequestId"], r["Kind"], r["State"], r["Actor"], r["Role"], int(r["V"]), as_utc(r["CreatedAt"]),
                   as_utc(r["UpdatedAt"]), doc, r["Error"])


def get(store: Store, request_id: str) -> Request | None:
    rows = store.query_arrow(f"SELECT * FROM ({_SELECT}) WHERE RequestId = {{r:String}}",
                             {"r": request_id}).to_pylist()
    return _request(rows[0]) if rows else None


def unfinished(store: Store, kind: str, final: tuple[str, ...] = ("done", "refused")) -> list[Request]:
    """Requests of ``kind`` a previous process left midway, oldest first."""
    finals = ", ".join(f"'{s}'" for s in final)
    rows = store.query_arrow(f"SELECT * FROM ({_SELECT}) WHERE Kind = {{k:String}} AND State NOT IN ({finals}) "
                             f"ORDER BY CreatedAt", {"k": kind}).to_pylist()
    return [_request(r) for r in rows]


def list_requests(store: Store, kind: str, limit: int = 100) -> list[Request]:
    rows = store.query_arrow(f"SELECT * FROM ({_SELECT}) WHERE Kind = {{k:String}} ORDER BY CreatedAt DESC "
                             f"LIMIT {max(1, min(int(limit), 1000))}", {"k": kind}).to_pylist()
    return [_request(r) for r in rows]


# --- targets ----------------------------------------------------------------------------------
def add_targets(store: Store, request_id: str, rows: list[tuple[str, str, str, Any]]) -> None:
    """(Project, TraceId, tier, Day or None) rows frozen for the request: a target is one project's
    spans of a trace, never every span that shares the id."""
    if not rows:
        return
    from datetime import date

    store.insert_arrow("retention_targets", pa.table({
        "RequestId": [request_id] * len(rows), "Project": [p for p, _, _, _ in rows],
        "TraceId": [check_trace_id(t) for _, t, _, _ in rows], "Tier": [tier for _, _, tier, _ in rows],
        "Day": pa.array([d if d is not None else date(1970, 1, 1) for _, _, _, d in rows], pa.date32())}))


def targets(store: Store, request_id: str) -> list[dict[str, Any]]:
    return store.query_arrow("SELECT DISTINCT toString(Project) AS Project, TraceId, toString(Tier) AS Tier, Day "
                             "FROM retention_targets WHERE RequestId = {r:String} ORDER BY Project, TraceId, Tier, Day",
                             {"r": request_id}).to_pylist()


def target_ids(store: Store, request_id: str) -> list[str]:
    return sorted({r["TraceId"] for r in targets(store, request_id)})


def targets_by_project(store: Store, request_id: str) -> dict[str, list[str]]:
    """Project -> its target trace ids."""
    out: dict[str, set[str]] = {}
    for r in targets(store, request_id):
        out.setdefault(r["Project"], set()).add(r["TraceId"])
    return {p: sorted(ids) for p, ids in sorted(out.items())}


# The request's targets as (Project, TraceId) pairs, for ``(Project, TraceId) IN ...`` (param ``r``).
TARGETS_SQL = "(SELECT Project, TraceId FROM retention_targets WHERE RequestId = {r:String})"


# --- receipts ---------------------------------------------------------------------------------
def store_receipt(store: Store, request_id: str, receipt: dict[str, Any]) -> None:
    store.insert_arrow("erasure_receipts", pa.table({
        "RequestId": [request_id], "CreatedAt": pa.array([_naive(now_utc())], pa.timestamp("ms")),
        "Receipt": [json.dumps(receipt, indent=2, sort_keys=True, default=str)]}))


def get_receipt(store: Store, request_id: str) -> dict[str, Any] | None:
    rows = store.query_arrow("SELECT argMax(Receipt, CreatedAt) AS R, count() AS N FROM erasure_receipts "
                             "WHERE RequestId = {r:String}", {"r": request_id}).to_pylist()
    if not rows or not rows[0]["N"]:
        return None
    return json.loads(rows[0]["R"])


def list_receipts(store: Store, limit: int = 100, project: str = "*") -> list[dict[str, Any]]:
    """Newest first: id, when, who, criteria, traces matched (the full receipt is :func:`get_receipt`).
    ``project``: only erasures asked for by that project's callers ('*': all)."""
    out = []
    for r in store.query_arrow(
            "SELECT RequestId, argMax(Receipt, CreatedAt) AS R, max(CreatedAt) AS C FROM erasure_receipts "
            f"GROUP BY RequestId ORDER BY C DESC LIMIT {max(1, min(int(limit), 1000))}").to_pylist():
        doc = json.loads(r["R"])
        if project != "*" and doc.get("request", {}).get("project", "*") != project:
            continue
        out.append({"request_id": r["RequestId"], "finished_at": doc.get("finished_at"),
                    "requested_by": doc.get("request", {}).get("actor"), "criteria": doc.get("request", {}).get("criteria"),
                    "traces": len(doc.get("matched_trace_ids", []))})
    return out
