"""Migration 60: scores (judgements on a trace or a span) and per-project score configs.

``scores`` holds every score ever set, in both tiers: a score is never archived into Parquet, so
a filter on scores is the same subquery whether the trace is hot or archived, and a score added
to an archived trace needs nothing else. Several scores of one name on one target are history;
the newest (CreatedAt, in microseconds: a plain argMax, 4x cheaper than one over a tuple) is the
current one. A delete removes the row (lightweight DELETE: history that was deleted is gone, which
is what an author deleting a mistake expects). Rows are sorted by (Project, Name, TraceId, SpanId,
ScoreId): a filter on one name reads that name's range, already grouped by target; a retried OTLP
export of the same score span merges away; the trace page finds a trace's rows by the bloom index.

``score_configs``: what an admin defines per project (a name, its type, its range or categories);
one row per change, the newest per (Project, Name) wins. ``thumbs`` (down/up) needs no config.

Scores also arrive over OTLP as spans named :data:`SCORE_SPAN` (docs/scores.md): the store's OTLP
insert leaves them out of ``otel_traces`` and routes them here (:func:`score_columns`), through
the collector's spool like any span.
"""
from __future__ import annotations

SCORE_SPAN = "tracelake.score"
ATTR = "tracelake.score."  # attribute prefix of a score span (name, value, comment, span_id, ...)
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$"  # a score name must be writable as score.<name>
SOURCES = ("human", "app", "code")
DATA_TYPES = ("numeric", "boolean", "categorical")

SCORES = """
CREATE TABLE IF NOT EXISTS scores (
    Project LowCardinality(String),
    TraceId String,
    SpanId String,
    Name LowCardinality(String),
    Value Float64,
    StringValue String,
    DataType LowCardinality(String),
    Comment String,
    Source LowCardinality(String),
    Author String,
    AuthorVersion String,
    ScoreId String,
    CreatedAt DateTime64(6),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = ReplacingMergeTree
ORDER BY (Project, Name, TraceId, SpanId, ScoreId)
SETTINGS non_replicated_deduplication_window = 10000
"""

SCORE_CONFIGS = """
CREATE TABLE IF NOT EXISTS score_configs (
    Project LowCardinality(String),
    Name String,
    DataType LowCardinality(String),
    MinValue Float64,
    MaxValue Float64,
    Categories Array(String),
    Description String,
    Active UInt8,
    Actor String,
    Version UInt64
) ENGINE = ReplacingMergeTree(Version)
ORDER BY (Project, Name)
"""

STATEMENTS: tuple[str, ...] = (SCORES, SCORE_CONFIGS)

# The columns an insert fills, in order (CreatedAt last).
COLUMNS = ("Project", "TraceId", "SpanId", "Name", "Value", "StringValue", "DataType", "Comment", "Source",
           "Author", "AuthorVersion", "ScoreId", "CreatedAt")

# A value's number: numbers as they are, true/up 1, false/down 0 (so an average of thumbs is the
# share of thumbs up), anything else (a category) NaN.
NUMBER_OF_TEXT = ("multiIf(isNotNull(toFloat64OrNull({v})), toFloat64OrZero({v}), lower({v}) IN ('true', 'up'), 1., "
                  "lower({v}) IN ('false', 'down'), 0., nan)")


def score_columns(project: str) -> list[str]:
    """SELECT expressions of :data:`COLUMNS` over a score span's row (``SpanAttributes``,
    ``ResourceAttributes``, ``SpanTrace``, ``SpanSelf``, ``Start``); ``project`` is the spans'
    Project expression, so a score lands in the project its ingest key stamps."""
    def a(key: str) -> str:
        return f"SpanAttributes['{ATTR}{key}']"

    value = a("value")
    numeric = f"isNotNull(toFloat64OrNull({value}))"
    boolean = f"lower({value}) IN ('true', 'false')"
    data_type = f"if({a('data_type')} IN {DATA_TYPES}, {a('data_type')}, multiIf({numeric}, 'numeric', {boolean}, 'boolean', 'categorical'))"
    source = f"if({a('source')} IN {SOURCES}, {a('source')}, 'code')"
    return [project, f"lower(if({a('trace_id')} != '', {a('trace_id')}, SpanTrace))", f"lower({a('span_id')})",
            a("name"), NUMBER_OF_TEXT.format(v=value), f"if({numeric}, '', lower(substring({value}, 1, 200)))",
            data_type, f"substring({a('comment')}, 1, 5000)", source, f"substring({a('author')}, 1, 200)",
            f"substring({a('author_version')}, 1, 100)", "SpanSelf", "toDateTime64(Start, 6)"]


def score_validity() -> str:
    """What a score span must hold to become a score (anything else is dropped, as a span without
    a trace id is): a name as :data:`NAME_PATTERN`, a value, a 32-hex trace id, a span id empty or 16 hex."""
    return (f"match(Name, '{NAME_PATTERN}') AND (NOT isNaN(Value) OR StringValue != '') "
            "AND match(TraceId, '^[0-9a-f]{32}$') AND match(SpanId, '^([0-9a-f]{16})?$')")
