"""The Prices page's reads: prices in force, their history, aliases, and models without a price."""
from __future__ import annotations

from typing import Any

from tracelake.query.params import Params, query
from tracelake.store.base import Store
from tracelake.store.cost_schema import CURRENT_PRICE_ROWS, PRICE_COLUMNS

_COLS = ", ".join(PRICE_COLUMNS)
_FIELDS = dict(zip(PRICE_COLUMNS, ("input", "output", "cache_read", "cache_write", "reasoning", "audio_input",
                                   "audio_output", "image_input")))


def _price_row(r: dict[str, Any]) -> dict[str, Any]:
    out = {"project": r["Project"], "model": r["Model"], "effective_from": r["EF"],
           **{_FIELDS[c]: r[c] for c in PRICE_COLUMNS}}
    for k in ("Source", "ChangedBy", "Changed", "Until", "Deleted"):
        if k in r:
            out[k.lower()] = r[k]
    return out


def in_force(store: Store, projects: frozenset[str] | None = None) -> list[dict[str, Any]]:
    """Every price row still in effect (the latest of each model and project up to now, and those
    dated in the future), with ``until`` when a later price replaces it."""
    p = Params()
    scope = f"WHERE Project = '' OR Project IN ({', '.join(p.s(x) for x in sorted(projects))})" if projects else ""
    sql = (f"SELECT *, toString(EffectiveFrom) AS EF, toString(LastChange) AS Changed, "
           f"toString(leadInFrame(toNullable(EffectiveFrom)) OVER (PARTITION BY Project, Model ORDER BY EffectiveFrom "
           f"ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) AS Until "
           f"FROM ({CURRENT_PRICE_ROWS.replace('{database}', store.database)}) {scope}")
    rows = [r for r in query(store, f"SELECT * FROM ({sql}) WHERE Until IS NULL OR Until > toString(now()) "
                                    f"ORDER BY Model, Project, EffectiveFrom", p)]
    return [_price_row(r) for r in rows]


def history(store: Store, model: str = "", projects: frozenset[str] | None = None, limit: int = 300) -> list[dict[str, Any]]:
    """Every change, newest first (edits of the same effective time included, deletions marked)."""
    p = Params()
    conds = []
    if model:
        conds.append(f"Model = {p.s(model)}")
    if projects:
        conds.append(f"(Project = '' OR Project IN ({', '.join(p.s(x) for x in sorted(projects))}))")
    where = f"WHERE {' AND '.join(conds)}" if conds else ""
    sql = (f"SELECT Project, Model, toString(EffectiveFrom) AS EF, {_COLS}, Source, ChangedBy, Deleted, "
           f"toString(ChangedAt) AS Changed FROM model_price_history {where} ORDER BY ChangedAt DESC LIMIT {int(limit)}")
    return [_price_row(r) for r in query(store, sql, p)]


def aliases(store: Store) -> list[dict[str, Any]]:
    return query(store, "SELECT Alias AS alias, argMax(Model, ChangedAt) AS model, argMax(ChangedBy, ChangedAt) AS changed_by "
                        "FROM model_aliases GROUP BY Alias HAVING argMax(Deleted, ChangedAt) = 0 ORDER BY Alias", Params())


def unpriced(store: Store, lo_ns: int, hi_ns: int, limit: int = 100) -> list[dict[str, Any]]:
    """Models of LLM spans with tokens and no price in [lo, hi) (hot tier), with their token volume."""
    p = Params()
    sql = (f"SELECT toString(LlmModel) AS model, toString(Project) AS project, count() AS spans, "
           f"sum(InputTokens) AS input_tokens, sum(OutputTokens) AS output_tokens, "
           f"sum(CacheReadTokens) AS cache_read_tokens, toString(max(Timestamp)) AS last_seen "
           f"FROM otel_traces WHERE Timestamp >= fromUnixTimestamp64Nano({p.i(lo_ns)}) "
           f"AND Timestamp < fromUnixTimestamp64Nano({p.i(hi_ns)}) AND LlmModel != '' AND Unpriced = 1 "
           f"GROUP BY model, project ORDER BY input_tokens + output_tokens DESC LIMIT {int(limit)}")
    return query(store, sql, p)
