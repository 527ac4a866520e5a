"""Server-rendered SVG charts: geometry computed here, drawn by templates/_chart.html.

No chart script: bars and lines are SVG presentation attributes (allowed by the CSP, unlike inline
styles), and hover values are ``<title>`` elements (escaped text).

Geometry rules that keep a chart readable at every range: the bucket sizes (queries.dashboard)
give at most ~40 bars, one bar per bucket with the series stacked in it (never side by side), at
least :data:`MIN_BAR` wide; the right padding leaves room for half a time label, so the last one
is never cut; y ticks are round values (whole numbers for counts); time labels sit on round times.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from tracelake.ui.render import fmt_bytes, fmt_cost, fmt_int, fmt_ms

W, H = 600, 180
PAD_L, PAD_T, PAD_B = 54, 10, 22
FONT = 11  # .chart text font-size in app.css, in viewBox units
CHAR_W = 0.66 * FONT  # at least the width of a digit in common sans fonts (DejaVu Sans: 0.636 em)
MIN_BAR, MAX_BAR = 6.0, 36.0  # bar width bounds, viewBox units (a chart is drawn 480-700 px wide)
# Seconds between time labels: a round interval, a multiple of the bucket, wide enough for a label.
LABEL_EVERY = (10, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
               2 * 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 91 * 86400, 365 * 86400)

Spec = tuple[str, str, str]  # (bucket key, legend label, css class)


@dataclass
class Rect:
    x: float
    y: float
    w: float
    h: float
    css: str
    title: str


@dataclass
class Line:
    css: str
    segments: list[str] = field(default_factory=list)  # polyline points, broken where a bucket has no value
    dots: list[tuple[float, float, str]] = field(default_factory=list)


@dataclass
class Chart:
    title: str
    keys: list[tuple[str, str]]  # legend: (label, css)
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]
    rects: list[Rect] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    total: str = ""
    empty: str = ""  # a message drawn over the plot ('no traces in this range'), or nothing
    width: int = W
    height: int = H
    plot: tuple[float, float, float, float] = (0, 0, 0, 0)  # x0, x1, y_top, y_bottom


def _ticks(vmax: float, integer: bool) -> list[float]:
    """Round tick values from 0 to at least ``vmax``: 2 to 5 of them, a 1-2-5 step."""
    if vmax <= 0:
        return [0.0, 1.0]
    raw = vmax / 4
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if integer:
        step = max(1.0, float(math.ceil(step)))
    n = max(1, math.ceil(vmax / step - 1e-9))
    return [i * step for i in range(n + 1)]


def time_format(every: int, step: int, span_s: int) -> str:
    """strftime format of time labels ``every`` seconds apart: a date when they fall on midnights,
    seconds for sub-minute buckets, a date and time when the range is a day or more (an hour of
    the day would show twice)."""
    if every % 86400 == 0:
        return "%m-%d"
    if step < 60:
        return "%H:%M:%S"
    return "%m-%d %H:%M" if span_s >= 20 * 3600 else "%H:%M"


def _axis(step: int, n: int, x0: float) -> tuple[int, str, float]:
    """(seconds between labels, their format, right end of the plot): the closest round labels that
    do not overlap, with room right of the plot for half a label, so the last one is never cut."""
    for every in [e for e in LABEL_EVERY if e % step == 0] + [step * k for k in range(2, n + 1)]:
        fmt = time_format(every, step, n * step)
        width = len(datetime(2000, 12, 31, 23, 59, 59).strftime(fmt)) * CHAR_W
        x1 = W - math.ceil(width / 2) - 2
        if every // step * (x1 - x0) / n >= width + 8:
            break
    return every, fmt, x1


def _when(t: int, step: int) -> str:
    dt = datetime.fromtimestamp(t, tz=timezone.utc)
    return dt.strftime("%Y-%m-%d" if step >= 86400 else "%Y-%m-%d %H:%M:%S" if step < 60 else "%Y-%m-%d %H:%M")


def _short(label: str) -> str:
    """A tick label without trailing zeros: '800.0k' -> '800k', '7.50 s' -> '7.5 s'."""
    return re.sub(r"\.(?=\D|$)", "", re.sub(r"(\.\d*?)0+(?=\D|$)", r"\1", label))


def chart(title: str, buckets: list[dict[str, Any]], step: int, specs: list[Spec], fmt: Callable[[float], str], *,
          lines: bool = False, integer: bool = False, total: str = "", empty: str = "",
          tick_fmt: Callable[[float], str] | None = None) -> Chart:
    """Stacked bars (``specs`` bottom to top) or lines (``lines``), one slot per bucket; ``fmt``
    formats values in hover titles, ``tick_fmt`` the y axis (default: ``fmt`` without trailing zeros)."""
    n = max(1, len(buckets))
    y_top, y_bot = PAD_T, H - PAD_B
    if lines:
        vmax = max([b[k] for b in buckets for k, *_ in specs if b[k] is not None] + [0])
    else:
        vmax = max([sum(b[k] or 0 for k, *_ in specs) for b in buckets] + [0])
    ticks = _ticks(vmax, integer)
    top = ticks[-1]
    if empty:
        ticks = [0.0]  # nothing to scale: only the baseline
    tick_fmt = tick_fmt or (lambda v: _short(fmt(v)))
    y_labels = ["0" if v == 0 else tick_fmt(v) for v in ticks]
    # The plot starts right of the widest value label ('$0.00025' needs more than '100').
    x0 = max(PAD_L, math.ceil(max(len(t) for t in y_labels) * CHAR_W) + 8)
    every, label_fmt, x1 = _axis(step, n, x0)
    slot = (x1 - x0) / n

    def y_of(v: float) -> float:
        return round(y_bot - v / top * (y_bot - y_top), 2)

    out = Chart(title, [(label, css) for _, label, css in specs],
                [(y_of(v), t) for v, t in zip(ticks, y_labels)], [], total=total, empty=empty,
                plot=(x0, x1, y_top, y_bot))
    bar_w = max(min(MIN_BAR, slot - 1), min(MAX_BAR, slot * 0.72))
    for i, b in enumerate(buckets):
        mid = x0 + (i + 0.5) * slot
        when = _when(b["t"], step)
        if lines:
            continue
        base = 0.0
        for key, label, css in specs:
            v = b[key] or 0
            if v > 0:
                out.rects.append(Rect(round(mid - bar_w / 2, 2), y_of(base + v), round(bar_w, 2),
                                      round(y_of(base) - y_of(base + v), 2), css, f"{when} · {label}: {fmt(v)}"))
            base += v
    if lines:
        for key, label, css in specs:
            line = Line(css)
            seg: list[str] = []
            for i, b in enumerate(buckets):
                v = b[key]
                if v is None:
                    if seg:
                        line.segments.append(" ".join(seg))
                    seg = []
                    continue
                x, y = round(x0 + (i + 0.5) * slot, 2), y_of(v)
                seg.append(f"{x},{y}")
                line.dots.append((x, y, f"{_when(b['t'], step)} · {label}: {fmt(v)}"))
            if seg:
                line.segments.append(" ".join(seg))
            out.lines.append(line)
    for i, b in enumerate(buckets):
        if b["t"] % every == 0:
            out.x_ticks.append((round(x0 + (i + 0.5) * slot, 2), datetime.fromtimestamp(b["t"], tz=timezone.utc).strftime(label_fmt)))
    return out


def _money(v: float) -> str:
    """A cost tick: whole dollars from $100, else at least cents and as many digits as the tick has."""
    if v >= 100:
        return f"${v:,.0f}"
    digits = f"{v:.6f}".rstrip("0")
    return f"${digits}" if len(digits.split(".")[1]) >= 2 else f"${v:.2f}"


def _pct(v: float) -> str:
    return f"{v:.0f}%" if v >= 10 or v == int(v) else f"{v:.1f}%" if v >= 1 else f"{v:.2f}%"


def dashboard_charts(d: dict[str, Any]) -> list[Chart]:
    b, step, t, tiers = d["series"], d["bucket_seconds"], d["totals"], d["tiers"]
    empty = "" if t["requests"] else "no traces in this range"
    rows = [{**x, "ok": x["requests"] - x["errors"],
             "rate": (x["errors"] / x["requests"] * 100) if x["requests"] else None} for x in b]
    return [
        chart("Traces", rows, step, [("ok", "ok", "s1"), ("errors", "failed", "err")], fmt_int, integer=True,
              total=f"{fmt_int(t['requests'])} traces", empty=empty),
        chart("Error rate", rows, step, [("rate", "failed traces %", "err")], _pct, lines=True,
              total=f"{t['error_rate'] * 100:.2f}% ({fmt_int(t['errors'])} failed)", empty=empty),
        chart("Latency", rows, step, [("p50_ms", "p50", "s1"), ("p95_ms", "p95", "s2")], fmt_ms, lines=True,
              total=f"p50 {fmt_ms(t['p50_ms']) or '–'} · p95 {fmt_ms(t['p95_ms']) or '–'}", empty=empty),
        chart("Tokens", rows, step, [("input_tokens", "input", "s1"), ("output_tokens", "output", "s2")], fmt_int,
              integer=True, total=f"{fmt_int(t['input_tokens'])} in / {fmt_int(t['output_tokens'])} out", empty=empty),
        chart("Cost", rows, step, [("cost_usd", "cost", "s1")], lambda v: fmt_cost(v) or "$0", tick_fmt=_money,
              total=fmt_cost(t["cost_usd"]) or "$0", empty=empty),
        chart("Hot and archived traces", rows, step, [("hot", "hot", "s1"), ("archive", "archived", "s2")], fmt_int,
              integer=True, total=f"{fmt_int(tiers['hot'])} hot / {fmt_int(tiers['archive'])} archived", empty=empty),
    ]


def score_charts(stats: dict[str, Any]) -> list[Chart]:
    """Per score name: its average over time (a line; true/up count 1) and how many scores (bars)."""
    out = []
    for s in stats["scores"]:
        avg = "–" if s["avg"] is None else f"{s['avg']:.2f}"
        out.append(chart(f"{s['name']}: average", s["series"], stats["bucket_seconds"], [("avg", "average", "s1")],
                         lambda v: f"{v:.2f}", lines=True, total=f"average {avg}"))
        out.append(chart(f"{s['name']}: scores", s["series"], stats["bucket_seconds"], [("count", "scores", "s2")],
                         fmt_int, integer=True, total=f"{fmt_int(s['count'])} scores"))
    return out


def tier_charts(sizes: list[dict[str, Any]]) -> list[Chart]:
    """Spans and bytes per day, hot and archive stacked (days that hold data, oldest first)."""
    days: dict[str, dict[str, Any]] = {}
    for s in sizes:
        try:
            t = int(datetime.strptime(s["day"], "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp())
        except ValueError:  # not a day partition: nothing to place on the axis
            continue
        b = days.setdefault(s["day"], {"t": t, "hot_spans": 0, "archive_spans": 0, "hot_bytes": 0, "archive_bytes": 0})
        b[f"{s['tier']}_spans"] += s["spans"]
        b[f"{s['tier']}_bytes"] += s["bytes"]
    buckets = [days[d] for d in sorted(days)][-90:]
    total = {k: sum(b[k] for b in buckets) for k in ("hot_spans", "archive_spans", "hot_bytes", "archive_bytes")}
    empty = "" if buckets else "no data"
    return [
        chart("Spans per day", buckets, 86400, [("hot_spans", "hot", "s1"), ("archive_spans", "archive", "s2")],
              fmt_int, integer=True, empty=empty,
              total=f"{fmt_int(total['hot_spans'])} hot / {fmt_int(total['archive_spans'])} archived"),
        chart("Bytes per day", buckets, 86400, [("hot_bytes", "hot", "s1"), ("archive_bytes", "archive", "s2")],
              lambda v: fmt_bytes(int(v)), empty=empty,
              total=f"{fmt_bytes(total['hot_bytes'])} hot / {fmt_bytes(total['archive_bytes'])} archived"),
    ]
