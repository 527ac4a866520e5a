"""Why a trace is where it is, and when it leaves: ``tracelake archiver explain``, the trace page's
retention panel and ``GET /api/traces/{id}/retention`` all call :func:`explain`.

For a hot trace, the rules of the policy the server runs are evaluated on the trace as a whole
(first match wins, as in a run); for an archived trace, the rule stamped when it was archived is
looked up in the current policy (a rule that no longer exists keeps its stamped delete time).
Then what keeps it: its active pin (until, who) and the active holds whose filter matches it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from tracelake.archiver.errors import NotFound
from tracelake.archiver.keep import Pin, active_pins, check_trace_id, holds_covering
from tracelake.archiver.plan import FOREVER_MS, leave_after
from tracelake.archiver.policy import RetentionPolicy, Rule
from tracelake.query.compile import ALL_AGGS, Compiler, aggs
from tracelake.query.filters import parse
from tracelake.query.params import Params, query
from tracelake.store.base import Store
from tracelake.store.tiers import archive_present, locate

_SPAN_HI = 4_102_444_800 * 10**9


class TraceNotFound(NotFound):
    """No trace with this id in either tier (or none the caller may read)."""


@dataclass
class Explanation:
    trace_id: str
    tier: str  # 'hot' | 'archive'
    start: datetime
    end: datetime  # the trace's last span: every window counts from here
    has_policy: bool
    rule: Rule | None = None
    rule_leaves_hot: datetime | None = None  # what the rule alone says (None: never / n.a.)
    rule_deletes: datetime | None = None  # None: kept forever by the rule (or no policy)
    archived_at: datetime | None = None
    leaves_hot: datetime | None = None  # effective, with pins and holds (None: not scheduled)
    deleted: datetime | None = None
    pin: Pin | None = None
    holds: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        iso = lambda d: d.isoformat() if d is not None else None  # noqa: E731
        return {"trace_id": self.trace_id, "tier": self.tier, "start": iso(self.start), "end": iso(self.end),
                "policy": self.has_policy, "rule": self.rule.describe() if self.rule else None,
                "rule_leaves_hot": iso(self.rule_leaves_hot), "rule_deletes": iso(self.rule_deletes),
                "archived_at": iso(self.archived_at), "leaves_hot": iso(self.leaves_hot), "deleted": iso(self.deleted),
                "pin": self.pin.to_dict() if self.pin else None, "holds": list(self.holds), "notes": list(self.notes)}


def _dt_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


def _hot_rule(store: Store, tid: str, policy: RetentionPolicy) -> tuple[int, int, int] | None:
    """(TS, TE, index of the first matching rule or -1) of a hot trace, or None if not hot."""
    p = Params()
    scope = f"SELECT {p.s(tid)}"
    conds = []
    for i, rule in enumerate(policy.rules if policy else []):
        cond = "1" if rule.match is None else Compiler(p, p.i(0), p.i(_SPAN_HI), scope_ids=scope).compile(parse(rule.match))
        conds.append(f"{cond}, {i}")
    rule_idx = f"multiIf({', '.join(conds)}, -1)" if conds else "-1"
    rows = query(store, f"SELECT TS, TE, {rule_idx} AS RuleIdx FROM (SELECT TraceId, {aggs(ALL_AGGS)} "
                        f"FROM trace_summary WHERE TraceId = {p.s(tid)} GROUP BY TraceId)", p)
    if not rows:
        return None
    return int(rows[0]["TS"]), int(rows[0]["TE"]), int(rows[0]["RuleIdx"])


def _archived(store: Store, tid: str) -> dict[str, Any] | None:
    if not archive_present(store):
        return None
    p = Params()
    rows = query(store, "SELECT toUnixTimestamp64Nano(Start) AS TS, toUnixTimestamp64Nano(End) AS TE, Rule, "
                        "toUnixTimestamp64Milli(ArchivedAt) AS A, toUnixTimestamp64Milli(DeleteAfter) AS D "
                        f"FROM archived_traces WHERE TraceId = {p.s(tid)} ORDER BY ArchivedAt DESC LIMIT 1", p)
    return rows[0] if rows else None


def explain(store: Store, trace_id: str, policy: RetentionPolicy | None, now: datetime | None = None) -> Explanation:
    """Where the trace is, which rule governs it, when it leaves hot and is deleted, and what keeps
    it. Raises :class:`TraceNotFound` for an id in neither tier, KeepError for a malformed id."""
    tid = check_trace_id(trace_id)
    now = now or datetime.now(timezone.utc)
    loc = locate(store, tid)
    if loc is None:
        raise TraceNotFound(f"no trace {tid} in the hot tier or the archive")
    pin = active_pins(store, [tid]).get(tid)
    holds = sorted(name for name, ids in holds_covering(store, [tid]).items() if tid in ids)
    rule: Rule | None = None
    archived_at: datetime | None = None
    rule_deletes: datetime | None = None
    rule_leaves: datetime | None = None
    notes: list[str] = []
    if loc.tier == "hot":
        found = _hot_rule(store, tid, policy)  # type: ignore[arg-type]
        if found is None:  # left hot between the two reads
            raise TraceNotFound(f"no trace {tid} in the hot tier or the archive (it is moving; try again)")
        ts, te, idx = found
        start, end = _dt_ns(ts), _dt_ns(te)
        if policy is not None and idx >= 0:
            rule = policy.rules[idx]
            rule_leaves = end + leave_after(rule.hot)
            rule_deletes = None if rule.archive is None else end + rule.hot + rule.archive
            if rule_deletes is not None and rule_deletes < rule_leaves:
                rule_deletes = rule_leaves  # passes through the archive in the same run
        elif policy is not None:
            notes.append("no rule matches this trace (the policy has no default rule): it stays hot")
    else:
        row = _archived(store, tid)
        if row is None:
            raise TraceNotFound(f"no trace {tid} in the hot tier or the archive")
        start, end = _dt_ns(int(row["TS"])), _dt_ns(int(row["TE"]))
        archived_at = datetime.fromtimestamp(row["A"] / 1000, tz=timezone.utc)
        rule = policy.rule(row["Rule"]) if policy is not None else None
        if rule is not None:
            rule_deletes = None if rule.archive is None else end + rule.hot + rule.archive
        elif int(row["D"]) < FOREVER_MS:
            rule_deletes = datetime.fromtimestamp(row["D"] / 1000, tz=timezone.utc)
            if policy is not None:
                notes.append(f"archived under rule {row['Rule']!r}, which the policy no longer has: "
                             "the delete time stamped then applies")
        if rule is None and policy is not None and int(row["D"]) >= FOREVER_MS:
            notes.append(f"archived under rule {row['Rule']!r}, which the policy no longer has: kept forever")
    if policy is None:
        notes.append("no retention policy: the server moves and deletes nothing (start it with --retention FILE)")
    leaves, deleted = rule_leaves if loc.tier == "hot" else None, rule_deletes
    if pin is not None:
        leaves = deleted = None
        notes.append("pinned" + (f" until {pin.until:%Y-%m-%d %H:%M} UTC" if pin.until else " until unpinned")
                     + f" by {pin.actor}: stays " + ("hot" if loc.tier == "hot" else "archived") + " and is not deleted")
        if pin.until is not None and policy is not None and rule is not None:
            # When the pin ends, the rule applies again (at the first run after that).
            if rule_leaves is not None:
                leaves = max(rule_leaves, pin.until)
            if rule_deletes is not None:
                deleted = max(rule_deletes, pin.until)
    if holds:
        deleted = None
        notes.append(f"held by {', '.join(holds)}: not deleted in any tier while "
                     f"{'this hold exists' if len(holds) == 1 else 'any of these holds exists'}")
    if leaves is not None and leaves < now:
        notes.append("due to leave hot at the next archive run")
    if deleted is not None and deleted < now:
        notes.append("due to be deleted at the next archive run")
    return Explanation(tid, loc.tier, start, end, policy is not None, rule, rule_leaves, rule_deletes, archived_at,
                       leaves, deleted, pin, holds, notes)


def when(value: datetime | None, now: datetime | None = None) -> str:
    """'2026-01-02 03:04 UTC (in 3 days)' for pages and the CLI."""
    if value is None:
        return "never"
    now = now or datetime.now(timezone.utc)
    delta = value - now
    secs = abs(delta.total_seconds())
    if secs < 3600:
        span = f"{int(secs // 60)} min"
    elif secs < 2 * 86400:
        span = f"{secs / 3600:.0f} h"
    else:
        span = f"{secs / 86400:.0f} days"
    rel = f"in {span}" if delta > timedelta(0) else f"{span} ago"
    return f"{value.strftime('%Y-%m-%d %H:%M')} UTC ({rel})"
