"""Attachment metadata (type, size) for the blobs a span refers to."""
from __future__ import annotations

import re
from typing import Any

from tracelake.query.params import Params, query
from tracelake.store.base import Store


def attachment_meta(store: Store, shas: list[str]) -> dict[str, dict[str, Any]]:
    """sha256 -> {mime_type, size} from the attachments table, when it exists (issue 4)."""
    shas = [s for s in dict.fromkeys(shas) if re.fullmatch(r"[0-9a-f]{64}", s)][:200]
    if not shas:
        return {}
    p = Params()
    try:
        rows = query(store, "SELECT Sha256, any(MimeType) AS MimeType, max(Size) AS Size FROM attachments "
                            f"WHERE Sha256 IN ({', '.join(p.s(s) for s in shas)}) GROUP BY Sha256", p)
    except Exception:  # noqa: BLE001 - no attachments table yet: render by what the span says
        return {}
    return {r["Sha256"]: {"mime_type": r["MimeType"], "size": int(r["Size"])} for r in rows}
