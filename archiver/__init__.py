"""tracelake.archiver: retention rules that move whole traces from ClickHouse to a Delta Lake
archive in the object store, keep them queryable, and delete them when their time is up.

Modules: policy (the YAML rules), plan (which traces leave), spans (reading them out of the hot
tier), delta (the Delta table), runs (the run state machine), service (Archiver, schedule),
gc (attachment blobs), tiers (sizes), api (HTTP endpoints). See docs/archive.md.
"""
from __future__ import annotations

from typing import Any


def install(app: Any) -> None:
    """Add the /api/archiver/ endpoints (tracelake.web calls this for every extension)."""
    from tracelake.archiver.api import router

    app.include_router(router)
    from tracelake.archiver.api_rules import router as rules_router  # rules: editing from the Retention page

    app.include_router(rules_router)
