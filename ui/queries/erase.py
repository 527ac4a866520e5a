"""The Retention page's erasure section: finished erasures' receipts, newest first."""
from __future__ import annotations

from typing import Any

from tracelake.archiver import receipts
from tracelake.store.base import Store


def erase_section(store: Store, limit: int = 50, project: str = "*") -> dict[str, Any]:
    """Receipts (id, when, who, criteria, traces) of the caller's project ('*': all); ``error`` when
    they cannot be read (the page shows the rest)."""
    try:
        return {"receipts": receipts.list_receipts(store, limit, project), "error": ""}
    except Exception as exc:  # noqa: BLE001
        return {"receipts": [], "error": f"{type(exc).__name__}: {exc}"}
