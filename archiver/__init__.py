"""tracelake.archiver: retention rules that move whole traces from ClickHouse to a Delta Lake
archive in the object store, keep them queryable, and delete them when their time is up.

Modules: policy (the YAML rules), plan (which traces leave), spans (reading them out of the hot
tier), delta (the Delta table), runs (the run state machine), service (Archiver, schedule),
gc (attachment blobs), tiers (sizes), api (HTTP endpoints), keep (pins and holds), explain
(why a trace is where it is), api_keep / cli_keep (their endpoints and commands). See docs/archive.md.
"""
from __future__ import annotations

from typing import Any


def install(app: Any) -> None:
    """Add the /api/archiver/ endpoints (tracelake.web calls this for every extension)."""
    from tracelake.archiver.api import router
    from tracelake.archiver.api_keep import router as keep_router  # explain, pins, holds
    from tracelake.archiver.api_rules import router as rules_router  # rules edited from the Retention page
    from tracelake.archiver.api_erase import router as erase_router  # erasure, receipts, restore

    app.include_router(router)
    app.include_router(keep_router)
    app.include_router(rules_router)
    app.include_router(erase_router)
