"""tracelake.archiver: retention rules that move whole traces from ClickHouse to a Delta Lake
archive in the object store, keep them queryable, and delete them when their time is up; pins and
holds that keep traces; erasure and restore. Domain code and a JSON API; the UI's Retention page
and panels are ``tracelake.ui`` (which calls this package, never the other way round).

Modules (docs/architecture.md has the map): ``policy`` (the YAML rules), ``plan`` (which traces
leave), ``spans`` (reading them out of the hot tier), ``delta`` and ``files`` (the Delta table and
its files), ``runs`` (the run state machine), ``service`` (Archiver, schedule), ``lock`` (one writer
of the archive per process), ``gc`` (attachment blobs), ``tiers`` (sizes), ``keep`` (pins and
holds), ``explain`` (why a trace is where it is), ``erase``, ``restore``, ``receipts`` and
``resume`` (erasure and restore), ``rules`` and ``policy_store`` (rules edited from the page),
``config`` (:class:`ArchiverConfig` from Settings), ``errors`` (every refusal and its status),
``api`` (the JSON API), ``cli*`` (``tracelake archiver ...``). See docs/archive.md.
"""
from __future__ import annotations

from typing import Any


def install(app: Any) -> None:
    """Add the archiver's JSON API and its error handler (tracelake.web calls this for every extension)."""
    from tracelake.archiver import api

    api.install(app)
