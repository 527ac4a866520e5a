"""The dashboard's scores section: per score name, the average of current scores and how many
over time (by the judged trace's start, the dashboard's buckets), then by model and by prompt
version where spans carry one. The traces are the dashboard's (both tiers, the same filter);
each target's current score counts once (its newest)."""
from __future__ import annotations

from typing import Any

from tracelake.query.filters import Node
from tracelake.query.params import Params, query
from tracelake.store import tiers
from tracelake.store.base import Store
from tracelake.ui.queries import dashboard
from tracelake.ui.queries.trace_list import SPAN_SLACK_NS

MAX_NAMES = 8
# Prompt versions as the conventions carry them (OpenInference, Langfuse, a plain attribute).
PROMPT_KEYS = ("llm.prompt_template.version", "langfuse.prompt.version", "prompt.version", "gen_ai.prompt.version")
_CURRENT = ("SELECT Project, TraceId, Name, argMax(Value, CreatedAt) AS V FROM scores "
            "GROUP BY Project, TraceId, SpanId, Name")
_STATS = "avgIf(V, NOT isNaN(V)) AS Avg, count() AS N"


def _judged(p: Params, lo_ns: int, hi_ns: int, node: Node | None, visible: str, archive: bool) -> str:
    """One row per current score of a trace the dashboard counts: TS, Mods, TraceId, Name, V."""
    src = dashboard._traces(p, lo_ns, hi_ns, node, visible, archive, ("TS", "Mods", "Proj"))
    return (f"SELECT t.TS AS TS, t.Mods AS Mods, t.TraceId AS TraceId, s.Name AS Name, s.V AS V FROM ({src}) AS t "
            f"INNER JOIN ({_CURRENT}) AS s ON s.Project = t.Proj AND s.TraceId = t.TraceId")


def _prompt_versions(p: Params, lo_ns: int, hi_ns: int) -> str:
    """TraceId -> prompt version, from hot spans of the range that carry one."""
    keys = ", ".join(f"nullIf(SpanAttributes['{k}'], '')" for k in PROMPT_KEYS)
    has = " OR ".join(f"mapContains(SpanAttributes, '{k}')" for k in PROMPT_KEYS)
    return (f"SELECT TraceId, any(ifNull(coalesce({keys}), '')) AS PV FROM otel_traces "
            f"WHERE Timestamp >= fromUnixTimestamp64Nano({p.i(lo_ns)}) "
            f"AND Timestamp < fromUnixTimestamp64Nano({p.i(hi_ns + SPAN_SLACK_NS)}) AND ({has}) GROUP BY TraceId")


def score_stats(store: Store, lo_ns: int, hi_ns: int, node: Node | None = None) -> dict[str, Any]:
    step = dashboard.bucket_seconds(lo_ns, hi_ns)
    with_archive = tiers.archive_reaches(store, lo_ns)

    def read(visible: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        p = Params()
        judged = _judged(p, lo_ns, hi_ns, node, visible, with_archive)
        series = query(store, f"SELECT Name, intDiv(TS, {int(step) * 10**9}) * {int(step)} AS B, {_STATS} "
                              f"FROM ({judged}) GROUP BY Name, B", p)
        p2 = Params()
        models = query(store, f"SELECT Name, M AS K, {_STATS} FROM ({_judged(p2, lo_ns, hi_ns, node, visible, with_archive)}) "
                              "ARRAY JOIN if(empty(Mods), [''], Mods) AS M GROUP BY Name, K ORDER BY Name, N DESC LIMIT 20 BY Name", p2)
        p3 = Params()
        prompts = query(store, f"SELECT j.Name AS Name, pv.PV AS K, avgIf(j.V, NOT isNaN(j.V)) AS Avg, count() AS N "
                               f"FROM ({_judged(p3, lo_ns, hi_ns, node, visible, with_archive)}) AS j "
                               f"INNER JOIN ({_prompt_versions(p3, lo_ns, hi_ns)}) AS pv ON pv.TraceId = j.TraceId "
                               "GROUP BY Name, K ORDER BY Name, N DESC LIMIT 20 BY Name", p3)
        return series, models, prompts

    series, models, prompts = tiers.read_hot(store, read)
    totals: dict[str, int] = {}
    for r in series:
        totals[r["Name"]] = totals.get(r["Name"], 0) + int(r["N"])
    names = sorted(totals, key=lambda n: (-totals[n], n))[:MAX_NAMES]
    start_b = (lo_ns // 10**9) // step * step
    end_b = ((hi_ns - 1) // 10**9) // step * step
    out = []
    for name in names:
        by_b = {int(r["B"]): r for r in series if r["Name"] == name}
        points = [{"t": b, "count": int(by_b[b]["N"]) if b in by_b else 0,
                   "avg": _num(by_b[b]["Avg"]) if b in by_b else None} for b in range(start_b, end_b + 1, step)]
        n = totals[name]
        avg_all = sum((_num(r["Avg"]) or 0) * int(r["N"]) for r in series if r["Name"] == name and _num(r["Avg"]) is not None)
        counted = sum(int(r["N"]) for r in series if r["Name"] == name and _num(r["Avg"]) is not None)
        out.append({"name": name, "count": n, "avg": avg_all / counted if counted else None, "series": points,
                    "by_model": [_group(r) for r in models if r["Name"] == name],
                    "by_prompt_version": [_group(r) for r in prompts if r["Name"] == name]})
    return {"bucket_seconds": step, "bucket": dashboard.bucket_label(step), "scores": out}


def _num(v: Any) -> float | None:
    return None if v is None or v != v else float(v)


def _group(r: dict[str, Any]) -> dict[str, Any]:
    return {"key": r["K"], "avg": _num(r["Avg"]), "count": int(r["N"])}
