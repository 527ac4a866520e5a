"""The Jinja environment and the small formatting helpers the templates use.

Autoescape is on for every template (whatever its extension) and no helper here returns ``Markup``
built from span data: span text reaches the page only through Jinja's escaping, or through the
search highlighter (:mod:`tracelake.ui.highlight`), which escapes every piece itself and adds only
``<mark>`` tags. Times are shown
in UTC everywhere (said in the page header), so a shared URL shows the same times to everyone.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from jinja2_fragments.fastapi import Jinja2Blocks

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TEMPLATE_DIR = HERE / "templates"
TRUNCATE_CHARS = 4000  # attribute values and message parts longer than this are cut in the page
RANGES: dict[str, int] = {"5m": 300, "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800, "30d": 2592000}
DEFAULT_RANGE = "24h"
HTMX_VERSION = "2.0.11"


def fmt_time(ns: int | None, with_date: bool = True) -> str:
    if not ns:
        return ""
    dt = datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if with_date else dt.strftime("%H:%M:%S.%f")[:-3]


def fmt_iso(ns: int | None) -> str:
    if not ns:
        return ""
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fmt_duration(ns: float | int | None) -> str:
    if ns is None:
        return ""
    ns = float(ns)
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.0f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.0f} ms" if ns >= 10e6 else f"{ns / 1e6:.1f} ms"
    if ns < 60e9:
        return f"{ns / 1e9:.2f} s"
    if ns < 3600e9:
        return f"{int(ns // 60e9)}m {int(ns % 60e9 / 1e9)}s"
    return f"{int(ns // 3600e9)}h {int(ns % 3600e9 // 60e9)}m"


def fmt_ms(ms: float | None) -> str:
    return "" if ms is None else fmt_duration(ms * 1e6)


def fmt_int(n: int | float | None) -> str:
    if n is None:
        return ""
    n = float(n)
    if abs(n) >= 1e6:
        return f"{n / 1e6:.1f}M"
    if abs(n) >= 1e4:
        return f"{n / 1e3:.1f}k"
    return f"{int(n):,}"


def fmt_cost(c: float | None) -> str:
    if not c:
        return ""
    if c >= 100:
        return f"${c:,.0f}"
    if c >= 1:
        return f"${c:.2f}"
    if c >= 0.01:
        return f"${c:.3f}"
    return f"${c:.5f}"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def truncated(text: str, limit: int = TRUNCATE_CHARS) -> tuple[str, bool]:
    """(shown text, was cut). Enormous values are cut so the page stays usable."""
    if len(text) <= limit:
        return text, False
    return text[:limit], True


def pretty_value(text: str) -> str:
    """An attribute value for display: JSON objects/arrays pretty-printed, anything else as is."""
    if len(text) > 200_000 or text[:1] not in "[{":
        return text
    from tracelake.ui.messages import pretty

    return pretty(text)


def qs(**params: Any) -> str:
    """A query string from non-empty params (values are URL-encoded, never concatenated raw)."""
    return urlencode({k: v for k, v in params.items() if v not in (None, "", False)})


def safe_href(url: str) -> str:
    """``url`` if it may be a link (http(s) or a same-origin absolute path), else ''.
    ``javascript:``, ``data:`` and the like are never rendered as links."""
    u = url.strip()
    if re.match(r"^https?://", u, re.IGNORECASE) and not re.search(r"[\s\"'<>\\]", u):
        return u
    if u.startswith("/api/attachments/") and re.fullmatch(r"/api/attachments/[0-9a-f]{64}", u):
        return u
    return ""


class TimeRange:
    """The page's time window: a preset relative to now (``range=1h``) or absolute from/to (UTC)."""

    def __init__(self, lo_ns: int, hi_ns: int, preset: str = "", frm: str = "", to: str = "", error: str = "") -> None:
        self.lo_ns, self.hi_ns, self.preset, self.frm, self.to, self.error = lo_ns, hi_ns, preset, frm, to, error

    @property
    def relative(self) -> bool:
        return bool(self.preset)

    def params(self) -> dict[str, str]:
        return {"range": self.preset} if self.preset else {"from": self.frm, "to": self.to}


def _parse_dt(text: str) -> datetime:
    t = text.strip().replace(" ", "T")
    if t.endswith("Z"):
        t = t[:-1]
    if re.fullmatch(r"\d+", t):  # unix seconds or ms
        v = int(t)
        return datetime.fromtimestamp(v / 1000 if v > 10**11 else v, tz=timezone.utc)
    dt = datetime.fromisoformat(t)
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def time_range(range_: str | None, frm: str | None, to: str | None, now: datetime | None = None) -> TimeRange:
    now = now or datetime.now(timezone.utc)
    hi_now = int(now.timestamp() * 1e9) + 60 * 10**9  # a minute of slack for clock skew of senders
    if frm or to:
        try:
            lo = _parse_dt(frm) if frm else now - timedelta(days=1)
            hi = _parse_dt(to) if to else now
            if hi <= lo:
                raise ValueError("'to' must be after 'from'")
            return TimeRange(int(lo.timestamp() * 1e9), int(hi.timestamp() * 1e9), "", frm or "", to or "")
        except (ValueError, OverflowError, OSError) as exc:
            secs = RANGES[DEFAULT_RANGE]
            return TimeRange(hi_now - secs * 10**9, hi_now, DEFAULT_RANGE,
                             error=f"bad time range ({exc}); showing the last {DEFAULT_RANGE}. "
                                   "Use ISO times in UTC, e.g. 2026-01-31T09:00")
    preset = range_ if range_ in RANGES else DEFAULT_RANGE
    err = "" if not range_ or range_ in RANGES else f"unknown range {range_!r}; use one of {', '.join(RANGES)}"
    return TimeRange(hi_now - RANGES[preset] * 10**9, hi_now, preset, error=err)


def make_env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATE_DIR)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(time=fmt_time, iso=fmt_iso, dur=fmt_duration, ms=fmt_ms, int=fmt_int, cost=fmt_cost,
                       bytes=fmt_bytes, pretty=pretty_value)
    from tracelake.query.filters import add_term, attr_term

    env.globals.update(add_term=add_term, attr_term=attr_term, qs=qs, safe_href=safe_href, truncated=truncated, RANGES=RANGES, HTMX_VERSION=HTMX_VERSION,
                       TRUNCATE_CHARS=TRUNCATE_CHARS, may=may, csrf_token=csrf_token)
    return env


def csrf_token(request: Any) -> str:
    """The CSRF token of the caller's session (the sign-out form, the htmx header); '' without one."""
    from tracelake.auth.web import csrf_token_for

    return csrf_token_for(request)


def may(caller: Any, permission: str) -> bool:
    """Whether the signed-in caller's role has ``permission`` (tracelake.auth.roles.Perm): the
    navigation shows only the pages a role can use. No caller: auth is off, everything is open."""
    if caller is None:
        return True
    from tracelake.auth.roles import Perm, has

    return has(caller.role, Perm(permission))


templates = Jinja2Blocks(env=make_env())
