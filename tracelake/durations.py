"""Durations as people write them in settings and retention rules: ``30d``, ``12h``, ``forever``.

Core, because settings validate with it (``archive_every``, ``restore_pin_for``, ...) and the
archiver's rules, pins and restores read the same syntax.
"""
from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, *, allow_forever: bool) -> timedelta | None:
    """``30d`` -> timedelta(days=30); ``forever`` -> None (when allowed). ValueError names the bad value."""
    if allow_forever and text.strip().lower() == "forever":
        return None
    m = _DURATION.match(text)
    if not m:
        allowed = "30d, 12h, 90m, 2w, 0d" + (" or forever" if allow_forever else "")
        raise ValueError(f"bad duration {text!r}: use a number and a unit (s, m, h, d, w), e.g. {allowed}")
    return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


def format_duration(value: timedelta | None) -> str:
    """The shortest whole-unit spelling: timedelta(days=14) -> ``2w``; None -> ``forever``."""
    if value is None:
        return "forever"
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"
