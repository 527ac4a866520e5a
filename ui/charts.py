"""Server-rendered SVG charts: geometry computed here, drawn by templates/_chart.html.

No chart script: bars and lines are SVG presentation attributes (allowed by the CSP, unlike inline
styles), and hover values are ``<title>`` elements (escaped text).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from tracelake.ui.render import fmt_bytes, fmt_cost, fmt_int, fmt_ms

W, H = 600, 160
PAD_L, PAD_B, PAD_T = 58, 18, 8


@dataclass
class Series:
    name: str
    css: str  # class: s1, s2, err
    kind: str  # bar | line
    points: list[tuple[float, float, float, str]] = field(default_factory=list)  # x, y, h(bars), title
    path: str = ""


@dataclass
class Chart:
    title: str
    series: list[Series]
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]
    total: str = ""
    width: int = W
    height: int = H
    empty: bool = False


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    import math

    mag = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * mag:
            return m * mag
    return 10 * mag


def _label_time(t: int, step: int) -> str:
    dt = datetime.fromtimestamp(t, tz=timezone.utc)
    if step >= 86400:
        return dt.strftime("%m-%d")
    return dt.strftime("%m-%d %H:%M") if step >= 3600 else dt.strftime("%H:%M")


def chart(title: str, buckets: list[dict[str, Any]], step: int, specs: list[tuple[str, str, str, str]],
          fmt: Callable[[float], str], total: str = "") -> Chart:
    """specs: (key, label, css class, bar|line). Bars of several series are drawn side by side."""
    n = max(1, len(buckets))
    plot_w = W - PAD_L - 4
    plot_h = H - PAD_B - PAD_T
    slot = plot_w / n
    vmax = _nice_max(max([b[k] or 0 for b in buckets for k, *_ in specs] + [0]))
    bar_specs = [s for s in specs if s[3] == "bar"]
    out: list[Series] = []
    for key, label, css, kind in specs:
        s = Series(label, css, kind)
        coords = []
        for i, b in enumerate(buckets):
            v = b[key]
            when = _label_time(b["t"], step)
            if kind == "bar":
                j = bar_specs.index((key, label, css, kind))
                bw = max(1.0, slot / len(bar_specs) - 1)
                x = PAD_L + i * slot + j * (slot / len(bar_specs))
                h = (v or 0) / vmax * plot_h
                s.points.append((round(x, 2), round(PAD_T + plot_h - h, 2), round(h, 2), f"{when} {label}: {fmt(v or 0)}"))
                s.path = str(round(bw, 2))
            elif v is not None:
                x = PAD_L + (i + 0.5) * slot
                y = PAD_T + plot_h - v / vmax * plot_h
                coords.append(f"{x:.1f},{y:.1f}")
                s.points.append((round(x, 2), round(y, 2), 0, f"{when} {label}: {fmt(v)}"))
        if kind == "line":
            s.path = " ".join(coords)
        out.append(s)
    y_ticks = [(round(PAD_T + plot_h - f * plot_h, 1), fmt(vmax * f)) for f in (0, 0.5, 1)]
    every = max(1, n // 6)
    x_ticks = [(round(PAD_L + (i + 0.5) * slot, 1), _label_time(b["t"], step)) for i, b in enumerate(buckets) if i % every == 0]
    empty = all((b[k] or 0) == 0 for b in buckets for k, *_ in specs)
    return Chart(title, out, y_ticks, x_ticks, total, empty=empty)


def dashboard_charts(d: dict[str, Any]) -> list[Chart]:
    b, step, t = d["series"], d["bucket_seconds"], d["totals"]
    return [
        chart("Requests (traces)", b, step, [("requests", "requests", "s1", "bar"), ("errors", "errors", "err", "bar")],
              fmt_int, f"{fmt_int(t['requests'])} traces"),
        chart("Error rate", [{**x, "rate": (x["errors"] / x["requests"] * 100) if x["requests"] else None} for x in b], step,
              [("rate", "error %", "err", "line")], lambda v: f"{v:.1f}%", f"{t['error_rate'] * 100:.2f}%"),
        chart("Latency", b, step, [("p50_ms", "p50", "s1", "line"), ("p95_ms", "p95", "s2", "line")], fmt_ms),
        chart("Tokens", b, step, [("input_tokens", "input", "s1", "bar"), ("output_tokens", "output", "s2", "bar")],
              fmt_int, f"{fmt_int(t['input_tokens'])} in / {fmt_int(t['output_tokens'])} out"),
        chart("Cost", b, step, [("cost_usd", "cost", "s1", "line")], lambda v: fmt_cost(v) or "$0", fmt_cost(t["cost_usd"]) or "$0"),
    ]


def tier_charts(sizes: list[dict[str, Any]]) -> list[Chart]:
    """Spans and bytes per day, hot and archive side by side (days that hold data, oldest first)."""
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
    return [
        chart("Spans per day", buckets, 86400, [("hot_spans", "hot", "s1", "bar"), ("archive_spans", "archive", "s2", "bar")],
              fmt_int, f"{fmt_int(total['hot_spans'])} hot / {fmt_int(total['archive_spans'])} archived"),
        chart("Bytes per day", buckets, 86400, [("hot_bytes", "hot", "s1", "bar"), ("archive_bytes", "archive", "s2", "bar")],
              lambda v: fmt_bytes(int(v)), f"{fmt_bytes(total['hot_bytes'])} hot / {fmt_bytes(total['archive_bytes'])} archived"),
    ]
