"""Small helpers for the alert tables: bound reads, JSON-row inserts, times, row versions."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Any

import orjson

from tracelake.auth.binding import bind  # noqa: F401 - also used by callers as db.bind
from tracelake.store.base import Store

_LOCK = threading.Lock()
_last = [0]


def version() -> int:
    """A row version that only grows in this process (ReplacingMergeTree keeps the highest); the
    wall clock, not the evaluation's ``now``, which tests move back and forth."""
    with _LOCK:
        _last[0] = max(_last[0] + 1, time.time_ns())
        return _last[0]


def ts(value: datetime | None) -> str:
    """A DateTime64(3, 'UTC') literal for JSON rows."""
    if value is None:
        return "1970-01-01 00:00:00.000"
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def utc(value: Any) -> datetime | None:
    """A DateTime64 read back (naive UTC from some drivers) as an aware datetime; epoch 0 -> None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return None if value.timestamp() <= 0 else value


def rows(store: Store, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return store.query_arrow(sql, bind(store, params or {})).to_pylist()


def in_projects(params: dict[str, Any], projects: frozenset[str]) -> str:
    """``Project`` among ``projects`` (names of a strict alphabet, no comma), bound as one string:
    array parameters are read differently by the two stores."""
    params["projects"] = ",".join(sorted(projects))
    return "has(splitByChar(',', {projects:String}), Project)"


def insert(store: Store, table: str, structure: dict[str, str], items: list[dict[str, Any]]) -> None:
    """Insert rows as one statement: the rows travel as one JSON parameter (every value bound)."""
    if not items:
        return
    cols = ", ".join(structure)
    struct = ", ".join(f"{k} {t}" for k, t in structure.items())
    data = b"\n".join(orjson.dumps({k: r.get(k) for k in structure}) for r in items).decode()
    store.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM format(JSONEachRow, {{s:String}}, {{d:String}})",
                  bind(store, {"s": struct, "d": data}))




def new_id() -> str:
    import uuid

    return uuid.uuid4().hex


__all__ = ["bind", "in_projects", "insert", "new_id", "rows", "ts", "utc", "version"]
