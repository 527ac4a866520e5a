"""Free text over the archive, narrowed by its term index (tracelake.archiver.text_index).

A filter whose top-level AND holds free-text terms can only match spans in row groups holding every
word of every such term. ``archive_terms`` names those row groups; the trace list then reads only
them (a file read bounded to each row group's TraceId range), or nothing at all when no row group
qualifies and every file of the window is indexed: a search for a word the archive does not hold
opens no file. Files not indexed yet are read whole, as before the index.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tracelake.query.compile import Tier
from tracelake.query.filters import And, Node, Text
from tracelake.query.params import Params, query
from tracelake.query.text_search import archive_term_groups
from tracelake.store.base import Store
from tracelake.ui.queries import archive_files

# Beyond this many row groups (~65k spans) the newest-first candidate path is cheaper: a frequent word
# fills a page from the newest traces long before a read of all its row groups ends (measured: 25 row
# groups read whole took 7.5 s on a loaded machine, the candidate path well under one).
MAX_DIRECT_GROUPS = 8


@dataclass
class Narrowed:
    """Where the archive can hold matches in a window: TraceId ranges per indexed file, and the
    window's files that are not indexed (read whole)."""

    ranges: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    unindexed: list[str] = field(default_factory=list)

    @property
    def nothing(self) -> bool:
        return not self.ranges and not self.unindexed

    @property
    def groups(self) -> int:
        return sum(len(r) for r in self.ranges.values())


def text_terms(node: Node | None) -> list[Text]:
    """The positive free-text terms of the filter's top-level AND (each one must match)."""
    items = list(node.items) if isinstance(node, And) else [node] if node is not None else []
    return [n for n in items if isinstance(n, Text)]


def narrow(store: Store, node: Node | None, lo_ns: int, hi_ns: int) -> Narrowed | None:
    """The row groups and files that can hold the filter's free-text matches for traces starting in
    [lo_ns, hi_ns); None when the filter has no such term or the file list is not at hand."""
    terms = text_terms(node)
    index = archive_files.file_index(store)
    if not terms or index is None:
        return None
    p = Params()
    parts = query(store, "SELECT DISTINCT toString(Day) AS D, toString(Project) AS P FROM archived_traces "
                         f"WHERE Start >= fromUnixTimestamp64Nano({p.i(lo_ns)}) AND Start < fromUnixTimestamp64Nano({p.i(hi_ns)})", p)
    if not parts:
        return Narrowed()
    from tracelake.ui.queries.trace_list import SPAN_SLACK_NS

    live = index.in_window(sorted((r["D"], r["P"]) for r in parts), (lo_ns, hi_ns + SPAN_SLACK_NS))
    if live is None:
        return None
    if not live:
        return Narrowed()
    p = Params()
    paths = f"splitByChar(',', {p.s(','.join(live))})"  # our own file names: no comma (archiver.files._plain)
    indexed = {r["Path"] for r in query(store, f"SELECT DISTINCT Path FROM archive_term_files WHERE has({paths}, Path)", p)}
    groups = " INTERSECT ".join(f"SELECT Path, RowGroup, TraceLo, TraceHi FROM ({archive_term_groups(p, t)})"
                                for t in terms)
    out = Narrowed(unindexed=[f for f in live if f not in indexed])
    for r in query(store, f"SELECT Path, TraceLo, TraceHi FROM ({groups}) WHERE has({paths}, Path) "
                          "ORDER BY Path, TraceLo", p):
        out.ranges.setdefault(r["Path"], []).append((r["TraceLo"], r["TraceHi"]))
    return out


def narrowed_tier(store: Store, p: Params, narrowed: Narrowed) -> Tier | None:
    """The archive tier reading only the narrowed row groups (and unindexed files whole)."""
    index = archive_files.file_index(store)
    if index is None or narrowed.nothing:
        return None
    paths = sorted(narrowed.ranges) + narrowed.unindexed
    per_path = {path: "(" + " OR ".join(f"(TraceId >= {p.s(lo)} AND TraceId <= {p.s(hi)})" for lo, hi in ranges) + ")"
                for path, ranges in narrowed.ranges.items()}
    return archive_files.visible_files_tier(store, index, p, paths, per_path=per_path)
