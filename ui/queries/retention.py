"""The Retention page's data: rules, the next run's plan, the history of runs, and the size of
each tier per day, all from the archiver's Python API (``tracelake.archiver``).

The archiver is optional: without a retention policy there are no rules and no plan, but the
history of runs (e.g. made with ``tracelake archiver run``) and the tier sizes are still shown.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tracelake.store.base import Store


@dataclass
class Retention:
    configured: bool
    rules: list[dict[str, Any]] = field(default_factory=list)
    archive_uri: str = ""
    plan: dict[str, Any] | None = None
    plan_error: str = ""
    runs: list[dict[str, Any]] = field(default_factory=list)
    runs_error: str = ""
    tiers: list[dict[str, Any]] = field(default_factory=list)
    tiers_error: str = ""

    def tier_totals(self) -> dict[str, dict[str, int]]:
        out = {"hot": {"spans": 0, "bytes": 0, "days": 0}, "archive": {"spans": 0, "bytes": 0, "days": 0}}
        for t in self.tiers:
            acc = out[t["tier"]]
            acc["spans"] += t["spans"]
            acc["bytes"] += t["bytes"]
            acc["days"] += 1
        return out

    def as_json(self) -> dict[str, Any]:
        return {"configured": self.configured, "rules": self.rules, "archive": self.archive_uri or None,
                "plan": self.plan, "plan_error": self.plan_error or None, "runs": self.runs,
                "runs_error": self.runs_error or None, "tiers": self.tiers, "tier_totals": self.tier_totals(),
                "tiers_error": self.tiers_error or None}


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def retention(store: Store, archiver: Any) -> Retention:
    """Everything the page shows; a part that fails says why and the others are still shown."""
    from tracelake.archiver import runs, tiers

    out = Retention(configured=archiver is not None)
    if archiver is not None:
        out.rules = [r.describe() for r in archiver.policy.rules]
        out.archive_uri = str(archiver.location.uri)
        try:
            out.plan = archiver.plan().to_dict()
        except Exception as exc:  # noqa: BLE001 - the archive may be unreachable: say so, show the rest
            out.plan_error = _error(exc)
    try:
        out.runs = [r.to_dict() for r in runs.list_runs(store)]
    except Exception as exc:  # noqa: BLE001
        out.runs_error = _error(exc)
    try:
        location = archiver.location if archiver is not None else None
        out.tiers = [{"tier": t.tier, "day": t.day, "spans": int(t.spans), "bytes": int(t.bytes)}
                     for t in tiers.tier_sizes(store, location)]
    except Exception as exc:  # noqa: BLE001
        out.tiers_error = _error(exc)
    return out
