"""What free text searches: a span's *searchable text*, one lowercased string per span, and the text
index over it (docs/search.md).

The searchable text is what people read and look for, not every attribute value: the span name, its
status message, message contents, prompts and completions in the three attribute conventions (OTel
GenAI, OpenInference, OpenLLMetry), tool names, arguments and results, retrieved documents, and every
event attribute value (exception message and stack trace, GenAI content events). Ids, URLs and numbers
in other attributes stay reachable through ``attr.<key>:value``. Indexing every attribute value cost
+25 % bytes per span against +13 % for this selection (measured, docs/search.md "Figures").

The same text is built three ways, one per place spans live: over ``otel_traces`` (the form the text
index is defined on: a query must repeat the index's expression exactly for ClickHouse to use it, and
a lambda anywhere in it stops the match, hence ``mapExtractKeyLike`` and the Nested subcolumn), over
the archive view's columns, and over the archive's Parquet files (events as a list of structs).
JSON's ``\\n``, ``\\r`` and ``\\t`` escapes become spaces, so the first word of a paragraph of a
JSON-encoded message is a word of its own.
"""
from __future__ import annotations

# Attribute keys whose values are searchable text; LIKE patterns (``%`` = any run; ``_`` also
# matches any one character, harmless here).
SEARCH_KEYS: tuple[str, ...] = (
    # OTel GenAI (current and the older indexed prompt/completion attributes)
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
    "gen_ai.tool.name", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result",
    "gen_ai.prompt%", "gen_ai.completion%",
    # OpenInference
    "llm.input_messages.%", "llm.output_messages.%", "llm.prompts%", "input.value", "output.value",
    "tool.name", "tool.parameters", "retrieval.documents.%",
    # OpenLLMetry
    "traceloop.entity.input", "traceloop.entity.output",
    # exceptions recorded as span attributes
    "exception.message", "exception.stacktrace", "exception.type",
)

TOKENIZER = "splitByNonAlpha"


def _attribute_values(attrs: str) -> str:
    """Array(String) of the searchable attribute values of ``attrs`` (a Map column)."""
    # mapExtractKeyLike even for a single key: ClickHouse rewrites ``attrs['k']`` to a subcolumn in
    # queries, and the query's expression would then no longer be the index's.
    return f"arrayConcat({', '.join(f'mapValues(mapExtractKeyLike({attrs}, {chr(39)}{k}{chr(39)}))' for k in SEARCH_KEYS)})"


def _unescape(expr: str) -> str:
    return f"replaceAll(replaceAll(replaceAll({expr}, '\\\\n', ' '), '\\\\r', ' '), '\\\\t', ' ')"


def searchable_text(event_values: str, attrs: str = "SpanAttributes") -> str:
    """The lowercased searchable text of a span; ``event_values`` is an Array(String) of its event
    attribute values over the columns at hand."""
    joined = (f"concat(SpanName, ' ', StatusMessage, ' ', arrayStringConcat({_attribute_values(attrs)}, ' '), ' ', "
              f"arrayStringConcat({event_values}, ' '))")
    return f"lowerUTF8({_unescape(joined)})"


# otel_traces: the text index's expression (no lambda: see the module's docstring).
HOT_TEXT = searchable_text("arrayFlatten(Events.Attributes.values)")
# The archive view (otel_traces_archive) maps events to otel_traces' Nested names.
ARCHIVE_VIEW_TEXT = searchable_text("arrayFlatten(arrayMap(m -> mapValues(m), `Events.Attributes`))")
# The archive's Parquet files: Events is a list of (TimeUnixNano, Name, Attributes).
ARCHIVE_FILE_TEXT = searchable_text("arrayFlatten(arrayMap(e -> mapValues(tupleElement(e, 'Attributes')), Events))")

# One text index per span row. Parts written before it have none; queries stay exact there (they read
# the rows) and merges build it; `tracelake archiver reindex` builds it for every part at once.
HOT_INDEX = (f"ALTER TABLE otel_traces ADD INDEX IF NOT EXISTS idx_search_text {HOT_TEXT} "
             f"TYPE text(tokenizer = '{TOKENIZER}')")
HOT_INDEX_BUILD = "ALTER TABLE otel_traces MATERIALIZE INDEX idx_search_text"

# The archive's term index (docs/search.md): for every Parquet file of the archive, which words are in
# which of its row groups, and the TraceId range of that row group (rows are sorted by TraceId, so a
# read bounded to that range reads that row group only). A file with no row in archive_term_files is
# not indexed yet: searches read it.
ARCHIVE_TERMS = """
CREATE TABLE IF NOT EXISTS archive_terms (
    Token String CODEC(ZSTD(3)),
    Path String CODEC(ZSTD(3)),
    RowGroup UInt32,
    TraceLo String CODEC(ZSTD(3)),
    TraceHi String CODEC(ZSTD(3))
) ENGINE = ReplacingMergeTree
ORDER BY (Token, Path, RowGroup)
"""

ARCHIVE_TERM_FILES = """
CREATE TABLE IF NOT EXISTS archive_term_files (
    Path String,
    Day Date,
    Project LowCardinality(String),
    RowGroups UInt32,
    Terms UInt64,
    IndexedAt DateTime64(3) DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(IndexedAt)
ORDER BY Path
"""

STATEMENTS: tuple[str, ...] = (HOT_INDEX, ARCHIVE_TERMS, ARCHIVE_TERM_FILES)
