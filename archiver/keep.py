"""Pins and legal holds: what keeps a trace from leaving hot or from being deleted.

* A **pin** keeps one trace hot and out of every deletion until it is unpinned or its ``until``
  passes. ``retention_pins`` has one row per change (pin, unpin), so who pinned what and when stays.
  A pin is a project's (migration 26): it keeps that project's spans of the trace, and is seen,
  changed and removed only by callers of that project (or an admin). A trace id shared by two
  projects has a pin per project; an admin's pin is one for every project holding the trace.
* A **hold** is a named filter of the UI's language plus a reason: while it is active, no trace it
  matches is deleted in any tier (a held trace may still move from hot to the archive).
  ``retention_holds`` has one row per change (create, release); names are unique for all time and
  across projects, so a name's history is one hold's history.
* A hold has a **project**: it covers only that project's traces (its filter AND ``project = P``,
  in both tiers). ``''`` means every project (a global hold, made by an admin; every hold made
  before migration 25 is one). Who sees and changes what (:func:`visible`, :func:`hold_project`,
  :func:`release_hold`): an admin (viewer ``*``) everything; a project's caller its project's holds,
  and of global holds only that they exist (name, who, when), never their filter or reason.

Both tables are ReplacingMergeTree ordered by (key, Version): a change is an insert, an identical
retry of the same insert merges away, and the history is never rewritten (migration 21).

User values reach ClickHouse only as bound parameters; hold filters are parsed (a
:class:`~tracelake.query.filters.FilterError` names what is wrong) and compiled by
:mod:`tracelake.query.compile` like the trace list's filters.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from tracelake.archiver.errors import BadRequest
from tracelake.auth.roles import ALL_PROJECTS, valid_project  # ALL_PROJECTS: a viewer who sees every hold
from tracelake.durations import parse_duration
from tracelake.query.compile import ALL_AGGS, ARCHIVE, HOT, Compiler, Tier, aggs
from tracelake.query.filters import FilterError, Node, parse
from tracelake.query.params import Params, query
from tracelake.store.base import Store
from tracelake.store.keep_schema import (  # noqa: F401 - re-exported
    _ACTIVE_PIN,
    PINNED_TRACES_SQL,
    STATEMENTS,
    pinned_condition,
    pinned_pairs_sql,
    pinned_sql,
)
from tracelake.store.tiers import archive_present



HEX_ID = re.compile(r"^[0-9a-f]{1,32}$")
HOLD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@ \-]{0,99}$")
MAX_REASON = 2000
MAX_ACTOR = 200
# Span subqueries of hold filters look at every span of the traces in scope.
_SPAN_LO, _SPAN_HI = 0, 4_102_444_800 * 10**9  # 1970 .. 2100


GLOBAL_DETAILS = "global hold (details visible to admins)"
ADMIN_HOLD = "a hold made by an admin"  # what a project's caller is told of a hold not its own


class KeepError(BadRequest):
    """A pin or hold request that cannot be done; the message names what is wrong, ``field`` the
    form field it is about."""

    field = "reason"

    def __init__(self, message: str, field: str | None = None, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message, detail=detail)
        if field is not None:
            self.field = field

    def to_dict(self) -> dict[str, Any]:
        return {"error": str(self), "field": self.field, **self.detail}


class HoldForbidden(KeepError):
    """The caller may not do this to a hold (HTTP 403); the message reveals nothing of other projects."""

    status = 403
    field = "project"


class HoldNameTaken(KeepError):
    """The name is (or was) a hold's, of any project (HTTP 409)."""

    status = 409
    field = "name"


class HoldFilterError(KeepError, FilterError):
    """A hold's filter that does not parse (or is empty: a hold on everything is refused); the
    form marks ``pos``..``end`` of the filter field."""

    def __init__(self, cause: FilterError) -> None:
        KeepError.__init__(self, f"filter: {cause}", "filter", {"pos": cause.pos, "end": cause.end})
        self.message, self.pos, self.end = cause.message, cause.pos, cause.end


def parse_until(text: str | None, now: datetime | None = None) -> datetime | None:
    """A pin's end: '30d' (from now), an ISO time, or empty/None/'forever' (until unpinned).
    :class:`KeepError` names the problem."""
    text = (text or "").strip()
    if not text or text.lower() in ("forever", "none", "never"):
        return None
    now = now or datetime.now(timezone.utc)
    try:
        d = parse_duration(text, allow_forever=False)
        assert d is not None
    except ValueError:
        d = None
    if d is not None:
        if d.total_seconds() <= 0:
            raise KeepError("'until' must be a positive duration like 30d", "until")
        return now + d
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise KeepError(f"'until' is a duration like 30d or an ISO time like 2027-01-31T00:00:00Z, not {text[:60]!r}",
                        "until") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Pin:
    trace_id: str
    until: datetime | None  # None: until unpinned
    actor: str
    reason: str
    created: datetime
    project: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"trace_id": self.trace_id, "project": self.project, "until": _iso(self.until), "actor": self.actor,
                "reason": self.reason, "created": _iso(self.created)}


@dataclass(frozen=True)
class Hold:
    name: str
    filter: str
    reason: str
    actor: str  # who created it
    created: datetime
    released: datetime | None = None
    released_by: str = ""
    project: str = ""  # '' = every project
    hidden: bool = False  # filter and reason withheld from this viewer (see seen_by)

    @property
    def active(self) -> bool:
        return self.released is None

    def node(self) -> Node | None:
        return parse(self.filter)

    def seen_by(self, viewer: str) -> Hold:
        """This hold as ``viewer`` (a project, or ``*``) may see it: a global hold's filter and
        reason are for admins only."""
        if viewer == ALL_PROJECTS or self.project:
            return self
        return replace(self, filter="", reason="", hidden=True)

    def to_dict(self) -> dict[str, Any]:
        doc = {"name": self.name, "project": self.project or None, "filter": self.filter, "reason": self.reason,
               "actor": self.actor, "created": _iso(self.created), "released": _iso(self.released),
               "released_by": self.released_by, "active": self.active}
        if self.hidden:
            doc.update(filter=None, reason=None, details=GLOBAL_DETAILS)
        return doc


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def _ms(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp() * 1000)


_VERSION_LOCK = threading.Lock()
_last_version = [0]


def _version() -> int:
    """Strictly increasing within the process, and time-ordered across processes (ns clock)."""
    with _VERSION_LOCK:
        v = max(time.time_ns(), _last_version[0] + 1)
        _last_version[0] = v
        return v


def check_trace_id(trace_id: str) -> str:
    tid = (trace_id or "").strip().lower()
    if not HEX_ID.match(tid):
        raise KeepError(f"a trace id is 1-32 hexadecimal characters, not {trace_id[:80]!r}")
    return tid


def _actor(actor: str) -> str:
    actor = (actor or "").strip()
    if not actor:
        raise KeepError("who makes the change (actor) is required")
    return actor[:MAX_ACTOR]


# --- pins ----------------------------------------------------------------------------------------
def _write_pin(store: Store, project: str, trace_id: str, pinned: bool, until: datetime | None, actor: str,
               reason: str, now_ms: int) -> None:
    p = Params()
    store.execute(
        "INSERT INTO retention_pins (Project, TraceId, Version, Pinned, Until, Actor, Reason, Time) VALUES "
        f"({p.s(project)}, {p.s(trace_id)}, {p.add(_version(), 'UInt64')}, {p.add(int(pinned), 'UInt8')}, "
        f"fromUnixTimestamp64Milli({p.i(_ms(until) if until else 0)}), {p.s(actor)}, {p.s(reason)}, "
        f"fromUnixTimestamp64Milli({p.i(now_ms)}))", p.bound(store))


def trace_projects(store: Store, trace_id: str) -> list[str]:
    """The projects holding spans of the trace, hot or archived, as ``store`` sees them (a
    caller's scoped store: the caller's projects only)."""
    p = Params()
    t = p.s(check_trace_id(trace_id))
    rows = query(store, f"SELECT DISTINCT Project FROM trace_summary WHERE TraceId = {t} UNION DISTINCT "
                        f"SELECT DISTINCT Project FROM trace_summary_archive WHERE TraceId = {t}", p)
    return sorted({str(r["Project"]) for r in rows})


def pin(store: Store, trace_id: str, *, until: datetime | None, actor: str, reason: str = "",
        projects: list[str] | None = None) -> Pin:
    """Pin a trace (again: the new pin replaces the old one's ``until``) for ``projects``: by default
    every project holding the trace that ``store`` sees (a project's caller: its own). The caller
    checks that the trace exists; this checks the id's form. ``until`` must be in the future."""
    tid = check_trace_id(trace_id)
    who = _actor(actor)
    now = datetime.now(timezone.utc)
    if until is not None and _ms(until) <= _ms(now):
        raise KeepError(f"'until' must be in the future, not {until.isoformat()}")
    if len(reason) > MAX_REASON:
        raise KeepError(f"the reason is {len(reason)} characters, at most {MAX_REASON}")
    owners = sorted(set(projects)) if projects is not None else trace_projects(store, tid)
    if not owners:
        if getattr(store, "projects", None) is not None:  # a project's caller pins its own spans only
            raise KeepError(f"no trace {tid} to pin", "trace_id")
        owners = [""]  # unscoped (admin, CLI): an id no span has yet; the pin covers every project
    for project in owners:
        _write_pin(store, project, tid, True, until, who, reason, _ms(now))
    return Pin(tid, _dt(_ms(until)) if until else None, who, reason, _dt(_ms(now)), ", ".join(owners))


def unpin(store: Store, trace_id: str, *, actor: str, projects: list[str] | None = None) -> bool:
    """Remove the trace's active pins that ``store`` sees (a project's caller: its project's pin
    only; another project's pin of the same trace id stays), or only those of ``projects``.
    False (nothing written) when there was none."""
    tid = check_trace_id(trace_id)
    who = _actor(actor)
    found = [x for x in _active_pin_rows(store, [tid]) if projects is None or x.project in projects]
    now_ms = _ms(datetime.now(timezone.utc))
    for x in found:
        _write_pin(store, x.project, tid, False, None, who, "", now_ms)
    return bool(found)


def _pin_rows(store: Store, where: str, p: Params) -> list[Pin]:
    now = p.i(_ms(datetime.now(timezone.utc)))
    rows = query(store, "SELECT Project, TraceId, toUnixTimestamp64Milli(Until) AS U, Actor, Reason, "
                        "toUnixTimestamp64Milli(Time) AS T FROM retention_pins_current "
                        f"WHERE {_ACTIVE_PIN.format(now=now)} AND {where} ORDER BY Time DESC, TraceId, Project", p)
    return [Pin(r["TraceId"], _dt(r["U"]) if r["U"] else None, r["Actor"], r["Reason"], _dt(r["T"]), r["Project"])
            for r in rows]


def _active_pin_rows(store: Store, trace_ids: list[str]) -> list[Pin]:
    ids = sorted({t.lower() for t in trace_ids if HEX_ID.match(t.lower())})
    if not ids:
        return []
    p = Params()
    return _pin_rows(store, f"TraceId IN (SELECT arrayJoin(splitByChar(',', {p.s(','.join(ids))})))", p)


def active_pins(store: Store, trace_ids: list[str]) -> dict[str, Pin]:
    """The active pin of each given trace that has one (as ``store`` sees pins: a project's caller
    its project's; with several projects' pins of one id, the newest)."""
    out: dict[str, Pin] = {}
    for x in _active_pin_rows(store, trace_ids):
        out.setdefault(x.trace_id, x)
    return out


def pinned_until(store: Store, trace_ids: list[str]) -> dict[str, datetime | None]:
    """Active pins only: trace id -> until (None: until unpinned)."""
    return {t: x.until for t, x in active_pins(store, trace_ids).items()}


def list_pins(store: Store, limit: int = 500) -> list[Pin]:
    """Active pins, newest first."""
    p = Params()
    return _pin_rows(store, "1", p)[: max(1, int(limit))]


def pin_history(store: Store, trace_id: str) -> list[dict[str, Any]]:
    """Every change of one trace's pin, oldest first."""
    p = Params()
    rows = query(store, "SELECT Project, Pinned, toUnixTimestamp64Milli(Until) AS U, Actor, Reason, "
                        f"toUnixTimestamp64Milli(Time) AS T FROM retention_pins FINAL WHERE TraceId = "
                        f"{p.s(check_trace_id(trace_id))} ORDER BY Version, Project", p)
    return [{"action": "pin" if r["Pinned"] else "unpin", "project": r["Project"],
             "until": _iso(_dt(r["U"])) if r["U"] else None,
             "actor": r["Actor"], "reason": r["Reason"], "time": _iso(_dt(r["T"]))} for r in rows]


# --- holds ---------------------------------------------------------------------------------------
_HOLD_LOCK = threading.Lock()  # name uniqueness within a process (check then insert)


def _write_hold(store: Store, h: Hold, active: bool, actor: str, now_ms: int) -> None:
    p = Params()
    store.execute(
        "INSERT INTO retention_holds (Name, Version, Active, Filter, Reason, Actor, Time, Project) VALUES "
        f"({p.s(h.name)}, {p.add(_version(), 'UInt64')}, {p.add(int(active), 'UInt8')}, {p.s(h.filter)}, "
        f"{p.s(h.reason)}, {p.s(actor)}, fromUnixTimestamp64Milli({p.i(now_ms)}), {p.s(h.project)})", p.bound(store))


def audit_detail(hold: Hold, full: bool = True) -> str:
    """An audit entry's detail of a hold change: its project always, filter and reason on creation."""
    scope = f"project {hold.project or 'all projects'}"
    return f"{scope}; filter {hold.filter}; reason {hold.reason}" if full else scope


def visible(h: Hold, viewer: str) -> bool:
    """Whether ``viewer`` sees the hold at all: admins every hold, a project its own and global ones."""
    return viewer == ALL_PROJECTS or h.project in ("", viewer)


def hold_project(requested: str | None, viewer: str) -> str:
    """The project of a hold ``viewer`` asks to make: an admin's choice ('' = every project, the
    default); a project's caller always makes holds of its own project, and asking for another
    project is refused (:class:`HoldForbidden`)."""
    requested = (requested or "").strip()
    if viewer != ALL_PROJECTS:
        if requested not in ("", viewer):
            raise HoldForbidden(f"a key of project {viewer!r} makes holds for that project only, not for "
                                f"{requested[:80]!r}; holds of other projects or of all projects are made by an admin")
        return viewer
    if requested in ("", ALL_PROJECTS):
        return ""
    if not valid_project(requested):
        raise KeepError(f"project: {requested[:80]!r} is not a project name (letters, digits, '_', '.', '-')",
                        "project")
    return requested


def check_hold_name(name: str) -> str:
    name = (name or "").strip()
    if not HOLD_NAME.match(name):
        raise KeepError("a hold name is 1-100 characters: letters, digits, space, '_', '.', ':', '@' or '-', "
                        f"starting with a letter or digit (got {name[:120]!r})", "name")
    if name.lower() == ADMIN_HOLD:
        raise KeepError(f"{name!r} is what erasure says of holds not the caller's own; choose another name", "name")
    return name


def create_hold(store: Store, name: str, filter_text: str, reason: str, *, actor: str, project: str = "",
                viewer: str = ALL_PROJECTS) -> Hold:
    """A new active hold of ``project`` ('' = every project) made by ``viewer`` (see
    :func:`hold_project`). Raises :class:`HoldFilterError` (a FilterError) for a filter that does
    not parse (or is empty: a hold on everything is refused), KeepError for a bad or already used name, a missing reason, a
    project the viewer may not make holds for."""
    name = check_hold_name(name)
    project = hold_project(project, viewer)
    who = _actor(actor)
    filter_text = (filter_text or "").strip()
    try:
        node = parse(filter_text)
    except FilterError as exc:
        raise HoldFilterError(exc) from exc
    if node is None:
        raise HoldFilterError(FilterError("a hold needs a filter, e.g. user:alice or session:s-1", 0))
    reason = (reason or "").strip()
    if not reason:
        raise KeepError("a hold needs a reason (why these traces must be kept)")
    if len(reason) > MAX_REASON:
        raise KeepError(f"the reason is {len(reason)} characters, at most {MAX_REASON}")
    with _HOLD_LOCK:
        if _hold_rows(store, name):
            # Said the same whoever holds the name: another project's hold stays unnamed.
            raise HoldNameTaken(f"a hold named {name!r} already exists or existed (names are unique across all "
                            "projects and never reused)")
        now_ms = _ms(datetime.now(timezone.utc))
        hold = Hold(name, filter_text, reason, who, _dt(now_ms), project=project)
        _write_hold(store, hold, True, who, now_ms)
    return hold


def release_hold(store: Store, name: str, *, actor: str, viewer: str = ALL_PROJECTS) -> Hold | None:
    """Release an active hold; the released hold, or None (nothing written) when ``viewer`` sees no
    active hold of that name (another project's hold is as if there were none). A global hold
    released by a project's caller: :class:`HoldForbidden`."""
    who = _actor(actor)
    with _HOLD_LOCK:
        holds = _fold(_hold_rows(store, name))
        if not holds or not holds[0].active or not visible(holds[0], viewer):
            return None
        h = holds[0]
        if viewer != ALL_PROJECTS and not h.project:
            raise HoldForbidden(f"hold {name[:120]!r} covers all projects; only an admin may release it")
        now_ms = _ms(datetime.now(timezone.utc))
        _write_hold(store, h, False, who, now_ms)
    return replace(h, released=_dt(now_ms), released_by=who)


def _hold_rows(store: Store, name: str | None = None) -> list[dict[str, Any]]:
    p = Params()
    where = f"WHERE Name = {p.s(name)}" if name is not None else ""
    return query(store, "SELECT Name, Active, Filter, Reason, Actor, toUnixTimestamp64Milli(Time) AS T, Project "
                        f"FROM retention_holds FINAL {where} ORDER BY Name, Version", p)


def _fold(rows: list[dict[str, Any]]) -> list[Hold]:
    """History rows (ordered by name, version) -> one Hold per name: the creation, then the release."""
    out: dict[str, Hold] = {}
    for r in rows:
        h = out.get(r["Name"])
        if h is None:
            if r["Active"]:
                out[r["Name"]] = Hold(r["Name"], r["Filter"], r["Reason"], r["Actor"], _dt(r["T"]),
                                      project=r["Project"])
        elif r["Active"] == 0 and h.released is None:
            out[r["Name"]] = replace(h, released=_dt(r["T"]), released_by=r["Actor"])
    return list(out.values())


def list_holds(store: Store, viewer: str = ALL_PROJECTS) -> list[Hold]:
    """Every hold ``viewer`` sees (as it may see it), active ones first, newest first within each group."""
    holds = [h.seen_by(viewer) for h in _fold(_hold_rows(store)) if visible(h, viewer)]
    return sorted(holds, key=lambda h: (not h.active, -h.created.timestamp(), h.name))


def active_holds(store: Store) -> list[Hold]:
    """Every active hold, in full: what the archiver, explain and erasure evaluate."""
    return [h for h in list_holds(store) if h.active]


def _hold_condition(h: Hold, compiler: Compiler) -> str:
    """The hold's filter, and for a project's hold also the trace's project (alias ``Proj``)."""
    cond = compiler.compile(h.node())
    return f"(Proj = {compiler.p.s(h.project)} AND ({cond}))" if h.project else cond


def hold_names_expr(holds: list[Hold], compiler: Compiler) -> str:
    """An Array(String) expression over trace aliases: the names of ``holds`` covering the trace
    (its filter passes, and it is of the hold's project if the hold has one). The caller computes
    every alias of ALL_AGGS (hot aggregates or archive columns)."""
    if not holds:
        return "CAST([], 'Array(String)')"
    parts = [f"if({_hold_condition(h, compiler)}, {compiler.p.s(h.name)}, '')" for h in holds]
    return f"arrayFilter(x -> x != '', [{', '.join(parts)}])"


def _covering(store: Store, holds: list[Hold], ids: list[str], tier: Tier) -> list[dict[str, Any]]:
    p = Params()
    scope = f"SELECT arrayJoin(splitByChar(',', {p.s(','.join(ids))}))"  # hex ids: never a comma
    names = hold_names_expr(holds, Compiler(p, p.i(_SPAN_LO), p.i(_SPAN_HI), scope_ids=scope, tier=tier))
    # One project's spans of a trace are one trace: a hold of project P looks at P's spans only.
    if tier is HOT:
        inner = (f"SELECT TraceId, {aggs(ALL_AGGS)} FROM trace_summary WHERE TraceId IN ({scope}) "
                 "GROUP BY Project, TraceId")
    else:
        inner = f"SELECT TraceId, {aggs(ALL_AGGS, ARCHIVE)} FROM archived_traces WHERE TraceId IN ({scope})"
    return query(store, f"SELECT toString(Proj) AS P, TraceId, {names} AS H FROM ({inner}) WHERE notEmpty(H)", p)


def holds_covering(store: Store, trace_ids: list[str], viewer: str = ALL_PROJECTS,
                   projects: set[str] | None = None) -> dict[str, list[str]]:
    """Active hold name -> the given traces it covers, looking at both tiers (a trace matched in
    either tier is covered); with ``projects``, only those projects' spans of the traces count.
    Holds that cover none of them are left out. For a project's ``viewer`` holds not of its
    project are all named :data:`ADMIN_HOLD` (no name crosses projects)."""
    ids = sorted({t.lower() for t in trace_ids if HEX_ID.match(t.lower())})
    # Holds from the process's store: a project's scoped store reads its own holds only (SQL
    # filter), and a global hold must still cover that project's traces. Traces are read on
    # ``store``, so a hold of another project covers nothing the caller cannot read.
    holds = active_holds(getattr(store, "inner", store))
    if not ids or not holds:
        return {}
    out: dict[str, set[str]] = {}
    tiers = [HOT, ARCHIVE] if archive_present(store) else [HOT]
    for tier in tiers:
        for chunk in range(0, len(ids), 5000):
            for r in _covering(store, holds, ids[chunk:chunk + 5000], tier):
                if projects is not None and r["P"] not in projects:
                    continue
                for name in r["H"]:
                    out.setdefault(name, set()).add(r["TraceId"])
    if viewer != ALL_PROJECTS:
        own = {h.name for h in holds if h.project == viewer}
        told: dict[str, set[str]] = {}
        for name, v in out.items():
            told.setdefault(name if name in own else ADMIN_HOLD, set()).update(v)
        out = told
    return {name: sorted(v) for name, v in sorted(out.items())}
