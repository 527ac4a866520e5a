"""The Retention page's pins and holds section: active pins, every hold with who and when."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tracelake.archiver import keep
from tracelake.store.base import Store


@dataclass
class KeepSection:
    pins: list[keep.Pin] = field(default_factory=list)
    holds: list[keep.Hold] = field(default_factory=list)
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"pins": [p.to_dict() for p in self.pins], "holds": [h.to_dict() for h in self.holds],
                "error": self.error or None}


def keep_section(store: Store, holds_store: Store | None = None, limit: int = 500) -> KeepSection:
    """Pins through the caller's ``store`` (its projects' traces); holds are global (``holds_store``)."""
    out = KeepSection()
    try:
        out.pins = keep.list_pins(store, limit)
        out.holds = keep.list_holds(holds_store or store)
    except Exception as exc:  # noqa: BLE001 - the page shows the rest
        out.error = f"{type(exc).__name__}: {exc}"
    return out
