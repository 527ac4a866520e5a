"""Cost priced when read: token kinds per span, prices with history, model name resolution.

Nothing priced is stored. A span keeps its tokens by kind (MATERIALIZED columns, computed from the
attributes of the three conventions in the wild; old parts compute them on read) and its model;
cost is the sum over token kinds of tokens x the price in force when the span ran, looked up at
query time in two dictionaries:

* ``model_price_ranges_dict`` (RANGE_HASHED on a UInt64 key of (Project, Model)): a price key and a time -> USD per
  million tokens of each kind. Project '' holds the default prices; a project's own row (a
  negotiated rate, a self-hosted model at $0) wins over it. Each price has an effective-from time
  and holds until the next one, so a price cut today does not rewrite last month — unless the new
  row says it is effective from last month;
* ``model_aliases_dict``: a deployment or vendor name -> the priced model (Azure deployments).

A model name is matched exact first, then lower-cased without a provider prefix (``openai/``) and
a date stamp (``-2024-08-06``, ``-20241022``, ``@20240620``, ``-0613``); the project's prices
before the defaults. A span with tokens and no price matches is *unpriced*: its cost counts as 0
in sums and every view says how many spans were unpriced.

Token conventions (OTel GenAI): input tokens include cached (read and write), audio and image input
tokens; output tokens include reasoning and audio output tokens. Each kind is priced by its own
price when the price row has one, else by the plain input (or output) price.

The per-span expression is one SQL text built here and used everywhere: ``otel_traces.CostUsd``
(an ALIAS column), the archive's span view, and the per-trace ``SpanUsage`` maps of trace_summary and
the archive index (:func:`usage_cost`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from tracelake.store.archive_schema import VISIBLE_STATES


def _first(*keys: str, attrs: str = "SpanAttributes") -> str:
    args = ", ".join(f"nullIf({attrs}['{k}'], '')" for k in keys)
    return f"ifNull(coalesce({args}), '')"


def _tokens(*keys: str, attrs: str = "SpanAttributes") -> str:
    return f"toUInt64OrZero({_first(*keys, attrs=attrs)})"


# Token kinds beyond input/output, by attribute (OTel GenAI, its older names, OpenInference, OpenLLMetry).
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "CacheReadTokens": ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
                        "llm.token_count.prompt_details.cache_read", "llm.usage.cache_read_input_tokens"),
    "CacheWriteTokens": ("gen_ai.usage.cache_write.input_tokens", "gen_ai.usage.cache_creation.input_tokens",
                         "gen_ai.usage.cache_creation_input_tokens", "llm.token_count.prompt_details.cache_write",
                         "llm.usage.cache_creation_input_tokens"),
    "ReasoningTokens": ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens",
                        "llm.token_count.completion_details.reasoning"),
    "AudioInputTokens": ("gen_ai.usage.audio.input_tokens", "llm.token_count.prompt_details.audio"),
    "AudioOutputTokens": ("gen_ai.usage.audio.output_tokens", "llm.token_count.completion_details.audio"),
    "ImageInputTokens": ("gen_ai.usage.image.input_tokens",),
}
KINDS = tuple(KIND_KEYS)


def kind_expr(kind: str, attrs: str = "SpanAttributes") -> str:
    return _tokens(*KIND_KEYS[kind], attrs=attrs)


# A cost the instrumentation reported (OpenInference llm.cost.total) wins over the price table; -1: none.
REPORTED_COST = "toFloat64OrDefault(SpanAttributes['llm.cost.total'], -1.)"

PRICES_DICT = "'{database}.model_price_ranges_dict'"
ALIASES_DICT = "'{database}.model_aliases_dict'"
# Prices of each kind, in the dictionary's attribute order (tuple positions in PRICE_TUPLE).
PRICE_COLUMNS = ("InputPerMTok", "OutputPerMTok", "CacheReadPerMTok", "CacheWritePerMTok", "ReasoningPerMTok",
                 "AudioInputPerMTok", "AudioOutputPerMTok", "ImageInputPerMTok")
# A kind's price falls back on the plain input or output price when the row has none.
PRICE_FALLBACK = {"CacheReadPerMTok": "InputPerMTok", "CacheWritePerMTok": "InputPerMTok",
                  "ReasoningPerMTok": "OutputPerMTok", "AudioInputPerMTok": "InputPerMTok",
                  "AudioOutputPerMTok": "OutputPerMTok", "ImageInputPerMTok": "InputPerMTok"}
# The date stamps vendors append to a model name (gpt-4o-2024-08-06, claude-3-5-sonnet-20241022,
# claude-3-5-sonnet@20240620, gpt-4-0613); no backslashes: the text goes through several quotings.
NO_PRICES = "(0., 0., 0., 0., 0., 0., 0., 0.)"
DATE_STAMP = "[-@]([0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{8}|[01][0-9][0-3][0-9])$"


def aliased(model: str) -> str:
    return f"dictGetOrDefault({ALIASES_DICT}, 'Model', tuple({model}), {model})"


def base_name(model: str) -> str:
    """The model name without provider prefix and date stamp, lower-cased."""
    return f"replaceRegexpOne(replaceRegexpOne(lower({model}), '^.*/', ''), '{DATE_STAMP}', '')"


NAMES_DICT = "'{database}.model_names_dict'"


def name_key(project: str, model: str) -> str:
    return f"cityHash64({project}, {model})"


def price_key(name: str, default: str) -> str:
    """The UInt64 key of a span's price from its name's key (:func:`name_key`): resolved once per
    name seen, by ``model_names_dict`` (:data:`NAMES_DICT_DDL`: alias, exact, base name; project
    before default). A name seen since the dictionary's last reload (5 s at most, or a price
    change) is looked up by ``default``, its default base name's key, meanwhile (a dated or
    prefixed name resolves at once; an alias or a project's price then). UInt64 keys because a
    UInt64 lookup costs a fraction of a (String, String) one."""
    return f"dictGetOrDefault({NAMES_DICT}, 'PriceKey', {name}, {default})"


def price_model(project: str, model: str) -> str:
    """The priced model's name (what the Prices page calls it)."""
    return f"dictGetOrDefault({NAMES_DICT}, 'PriceModel', {name_key(project, model)}, {base_name(model)})"


@dataclass(frozen=True)
class Usage:
    """SQL expressions of one span's usage: where it ran, when, and its tokens by kind."""

    name: str  # name_key(project, model): UInt64
    default: str  # name_key('', base name): UInt64
    at: str  # a DateTime
    input: str
    output: str
    cache_read: str
    cache_write: str
    reasoning: str
    audio_input: str
    audio_output: str
    image_input: str
    reported: str  # reported cost in USD, < 0 when none


def span_cost(u: Usage) -> tuple[str, str]:
    """(cost in USD, 1 if unpriced) of one span's usage, as SQL: two UInt64 dictionary lookups (the
    name's price key, the prices in force as one array), a dot product with the tokens by kind."""
    key = price_key(u.name, u.default)
    names = ", ".join(f"'{c}'" for c in PRICE_COLUMNS)
    prices = f"dictGetOrDefault({PRICES_DICT}, ({names}), {key}, {u.at}, {NO_PRICES})"
    plain_in = f"({u.input} - least({u.input}, {u.cache_read} + {u.cache_write} + {u.audio_input} + {u.image_input}))"
    plain_out = f"({u.output} - least({u.output}, {u.reasoning} + {u.audio_output}))"
    kinds = (plain_in, plain_out, u.cache_read, u.cache_write, u.reasoning, u.audio_input, u.audio_output, u.image_input)
    amount = " + ".join(f"{t} * tupleElement({prices}, {i})" for i, t in enumerate(kinds, 1))
    # Most spans carry plain input and output only: two prices looked up, not eight.
    two = f"dictGetOrDefault({PRICES_DICT}, ('InputPerMTok', 'OutputPerMTok'), {key}, {u.at}, (0., 0.))"
    plain = f"{u.input} * tupleElement({two}, 1) + {u.output} * tupleElement({two}, 2)"
    extra = " + ".join((u.cache_read, u.cache_write, u.reasoning, u.audio_input, u.audio_output, u.image_input))
    cost = (f"multiIf({u.reported} >= 0, {u.reported}, {u.input} + {u.output} = 0, 0., "
            f"{extra} = 0, ({plain}) / 1e6, ({amount}) / 1e6)")
    unpriced = f"toUInt8({u.reported} < 0 AND {u.input} + {u.output} > 0 AND NOT dictHas({PRICES_DICT}, {key}, {u.at}))"
    return cost, unpriced


# A span of otel_traces (and of the archive view, whose columns have the same names).
SPAN_NAME_KEY = name_key("toString(Project)", "toString(LlmModel)")
SPAN_DEFAULT_KEY = name_key("''", base_name("toString(LlmModel)"))
SPAN_USAGE = Usage(SPAN_NAME_KEY, SPAN_DEFAULT_KEY, "toDateTime(Timestamp)", "InputTokens", "OutputTokens",
                   "CacheReadTokens", "CacheWriteTokens", "ReasoningTokens", "AudioInputTokens", "AudioOutputTokens",
                   "ImageInputTokens", "ReportedCostUsd")
SPAN_COST, SPAN_UNPRICED = span_cost(SPAN_USAGE)
PRICE_MODEL = price_model("toString(Project)", "toString(LlmModel)")

# One span's usage as kept per trace (trace_summary.SpanUsage, keyed by SpanId; the archive index's
# SpanUsage array): enough to price it later. Numbers only (the name as its keys): maxMap over it and
# reading it cost a fraction of what strings would.
USAGE_TUPLE_TYPE = ("Tuple(At DateTime, NameKey UInt64, DefaultKey UInt64, Input UInt64, Output UInt64, CacheRead UInt64, "
                    "CacheWrite UInt64, Reasoning UInt64, AudioInput UInt64, AudioOutput UInt64, ImageInput UInt64, "
                    "Reported Float64)")
USAGE_TUPLE = (f"(toDateTime(Timestamp), {SPAN_NAME_KEY}, {SPAN_DEFAULT_KEY}, InputTokens, OutputTokens, "
               "CacheReadTokens, CacheWriteTokens, ReasoningTokens, AudioInputTokens, AudioOutputTokens, "
               "ImageInputTokens, ReportedCostUsd)")
HAS_USAGE = "(InputTokens + OutputTokens > 0 OR ReportedCostUsd >= 0)"
_T = [f"tupleElement(u, {i})" for i in range(1, 13)]
_U = Usage(_T[1], _T[2], _T[0], *_T[3:])  # the tuple starts (At, NameKey, DefaultKey): Usage's order is (name, default, at)
_U_COST, _U_UNPRICED = span_cost(_U)


def usage_cost(array: str) -> str:
    """Total cost of an array of usage tuples."""
    return f"arraySum(u -> {_U_COST}, {array})"


def usage_unpriced(array: str) -> str:
    """How many usage tuples of the array have tokens and no price."""
    return f"arrayCount(u -> {_U_UNPRICED} = 1, {array})"


def at_read(sql: str) -> str:
    """``sql`` naming the dictionaries of the database a query runs in, for SQL built without a
    store at hand (the trace aggregates of :mod:`tracelake.query.compile`)."""
    return re.sub(r"'\{database\}\.(\w+_dict)'", r"concat(currentDatabase(), '.\1')", sql)


def usage_tokens(array: str, position: int) -> str:
    return f"arraySum(u -> tupleElement(u, {position}), {array})"


# Positions of the token kinds in the usage tuple (for breakdowns).
USAGE_POS = {"InputTokens": 4, "OutputTokens": 5, "CacheReadTokens": 6, "CacheWriteTokens": 7, "ReasoningTokens": 8,
             "AudioInputTokens": 9, "AudioOutputTokens": 10, "ImageInputTokens": 11}


# --- DDL (migration 50) ---------------------------------------------------------------------------
# Every edit is a row (history kept); the row of a (Project, Model, EffectiveFrom) changed last wins,
# and Deleted = 1 takes that price out. ChangedBy names who made it (the audit log has the rest).
PRICE_HISTORY = """
CREATE TABLE IF NOT EXISTS model_price_history (
    Project String,
    Model String,
    EffectiveFrom DateTime,
    InputPerMTok Float64,
    OutputPerMTok Float64,
    CacheReadPerMTok Nullable(Float64),
    CacheWritePerMTok Nullable(Float64),
    ReasoningPerMTok Nullable(Float64),
    AudioInputPerMTok Nullable(Float64),
    AudioOutputPerMTok Nullable(Float64),
    ImageInputPerMTok Nullable(Float64),
    Deleted UInt8 DEFAULT 0,
    Source LowCardinality(String),
    ChangedBy String DEFAULT '',
    ChangedAt DateTime64(3) DEFAULT now64(3)
) ENGINE = MergeTree
ORDER BY (Project, Model, EffectiveFrom, ChangedAt)
"""

# Today's prices had no dates: they become prices in force since the beginning of time.
PRICE_HISTORY_FROM_OLD = """
INSERT INTO model_price_history (Project, Model, EffectiveFrom, InputPerMTok, OutputPerMTok, Source, ChangedAt)
SELECT '', Model, toDateTime(0), argMax(InputPerMTok, UpdatedAt), argMax(OutputPerMTok, UpdatedAt),
       argMax(Source, UpdatedAt), max(UpdatedAt)
FROM model_prices GROUP BY Model
"""

# The rows in force: the last change of each (Project, Model, EffectiveFrom), unless deleted.
CURRENT_PRICE_ROWS = (
    "SELECT Project, Model, EffectiveFrom, "
    + ", ".join(f"argMax({c}, ChangedAt) AS {c}" for c in PRICE_COLUMNS)
    + ", argMax(Source, ChangedAt) AS Source, argMax(ChangedBy, ChangedAt) AS ChangedBy, max(ChangedAt) AS LastChange "
    "FROM {database}.model_price_history GROUP BY Project, Model, EffectiveFrom HAVING argMax(Deleted, ChangedAt) = 0")

_ENDS = ("ifNull(leadInFrame(toNullable(EffectiveFrom)) OVER (PARTITION BY Project, Model ORDER BY EffectiveFrom "
         "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) - 1, toDateTime(4294967295))")
# The prices of each kind in PRICE_COLUMNS' order, a kind without its own price at the plain one.
_DICT_VALUES = ", ".join(f"ifNull({c}, {PRICE_FALLBACK[c]}) AS {c}_" if c in PRICE_FALLBACK else c for c in PRICE_COLUMNS)
# A price holds from its EffectiveFrom to the second before the next one of the same key.
PRICE_DICT = f"""
CREATE DICTIONARY IF NOT EXISTS {{database}}.model_price_ranges_dict (
    PriceKey UInt64,
    EffectiveFrom DateTime,
    EffectiveTo DateTime,
    Project String,
    Model String,
    {", ".join(f"{c} Float64" for c in PRICE_COLUMNS)}
) PRIMARY KEY PriceKey
SOURCE(CLICKHOUSE(QUERY 'SELECT cityHash64(Project, Model) AS PriceKey, EffectiveFrom, {_ENDS} AS EffectiveTo, Project, Model, {_DICT_VALUES} FROM ({CURRENT_PRICE_ROWS})'))
LAYOUT(RANGE_HASHED())
RANGE(MIN EffectiveFrom MAX EffectiveTo)
LIFETIME(MIN 30 MAX 60)
"""

ALIASES = """
CREATE TABLE IF NOT EXISTS model_aliases (
    Alias String,
    Model String,
    Deleted UInt8 DEFAULT 0,
    ChangedBy String DEFAULT '',
    ChangedAt DateTime64(3) DEFAULT now64(3)
) ENGINE = MergeTree
ORDER BY (Alias, ChangedAt)
"""

ALIASES_DICT_DDL = """
CREATE DICTIONARY IF NOT EXISTS {database}.model_aliases_dict (
    Alias String,
    Model String
) PRIMARY KEY Alias
SOURCE(CLICKHOUSE(QUERY 'SELECT Alias, argMax(Model, ChangedAt) AS Model FROM {database}.model_aliases GROUP BY Alias HAVING argMax(Deleted, ChangedAt) = 0'))
LAYOUT(COMPLEX_KEY_HASHED())
LIFETIME(MIN 30 MAX 60)
"""

# Every (project, model name) spans arrived with: a few rows, so names are resolved per name, not per span.
NAMES_SEEN = """
CREATE TABLE IF NOT EXISTS model_names_seen (
    Project String,
    Model String
) ENGINE = ReplacingMergeTree
ORDER BY (Project, Model)
"""
NAMES_SEEN_MV = """
CREATE MATERIALIZED VIEW IF NOT EXISTS model_names_seen_mv TO model_names_seen AS
SELECT DISTINCT toString(Project) AS Project, toString(LlmModel) AS Model FROM otel_traces WHERE LlmModel != ''
"""
NAMES_SEEN_BACKFILL = ("INSERT INTO model_names_seen SELECT DISTINCT toString(Project), toString(LlmModel) "
                       "FROM otel_traces WHERE LlmModel != ''")

# Each name seen -> the key of its price: the alias's target or the name, exact first, then its base
# name; the project's prices before the defaults. No price anywhere: the default base name (which
# then has no price: the span is unpriced).
_RESOLVE = (
    "SELECT cityHash64(Project, Model) AS NameKey, cityHash64(PriceProject, PriceModel) AS PriceKey, PriceProject, PriceModel "
    "FROM (SELECT Project, Model, tupleElement(k, 1) AS PriceProject, "
    "if(tupleElement(k, 2) = '', b, tupleElement(k, 2)) AS PriceModel "
    "FROM (SELECT Project, Model, " + aliased("Model") + " AS a, " + base_name("a") + " AS b, "
    "arrayFirst(c -> has(priced, c), [(Project, a), (Project, b), ('', a), ('', b)]) AS k "
    "FROM {database}.model_names_seen FINAL "
    "CROSS JOIN (SELECT groupUniqArray((Project, Model)) AS priced FROM (" + CURRENT_PRICE_ROWS + ")) AS p))")


def _quoted(sql: str) -> str:
    return sql.replace("\\", "\\\\").replace("'", "\\'")


NAMES_DICT_DDL = f"""
CREATE DICTIONARY IF NOT EXISTS {{database}}.model_names_dict (
    NameKey UInt64,
    PriceKey UInt64,
    PriceProject String,
    PriceModel String
) PRIMARY KEY NameKey
SOURCE(CLICKHOUSE(QUERY '{_quoted(_RESOLVE)}'))
LAYOUT(HASHED())
LIFETIME(MIN 1 MAX 5)
"""

SPAN_KIND_COLUMNS = tuple(f"ALTER TABLE otel_traces ADD COLUMN IF NOT EXISTS {k} UInt64 MATERIALIZED {kind_expr(k)}"
                          for k in KINDS) + (
    f"ALTER TABLE otel_traces ADD COLUMN IF NOT EXISTS ReportedCostUsd Float64 MATERIALIZED {REPORTED_COST}",)

# The summary's view wrote insert-time cost; it is replaced by one writing usage (below).
DROP_SUMMARY_MV = "DROP VIEW IF EXISTS trace_summary_mv"

SPAN_COST_COLUMNS = (
    f"ALTER TABLE otel_traces MODIFY COLUMN CostUsd Float64 ALIAS {SPAN_COST}",
    f"ALTER TABLE otel_traces MODIFY COLUMN PriceModel String ALIAS {PRICE_MODEL}",
    f"ALTER TABLE otel_traces MODIFY COLUMN Unpriced UInt8 ALIAS {SPAN_UNPRICED}",
)


def _per_span(value: str, value_type: str) -> str:
    return f"Map(String, {value_type}) ALIAS mapApply((k, u) -> (k, {value}), SpanUsage)"


# trace_summary keeps each LLM span's usage keyed by SpanId (maxMap: a retried span counts once);
# Cost, the per-span token kinds and Unpriced are computed from it when read, so the readers'
# `maxMap(Cost)` stays as it was and prices at query time.
SUMMARY_USAGE = (
    f"ALTER TABLE trace_summary ADD COLUMN IF NOT EXISTS SpanUsage SimpleAggregateFunction(maxMap, Map(String, {USAGE_TUPLE_TYPE}))",
    f"ALTER TABLE trace_summary MODIFY COLUMN Cost {_per_span(_U_COST, 'Float64')}",
    f"ALTER TABLE trace_summary MODIFY COLUMN Unpriced {_per_span(_U_UNPRICED, 'UInt8')}",
    *(f"ALTER TABLE trace_summary MODIFY COLUMN {k} {_per_span(f'tupleElement(u, {USAGE_POS[k]})', 'UInt64')}"
      for k in ("CacheReadTokens", "CacheWriteTokens", "ReasoningTokens")),
)

def _qualified(expr: str) -> str:
    """Token columns named through the table: the select's aliases InputTokens/OutputTokens (maps) shadow them."""
    return re.sub(r"\b(InputTokens|OutputTokens)\b", r"otel_traces.\1", expr)


SUMMARY_SELECT = f"""
SELECT
    Project,
    TraceId,
    min(Timestamp) AS Start,
    max(Timestamp + toIntervalNanosecond(Duration)) AS End,
    max(if(ParentSpanId = '', SpanName, '')) AS RootName,
    max(if(ParentSpanId = '', ServiceName, '')) AS RootService,
    argMinState(SpanName, Timestamp) AS FirstSpanName,
    uniqState(SpanId) AS SpanCount,
    groupUniqArrayIf(SpanId, StatusCode IN ('Error', 'STATUS_CODE_ERROR')) AS ErrorSpans,
    groupUniqArray(toString(ServiceName)) AS Services,
    groupUniqArrayIf(toString(LlmModel), LlmModel != '') AS Models,
    maxMap(if(InputTokens > 0, map(SpanId, InputTokens), map())) AS InputTokens,
    maxMap(if(OutputTokens > 0, map(SpanId, OutputTokens), map())) AS OutputTokens,
    maxMap(if({_qualified(HAS_USAGE)}, map(SpanId, CAST({_qualified(USAGE_TUPLE)}, '{USAGE_TUPLE_TYPE}')), map())) AS SpanUsage,
    max(SessionId) AS SessionId,
    max(UserId) AS UserId
FROM otel_traces
WHERE TraceId != ''
GROUP BY Project, TraceId
"""

SUMMARY_MV = f"CREATE MATERIALIZED VIEW IF NOT EXISTS trace_summary_mv TO trace_summary AS {SUMMARY_SELECT}"

# Traces stored before: their usage is written once more from their spans. Every aggregate of the
# summary is idempotent (min, max, sets, maps keyed by SpanId), so the extra partial rows change
# nothing else.
SUMMARY_BACKFILL = ("INSERT INTO trace_summary (Project, TraceId, Start, End, RootName, RootService, FirstSpanName, "
                    "SpanCount, ErrorSpans, Services, Models, InputTokens, OutputTokens, SpanUsage, SessionId, UserId) "
                    + SUMMARY_SELECT)

# The archive index: each archived trace's usage, priced when read through archived_traces.
# Rows archived before have no usage and keep the cost they were archived with.
ARCHIVE_USAGE = f"ALTER TABLE trace_summary_archive ADD COLUMN IF NOT EXISTS SpanUsage Array({USAGE_TUPLE_TYPE})"
def priced_index(source: str) -> str:
    """Rows of the archive index ``source`` with their usage priced, as ``archived_traces`` shows
    them (readers of every run's rows, such as erasure, price them the same way)."""
    return (f"SELECT * REPLACE (if(empty(SpanUsage), CostUsd, {usage_cost('SpanUsage')}) AS CostUsd),\n"
            f"       {usage_unpriced('SpanUsage')} AS Unpriced,\n"
            f"       {usage_tokens('SpanUsage', USAGE_POS['CacheReadTokens'])} AS CacheReadTokens,\n"
            f"       {usage_tokens('SpanUsage', USAGE_POS['CacheWriteTokens'])} AS CacheWriteTokens,\n"
            f"       {usage_tokens('SpanUsage', USAGE_POS['ReasoningTokens'])} AS ReasoningTokens\n"
            f"FROM {source}")


ARCHIVED_TRACES_PRICED = f"""
CREATE OR REPLACE VIEW archived_traces AS
{priced_index('trace_summary_archive')}
WHERE RunId IN (SELECT RunId FROM archive_run_state WHERE State IN ({', '.join(repr(v) for v in VISIBLE_STATES)}))
  AND TraceId NOT IN (SELECT TraceId FROM restore_flipped)
"""

# Migration 51 (from migration 50 as merged, tracelake.store.cost_schema_50): names resolved once
# per name seen, UInt64 price keys, usage kept as numbers in new columns (SpanUsage), written again
# for every stored trace; then what 50 made and nothing reads any more goes.
DROP_50 = ("ALTER TABLE trace_summary DROP COLUMN IF EXISTS Usage",
           "ALTER TABLE trace_summary_archive DROP COLUMN IF EXISTS Usage",
           "DROP DICTIONARY IF EXISTS {database}.model_price_history_dict")

STATEMENTS: tuple[str, ...] = (
    NAMES_SEEN, NAMES_SEEN_MV, NAMES_SEEN_BACKFILL, NAMES_DICT_DDL, PRICE_DICT, DROP_SUMMARY_MV, *SPAN_COST_COLUMNS,
    *SUMMARY_USAGE, SUMMARY_MV, SUMMARY_BACKFILL, ARCHIVE_USAGE, ARCHIVED_TRACES_PRICED, *DROP_50,
)
