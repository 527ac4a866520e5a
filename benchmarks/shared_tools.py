"""Where the shared load tools are (``otlp_load.py``: realistic ~1 KB LLM-agent spans).

``TRACELAKE_SHARED_TOOLS`` if set, else the first ``shared/tools`` found walking up from the
repository: ``/work/main/../shared/tools`` in the main checkout, ``/work/wt/<name>/../../shared/tools``
in a worktree. None when there are none (the benchmarks then use small built-in spans and say so).
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_tools() -> Path | None:
    given = os.environ.get("TRACELAKE_SHARED_TOOLS")
    candidates = [Path(given)] if given else [p / "shared" / "tools" for p in REPO.parents]
    for path in candidates:
        if (path / "otlp_load.py").exists():
            return path
    if given:
        raise SystemExit(f"TRACELAKE_SHARED_TOOLS={given}: no otlp_load.py there")
    return None
