"""The JSONL export of judged traces: each trace matching a filter with its summary, its root
span's input and output (the attributes the SDK and OpenInference use) and every score, newest
first; the raw material of an evaluation set (docs/scores.md, "Export")."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from tracelake.query.filters import Node
from tracelake.query.params import Params, query
from tracelake.store import tiers
from tracelake.store.base import Store
from tracelake.store.scores import scores_for_export
from tracelake.ui.queries.trace_list import decode_cursor, list_traces

PAGE = 200
MAX_TRACES = 100_000
IO_KEYS = ("input.value", "output.value", "gen_ai.input.messages", "gen_ai.output.messages")


def _root_io(store: Store, ids: list[str]) -> dict[str, dict[str, str]]:
    """The root span's input and output attributes per trace, from either tier."""
    p = Params()
    id_list = ", ".join(p.s(t) for t in ids)
    cols = ", ".join(f"SpanAttributes['{k}'] AS `{k}`" for k in IO_KEYS)
    sql = f"SELECT TraceId, {cols} FROM otel_traces WHERE TraceId IN ({id_list}) AND ParentSpanId = '' LIMIT 1 BY TraceId"
    rows = query(store, sql, p)
    if tiers.archive_present(store) and len(rows) < len(ids):
        rows += query(store, sql.replace("FROM otel_traces ", "FROM otel_traces_archive "), p)
    out: dict[str, dict[str, str]] = {}
    for r in rows:
        out.setdefault(r["TraceId"], {k: r[k] for k in IO_KEYS if r[k]})
    return out


def export_lines(store: Store, node: Node | None, lo_ns: int, hi_ns: int, limit: int = MAX_TRACES) -> Iterator[bytes]:
    """One JSON line per trace, newest first, page by page (hot and archived)."""
    cursor: tuple[int, str] | None = None
    sent = 0
    while sent < limit:
        page = list_traces(store, node, lo_ns, hi_ns, cursor, min(PAGE, limit - sent))
        ids = [r.trace_id for r in page.rows]
        judged = scores_for_export(store, ids)
        io = _root_io(store, ids) if ids else {}
        for r in page.rows:
            doc: dict[str, Any] = {"trace": r.as_json(), "root_io": io.get(r.trace_id, {}),
                                   "scores": [s.to_dict() for s in judged.get(r.trace_id, [])]}
            yield orjson.dumps(doc, default=str) + b"\n"
        sent += len(page.rows)
        if not page.next_cursor or not page.rows:
            return
        cursor = decode_cursor(page.next_cursor)
