"""Bind parameters for either store: chdb reads raw string parameters in escaped text form."""
from __future__ import annotations

from typing import Any

from tracelake.query.params import escape, escape_needed
from tracelake.store.base import Store


def bind(store: Store, params: dict[str, Any]) -> dict[str, Any]:
    if not escape_needed(store):
        return dict(params)
    return {k: escape(v) if isinstance(v, str) else v for k, v in params.items()}
