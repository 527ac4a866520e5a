"""Editing the retention rules in a running server: where they come from, preview, apply.

* Source of truth: the file given with ``--retention`` when there is one (then the rules are
  read-only here: preview is a "what if", apply is refused); otherwise the newest version in the
  store (:mod:`tracelake.archiver.policy_store`), or nothing yet.
* Preview: the edited YAML validated like a file (errors name line and field), and the plan of the
  edited rules beside today's, computed at the same instant, summed per rule.
* Apply: saved as a new version if nobody applied another since the preview, audited, and handed
  to the running archiver (taken between passes, never mid-run); without an archiver, one is
  started with its schedule.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from tracelake.archiver import policy_store
from tracelake.archiver.plan import Plan, make_plan
from tracelake.archiver.config import ArchiverConfig
from tracelake.archiver.errors import Conflict
from tracelake.archiver.policy import _WHERE, PolicyError, RetentionPolicy, parse_policy
from tracelake.archiver.policy_store import PolicyVersion, StaleVersion
from tracelake.store.base import Store

log = logging.getLogger(__name__)

SOURCE = "YAML"  # how errors name the edited text: "YAML line 4, rules[1] (default).hot: ..."
# One apply at a time in this process (check the base version, save, hand over).
_APPLY_LOCK = threading.Lock()

STARTER = """\
rules:                      # first match wins; a trace is matched as a whole
  - name: errors
    match: 'status:error'   # the trace list's filter language
    hot: 30d                # in ClickHouse until its last span is this old
    archive: 365d           # then in the archive this long, then deleted; "forever" keeps it
  - name: default           # a rule without match takes every other trace
    hot: 7d
    archive: 90d
"""


class FileIsSource(Conflict):
    """Apply refused: the rules come from the file given with --retention."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"the rules come from the file {path} given with --retention, which stays the source of "
                         "truth: edit that file and restart the server (or start it without --retention to edit "
                         "rules here)", detail={"reason": "file", "path": path})


@dataclass
class EditError:
    message: str
    line: int | None = None
    field: str = ""

    @classmethod
    def of(cls, exc: PolicyError) -> "EditError":
        return cls(str(exc), exc.line, exc.field)

    @property
    def detail(self) -> str:
        """The message without its "YAML line N, field: " prefix (the page shows those apart)."""
        m = _WHERE.match(self.message)
        return self.message[m.end():] if m else self.message

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message, "line": self.line, "field": self.field or None}


@dataclass
class Source:
    """Where the rules in force come from."""

    kind: str  # "file" | "store" | "none"
    path: str = ""  # the file, for "file"
    version: PolicyVersion | None = None  # the newest stored version (also listed in file mode)
    text: str = ""  # the YAML in force
    policy: RetentionPolicy | None = None
    error: str = ""  # the stored text no longer validates (a newer tracelake is stricter)

    @property
    def base_version(self) -> int:
        return self.version.version if self.version else 0

    @property
    def editable(self) -> bool:
        return self.kind != "file"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path or None, "version": self.base_version, "editable": self.editable,
                "yaml": self.text, "error": self.error or None}


def stored_policy(store: Store) -> tuple[PolicyVersion | None, RetentionPolicy | None, str]:
    """The newest stored version, its policy, and why it cannot be used ('' when it can)."""
    version = policy_store.current(store)
    if version is None:
        return None, None, ""
    try:
        return version, named(parse_policy(version.yaml, SOURCE), version.version), ""
    except PolicyError as exc:
        return version, None, f"stored version {version.version} no longer validates: {exc}"


def named(policy: RetentionPolicy, version: int) -> RetentionPolicy:
    return policy.model_copy(update={"source": f"stored version {version}"})


def source(store: Store, config: ArchiverConfig, archiver: Any = None) -> Source:
    """The rules in force for this server (``store``: the process's, not a caller's scoped one)."""
    version = policy_store.current(store)
    path = config.retention_file
    if path is not None:
        running = archiver.policy if archiver is not None else None
        try:
            text = path.read_text(encoding="utf-8")
            on_disk = parse_policy(text, str(path))
            error = "" if running is None or _same(on_disk, running) else (
                "the file changed since the server started: the rules shown are the file's, the archiver keeps "
                "the ones read at start until a restart")
        except (OSError, PolicyError) as exc:
            text, error = "", f"the file cannot be read or no longer validates ({exc}); the archiver keeps the rules read at start"
        return Source("file", str(path), version, text, running, error)
    if version is None:
        return Source("none")
    try:
        return Source("store", "", version, version.yaml, named(parse_policy(version.yaml, SOURCE), version.version))
    except PolicyError as exc:
        return Source("store", "", version, version.yaml, None, f"stored version {version.version} no longer validates: {exc}")


def _same(a: RetentionPolicy, b: RetentionPolicy) -> bool:
    return [r.describe() for r in a.rules] == [r.describe() for r in b.rules]


# --- preview ---------------------------------------------------------------------------------------
_ZERO = {"traces": 0, "spans": 0, "bytes": 0}


ACTIONS = ("archive", "delete")  # always shown; other actions a plan may carry (e.g. traces kept) are added


def _empty() -> dict[str, dict[str, int]]:
    return {a: dict(_ZERO) for a in ACTIONS}


def _per_rule(plan: Plan | None) -> dict[str, dict[str, dict[str, int]]]:
    out: dict[str, dict[str, dict[str, int]]] = {}
    for row in plan.rows if plan else []:
        acc = out.setdefault(row.rule, _empty()).setdefault(row.action, dict(_ZERO))
        acc["traces"] += row.traces
        acc["spans"] += row.spans
        acc["bytes"] += row.bytes
    return out


def compare(today: RetentionPolicy | None, today_plan: Plan | None, edited: RetentionPolicy,
            edited_plan: Plan) -> list[dict[str, Any]]:
    """Per rule: its definition and counts today and edited, what changed, and the differences."""
    before, after = _per_rule(today_plan), _per_rule(edited_plan)
    old = {r.name: (i, r) for i, r in enumerate(today.rules)} if today else {}
    new = {r.name: (i, r) for i, r in enumerate(edited.rules)}
    names = list(new) + [n for n in old if n not in new]
    names += sorted(n for n in set(before) | set(after) if n not in new and n not in old)
    rows = []
    for name in names:
        o, n = old.get(name), new.get(name)
        if o and n:
            changed = [k for k in ("match", "hot", "archive") if o[1].describe()[k] != n[1].describe()[k]]
            if o[0] != n[0]:
                changed.append("position")
            status = "changed" if changed else "same"
        else:
            changed = []
            status = "added" if n else ("removed" if o else "earlier")  # earlier: archived under a rule gone before
        t, e = before.get(name, _empty()), after.get(name, _empty())
        for action in set(t) | set(e):
            t.setdefault(action, dict(_ZERO))
            e.setdefault(action, dict(_ZERO))
        diff = {a: {k: e[a][k] - t[a][k] for k in _ZERO} for a in e}
        rows.append({"rule": name, "status": status, "changed": changed,
                     "today_rule": o[1].describe() if o else None, "edited_rule": n[1].describe() if n else None,
                     "today": t, "edited": e, "diff": diff,
                     "differs": any(v for a in diff.values() for v in a.values())})
    return rows


def preview(store: Store, today: RetentionPolicy | None, yaml_text: str, now: datetime | None = None) -> dict[str, Any]:
    """Both plans, side by side per rule. Raises PolicyError (line and field) on bad YAML."""
    if len(yaml_text.encode("utf-8")) > policy_store.MAX_YAML_BYTES:
        raise PolicyError(f"the rules are larger than {policy_store.MAX_YAML_BYTES // 1024} KiB")
    edited = parse_policy(yaml_text, SOURCE)
    now = now or datetime.now(timezone.utc)
    today_plan = make_plan(store, today, now) if today is not None else None
    edited_plan = make_plan(store, edited, now)
    rows = compare(today, today_plan, edited, edited_plan)
    actions = list(ACTIONS) + sorted({a for r in rows for a in r["edited"]} - set(ACTIONS))
    totals = {side: {a: {k: sum(r[side].get(a, _ZERO)[k] for r in rows) for k in _ZERO} for a in actions}
              for side in ("today", "edited")}
    return {"now": now.isoformat(), "rules": rows, "totals": totals,
            "today": {"rules": [r.describe() for r in today.rules] if today else [],
                      "plan": today_plan.to_dict() if today_plan else None},
            "edited": {"rules": [r.describe() for r in edited.rules], "plan": edited_plan.to_dict()}}


# --- apply -----------------------------------------------------------------------------------------
def apply(state: Any, store: Store, yaml_text: str, *, base_version: int, actor: str, role: str, comment: str = "",
          remote: str = "") -> tuple[PolicyVersion, str]:
    """Save the edited rules as a new version and put them in force. ``state`` is the app's state
    (``archiver``, ``scheduler``, ``settings``); ``store`` the process's. Returns the version and
    what happened to the archiver: 'swapped', 'pending' (a pass is running: the next one uses
    them), 'started'. Raises FileIsSource, PolicyError, StaleVersion; nothing is saved then."""
    config = state.archiver_config
    if config.retention_file is not None:
        raise FileIsSource(str(config.retention_file))
    policy = parse_policy(yaml_text, SOURCE)
    with _APPLY_LOCK:
        version = policy_store.save(store, yaml_text, actor=actor, role=role, comment=comment, expected=base_version)
        outcome = use_policy(state, store, named(policy, version.version))
    from tracelake.auth import audit

    audit.record(store, actor=actor, role=role, action="retention.apply", target=f"version {version.version}",
                 detail=(f"{len(policy.rules)} rules: {', '.join(r.name for r in policy.rules)}; "
                         f"sha256 {version.sha256[:16]}; {comment}")[:2000], remote=remote)
    log.info("retention rules version %d applied by %s (%s)", version.version, actor, outcome)
    return version, outcome


def refresh_from_store(store: Store) -> RetentionPolicy | None:
    """For :attr:`Archiver.refresh_policy`: the newest stored version, when it validates."""
    version, policy, error = stored_policy(store)
    if error:
        log.warning("%s; the archiver keeps the rules it has", error)
    return policy


def use_policy(state: Any, store: Store, policy: RetentionPolicy) -> str:
    """Hand ``policy`` to the running archiver, or start one with its schedule."""
    archiver = getattr(state, "archiver", None)
    if archiver is not None:
        return "swapped" if archiver.swap_policy(policy) else "pending"
    from tracelake.archiver.service import Scheduler, archiver_for

    config = state.archiver_config
    archiver = archiver_for(store, config, policy)
    archiver.refresh_policy = refresh_from_store
    state.scheduler = Scheduler(archiver, config.every).start()
    state.archiver = archiver
    return "started"


__all__ = ["FileIsSource", "EditError", "Source", "StaleVersion", "STARTER", "apply", "compare", "preview", "source",
           "stored_policy", "use_policy"]
