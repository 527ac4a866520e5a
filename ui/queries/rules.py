"""The Retention page's rule editor: the rules in force and where they come from, the text in the
editor, a preview (both plans per rule) or its error, the outcome of an apply, the version history.

All of it comes from :mod:`tracelake.archiver.rules` and :mod:`tracelake.archiver.policy_store`,
read with the process's store (``store`` here is never a caller's scoped store: the versions table
is hidden from those, and plans count every project as the rest of the page does).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tracelake.archiver import policy_store, rules
from tracelake.archiver.config import ArchiverConfig
from tracelake.store.base import Store


@dataclass
class RulesEditor:
    source: rules.Source
    yaml: str  # what the editor shows
    base_version: int  # the version a preview/apply of this text starts from
    can_apply: bool  # the caller may apply (admin, or auth off) and the rules are not from a file
    may_apply_role: bool = True
    preview: dict[str, Any] | None = None
    error: rules.EditError | None = None
    applied: policy_store.PolicyVersion | None = None
    apply_error: str = ""
    pending: bool = False  # applied while a pass ran: in force from the next pass
    versions: list[policy_store.PolicyVersion] = field(default_factory=list)
    versions_error: str = ""
    viewing: policy_store.PolicyVersion | None = None  # ?edit=N loaded this version into the editor

    def error_excerpt(self, around: int = 3) -> list[tuple[int, str, bool]]:
        """Lines of the edited YAML near the error's line: (number, text, is the line)."""
        if self.error is None or self.error.line is None:
            return []
        lines = self.yaml.splitlines() or [""]
        lo, hi = max(1, self.error.line - around), min(len(lines), self.error.line + around)
        return [(n, lines[n - 1], n == self.error.line) for n in range(lo, hi + 1)]


def editor(store: Store, config: ArchiverConfig, archiver: Any, *, can_apply_role: bool, yaml_text: str | None = None,
           base_version: int | None = None, edit_version: int | None = None,
           applied_version: int | None = None) -> RulesEditor:
    """The editor as first shown (``yaml_text`` None: the rules in force, or a starter)."""
    src = rules.source(store, config, archiver)
    viewing = policy_store.get(store, edit_version) if edit_version else None
    if yaml_text is None:
        yaml_text = viewing.yaml if viewing else (src.text or rules.STARTER)
    ed = RulesEditor(src, yaml_text, src.base_version if base_version is None else base_version,
                     can_apply=can_apply_role and src.editable, may_apply_role=can_apply_role, viewing=viewing)
    ed.pending = archiver is not None and archiver.pending_policy is not None
    if applied_version and src.version is not None and src.version.version == applied_version:
        ed.applied = src.version  # just applied (the page after an apply): said once, at the top of the editor
    try:
        ed.versions = policy_store.history(store, 50)
    except Exception as exc:  # noqa: BLE001 - the page still shows the rest
        ed.versions_error = f"{type(exc).__name__}: {exc}"[:500]
    return ed
