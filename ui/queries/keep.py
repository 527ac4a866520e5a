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
    viewer: str = keep.ALL_PROJECTS  # the caller's project, '*' for an admin

    @property
    def admin(self) -> bool:
        return self.viewer == keep.ALL_PROJECTS

    def may_release(self, hold: keep.Hold) -> bool:
        """The Release button: an admin any active hold, a project's caller its project's."""
        return hold.active and (self.admin or hold.project == self.viewer)

    def to_dict(self) -> dict[str, Any]:
        return {"pins": [p.to_dict() for p in self.pins], "holds": [h.to_dict() for h in self.holds],
                "error": self.error or None}


def keep_section(store: Store, holds_store: Store | None = None, viewer: str = keep.ALL_PROJECTS,
                 limit: int = 500) -> KeepSection:
    """Pins through the caller's ``store`` (its projects' traces); the holds ``viewer`` sees, read
    from the process's store (``holds_store``: holds of every project are kept there)."""
    out = KeepSection(viewer=viewer)
    try:
        out.pins = keep.list_pins(store, limit)
        out.holds = keep.list_holds(holds_store or store, viewer)
    except Exception as exc:  # noqa: BLE001 - the page shows the rest
        out.error = f"{type(exc).__name__}: {exc}"
    return out
