"""The archive's term index: which words each row group of each Parquet file holds (docs/search.md).

A search over the archive asks ``archive_terms`` which row groups hold the words, then reads only
those (rows are sorted by TraceId, so a read bounded to a row group's TraceId range skips every
other one); a word in no row group opens no file at all. The index lives beside the archive's trace
index in ClickHouse, not in the files: other engines read the files as before.

Indexing reads a file back once (its searchable columns), after the run that wrote it has
committed, so it never slows an archive run or its hot-tier deletion down; a file not indexed yet
(a run just committed, an erasure rewrote it, an archive older than the index) is simply read by
searches, as every file was before. :func:`index_pending` indexes every live file that has no
entry; the archiver calls it after each run and ``tracelake archiver reindex`` on demand.
"""
from __future__ import annotations

from collections.abc import Callable

from tracelake.archiver.delta import ArchiveLocation
from tracelake.archiver.files import ArchiveFiles
from tracelake.store.base import Store
from tracelake.store.search_text import ARCHIVE_FILE_TEXT, TOKENIZER

# Tokens of each row group of one file: row groups are found from each row's _row_number and the
# footer's row counts (ClickHouse cuts them by rows and by bytes, so the counts are read, not assumed).
_TERMS = f"""
INSERT INTO archive_terms (Token, Path, RowGroup, TraceLo, TraceHi)
SELECT Token, {{path:String}}, rg, splitByChar(',', {{los:String}})[rg + 1], splitByChar(',', {{his:String}})[rg + 1]
FROM (
    SELECT rg, arrayJoin(ts) AS Token
    FROM (SELECT toUInt32(arrayFirstIndex(e -> toUInt64(e) > _row_number, splitByChar(',', {{ends:String}})) - 1) AS rg,
                 groupUniqArrayArray(tokens({ARCHIVE_FILE_TEXT}, '{TOKENIZER}')) AS ts
          FROM {{source}} GROUP BY rg)
)
"""


def _row_groups(store: Store, location: ArchiveLocation, path: str) -> tuple[list[int], list[str], list[str]]:
    """Cumulative row ends and TraceId (min, max) of each row group, from the file's footer."""
    meta = store.query_arrow(f"SELECT row_groups FROM {location.clickhouse_function(path, 'ParquetMetadata')} "
                             "SETTINGS s3_retry_attempts=8").to_pylist()[0]
    ends, los, his, total = [], [], [], 0
    for rg in meta["row_groups"]:
        total += int(rg["num_rows"])
        ends.append(total)
        lo, hi = "", "g"  # no statistics: every hex id is within ('', 'g'): the row group is always read
        for col in rg["columns"]:
            st = col["statistics"]
            if col["path"] == "TraceId" and col["have_statistics"] and st["min"] is not None and st["max"] is not None:
                lo, hi = str(st["min"]), str(st["max"])
        los.append(lo)
        his.append(hi)
    return ends, los, his


def index_file(store: Store, location: ArchiveLocation, path: str, day: str, project: str) -> int:
    """Index one live file's row groups; returns how many (token, row group) entries it has."""
    ends, los, his = _row_groups(store, location, path)
    if ends:
        source = location.clickhouse_function(path, "Parquet")
        store.execute(_TERMS.replace("{source}", source),
                      # Lists as comma-joined strings: hex ids and counts hold no comma, and string
                      # parameters pass the same way through chdb and clickhouse-connect.
                      {"path": path, "ends": ",".join(map(str, ends)), "los": ",".join(los), "his": ",".join(his)})
    terms = store.query_arrow("SELECT count() AS n FROM archive_terms WHERE Path = {path:String}",
                              {"path": path}).column("n")[0].as_py()
    # Written last: a file counts as indexed only once all its terms are in.
    store.execute("INSERT INTO archive_term_files (Path, Day, Project, RowGroups, Terms) "
                  "VALUES ({path:String}, {day:Date}, {project:String}, {groups:UInt32}, {terms:UInt64})",
                  {"path": path, "day": day, "project": project, "groups": len(ends), "terms": terms})
    return int(terms)


def indexed_paths(store: Store) -> set[str]:
    return set(store.query_arrow("SELECT DISTINCT Path FROM archive_term_files").column("Path").to_pylist())


def index_pending(store: Store, location: ArchiveLocation, live: list[tuple[str, str, str]],
                  progress: Callable[[int, int], None] | None = None) -> int:
    """Index every file of ``live`` ((path, day, project) of the table's current files) that has no
    entry yet; returns how many were indexed. Entries of files no longer live are dropped."""
    done = indexed_paths(store)
    todo = [f for f in live if f[0] not in done]
    for i, (path, day, project) in enumerate(todo):
        index_file(store, location, path, day, project)
        if progress is not None:
            progress(i + 1, len(todo))
    gone = done - {f[0] for f in live}
    if gone:  # vacuumed or rewritten files: their terms would only cost lookups
        for table in ("archive_terms", "archive_term_files"):
            store.execute(f"DELETE FROM {table} WHERE has(splitByChar(',', {{gone:String}}), Path)", {"gone": ",".join(sorted(gone))})
    return len(todo)


def live_files(location: ArchiveLocation) -> list[tuple[str, str, str]]:
    """(path, day, project) of every file of the table's current version."""
    return ArchiveFiles(location).live()
