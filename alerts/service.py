"""The alerts in a running server: where the rules come from, and the schedule.

* Source of truth: the file given with ``--alerts`` when there is one (read-only on the page);
  otherwise the newest version applied on the Alerts page (read again before every round, so a
  version applied by another process is used at the next round), or no rules yet.
* The schedule: a daemon thread evaluates every ``alerts_every`` (the first round at start, so a
  restart does not leave a condition unseen for an interval) and sends messages as they fall due,
  waking for the next retry in between. States are in the store: a restart neither fires again nor
  forgets what fires.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from tracelake.alerts import db, delivery, versions
from tracelake.alerts.config import AlertsConfig
from tracelake.alerts.engine import Engine
from tracelake.alerts.errors import Conflict, RuleFileError
from tracelake.alerts.model import RuleSet
from tracelake.alerts.query import TraceRows
from tracelake.alerts.rulefile import load_rules, parse_rules
from tracelake.store.base import Store

log = logging.getLogger(__name__)


@dataclass
class Source:
    """One project's file (or the admins' '', or the --alerts file) as the page edits it."""

    kind: str  # "file" | "store" | "none"
    project: str = ""
    path: str = ""
    version: versions.RulesVersion | None = None
    text: str = ""
    rules: RuleSet | None = None
    error: str = ""

    @property
    def base_version(self) -> int:
        return self.version.version if self.version else 0

    @property
    def editable(self) -> bool:
        return self.kind != "file"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "project": self.project or None, "path": self.path or None,
                "version": self.base_version, "editable": self.editable, "yaml": self.text, "error": self.error or None}


def source(store: Store, config: AlertsConfig, project: str = "") -> Source:
    if config.rules_file is not None:
        try:
            text = config.rules_file.read_text(encoding="utf-8")
            return Source("file", "", str(config.rules_file), None, text, parse_rules(text, str(config.rules_file)))
        except (OSError, RuleFileError) as exc:
            return Source("file", "", str(config.rules_file), None, "", None, "the file cannot be read or no longer "
                          f"validates ({exc}); the server keeps the rules read at start")
    version = versions.current(store, project)
    if version is None:
        return Source("none", project, rules=RuleSet(()))
    try:
        return Source("store", project, "", version, version.yaml,
                      parse_rules(version.yaml, f"stored version {version.version}", project))
    except RuleFileError as exc:
        return Source("store", project, "", version, version.yaml, None,
                      f"stored version {version.version} no longer validates: {exc}")


def combine(files: dict[str, RuleSet]) -> RuleSet:
    """Every project's rules together; Conflict when two files define the same rule of a project
    (the admins' file naming ``project: shop`` beside shop's own file)."""
    seen: dict[tuple[str, str], str] = {}
    rules = []
    for owner in sorted(files):
        for rule in files[owner].rules:
            where = seen.get((rule.project, rule.name))
            if where is not None:
                raise Conflict(f"rule {rule.name!r} of project {rule.project or '(all)'} is defined twice: in the file "
                               f"of {where} and of {owner or 'the admins'}; rename one", {"field": "name"})
            seen[(rule.project, rule.name)] = owner or "the admins"
            rules.append(rule)
    return RuleSet(tuple(rules), "stored versions")


def stored_files(store: Store) -> dict[str, RuleSet]:
    """The current file of every project, parsed (a version that no longer validates is left out, said in the log)."""
    out = {}
    for v in versions.all_current(store):
        try:
            out[v.project] = parse_rules(v.yaml, f"stored version {v.version}", v.project)
        except RuleFileError as exc:
            log.warning("alert rules of project %r, version %d, no longer validate (%s): left out", v.project,
                        v.version, exc)
    return out


class _StoreRefresh:
    """The rules of every project's newest version, parsed again only when a version changes."""

    def __init__(self) -> None:
        self.stamp: tuple = ()

    def __call__(self, store: Store) -> RuleSet | None:
        found = db.rows(store, "SELECT Project, max(Version) AS V FROM alert_rule_versions GROUP BY Project ORDER BY Project")
        stamp = tuple((r["Project"], int(r["V"])) for r in found)
        if stamp == self.stamp:
            return None
        self.stamp = stamp
        try:
            return combine(stored_files(store))
        except Conflict as exc:
            log.warning("alert rules: %s; keeping the rules in force", exc)
            return None


def engine_for(store: Store, config: AlertsConfig, trace_rows: TraceRows) -> Engine:
    """The engine with the rules in force: the file's (validated already), else the stored ones."""
    if config.rules_file is not None:
        return Engine(store, config, trace_rows, load_rules(config.rules_file))
    refresh = _StoreRefresh()
    return Engine(store, config, trace_rows, refresh(store), refresh=refresh)


class Scheduler:
    """Evaluates every ``config.every`` and delivers due messages, on a daemon thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.every = engine.config.every
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tracelake-alerts", daemon=True)
        self.next_round: datetime | None = None

    def start(self) -> "Scheduler":
        self._thread.start()
        return self

    def wake(self) -> None:
        """Deliver now (a message was queued outside a round, e.g. a test message)."""
        self._wake.set()

    def _loop(self) -> None:
        next_round = datetime.now(timezone.utc)
        next_send: datetime | None = datetime.now(timezone.utc)  # what a previous process left in the outbox
        while not self._stop.is_set():
            now = datetime.now(timezone.utc)
            if now >= next_round:
                try:
                    self.engine.evaluate(now)
                    next_send = now
                except Exception as exc:  # noqa: BLE001 - keep the schedule alive
                    log.error("alert evaluation failed (next round in %s): %s: %s", self.every, type(exc).__name__, exc)
                next_round = now + self.every
                self.next_round = next_round
            if self._wake.is_set():
                self._wake.clear()
                next_send = now
            if next_send is not None and now >= next_send:
                next_send = self._deliver(now)
            wake_at = min(next_round, next_send) if next_send is not None else next_round
            self._wake.wait(max(0.05, min((wake_at - datetime.now(timezone.utc)).total_seconds(), 60.0)))
            if self._stop.is_set():
                return

    def _deliver(self, now: datetime) -> datetime | None:
        """Sends what is due; the time of the next retry, if any."""
        try:
            delivery.deliver_due(self.engine.store, self.engine.config, now)
            return delivery.next_due(self.engine.store)
        except Exception as exc:  # noqa: BLE001 - keep the schedule alive; the outbox keeps the messages
            log.error("alert delivery failed: %s", type(exc).__name__)
            return now + timedelta(seconds=30)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)


def start_for_server(store: Store, config: AlertsConfig, trace_rows: TraceRows) -> tuple[Engine, Scheduler]:
    engine = engine_for(store, config, trace_rows)
    return engine, Scheduler(engine).start()


__all__ = ["Scheduler", "Source", "combine", "engine_for", "source", "start_for_server", "stored_files"]
