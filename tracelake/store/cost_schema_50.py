"""Migration 50 as it was merged (frozen: a released migration never changes). What is current is
:mod:`tracelake.store.cost_schema`; migration 51 moves a store from this state to it.

Cost priced when read: token kinds per span, prices with history, model name resolution.

Nothing priced is stored. A span keeps its tokens by kind (MATERIALIZED columns, computed from the
attributes of the three conventions in the wild; old parts compute them on read) and its model;
cost is the sum over token kinds of tokens x the price in force when the span ran, looked up at
query time in two dictionaries:

* ``model_price_history_dict`` (COMPLEX_KEY_RANGE_HASHED): (Project, Model) and a time -> USD per
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
(an ALIAS column), the archive's span view, and the per-trace ``Usage`` maps of trace_summary and
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

PRICES_DICT = "'{database}.model_price_history_dict'"
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
DATE_STAMP = "[-@]([0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{8}|[01][0-9][0-3][0-9])$"


def aliased(model: str) -> str:
    return f"dictGetOrDefault({ALIASES_DICT}, 'Model', tuple({model}), {model})"


def base_name(model: str) -> str:
    """The model name without provider prefix and date stamp, lower-cased."""
    return f"replaceRegexpOne(replaceRegexpOne(lower({model}), '^.*/', ''), '{DATE_STAMP}', '')"


def price_key(project: str, model: str, at: str) -> str:
    """The (project, model) key of the price in force at ``at``: project before default, exact name
    before base name. When nothing matches, the default base name (which then has no price)."""
    a = aliased(model)
    b = base_name(a)
    has = lambda p, m: f"dictHas({PRICES_DICT}, ({p}, {m}), {at})"  # noqa: E731
    return (f"multiIf({has(project, a)}, ({project}, {a}), {has(project, b)}, ({project}, {b}), "
            f"{has(repr(''), a)}, ('', {a}), ('', {b}))")


@dataclass(frozen=True)
class Usage:
    """SQL expressions of one span's usage: where it ran, when, and its tokens by kind."""

    project: str
    model: str
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
    """(cost in USD, 1 if unpriced) of one span's usage, as SQL."""
    key = price_key(u.project, u.model, u.at)
    priced = f"dictHas({PRICES_DICT}, {key}, {u.at})"
    names = ", ".join(f"'{c}'" for c in PRICE_COLUMNS)
    prices = f"dictGet({PRICES_DICT}, ({names}), {key}, {u.at})"
    pr = lambda i: f"tupleElement({prices}, {i})"  # noqa: E731
    plain_in = f"({u.input} - least({u.input}, {u.cache_read} + {u.cache_write} + {u.audio_input} + {u.image_input}))"
    plain_out = f"({u.output} - least({u.output}, {u.reasoning} + {u.audio_output}))"
    amount = (f"({plain_in} * {pr(1)} + {plain_out} * {pr(2)} + {u.cache_read} * {pr(3)} + {u.cache_write} * {pr(4)} "
              f"+ {u.reasoning} * {pr(5)} + {u.audio_input} * {pr(6)} + {u.audio_output} * {pr(7)} "
              f"+ {u.image_input} * {pr(8)}) / 1e6")
    tokens = f"{u.input} + {u.output} > 0"
    cost = f"if({u.reported} >= 0, {u.reported}, if({tokens} AND {priced}, {amount}, 0.))"
    unpriced = f"toUInt8({u.reported} < 0 AND {tokens} AND NOT {priced})"
    return cost, unpriced


# A span of otel_traces (and of the archive view, whose columns have the same names).
SPAN_USAGE = Usage("toString(Project)", "toString(LlmModel)", "toDateTime(Timestamp)", "InputTokens", "OutputTokens",
                   "CacheReadTokens", "CacheWriteTokens", "ReasoningTokens", "AudioInputTokens", "AudioOutputTokens",
                   "ImageInputTokens", "ReportedCostUsd")
SPAN_COST, SPAN_UNPRICED = span_cost(SPAN_USAGE)
PRICE_MODEL = f"tupleElement({price_key(SPAN_USAGE.project, SPAN_USAGE.model, SPAN_USAGE.at)}, 2)"

# One span's usage as kept per trace (trace_summary.Usage, keyed by SpanId; the archive index's
# Usage array): enough to price it later.
USAGE_TUPLE_TYPE = ("Tuple(At DateTime, Project String, Model String, Input UInt64, Output UInt64, CacheRead UInt64, "
                    "CacheWrite UInt64, Reasoning UInt64, AudioInput UInt64, AudioOutput UInt64, ImageInput UInt64, "
                    "Reported Float64)")
USAGE_TUPLE = ("(toDateTime(Timestamp), toString(Project), toString(LlmModel), InputTokens, OutputTokens, "
               "CacheReadTokens, CacheWriteTokens, ReasoningTokens, AudioInputTokens, AudioOutputTokens, "
               "ImageInputTokens, ReportedCostUsd)")
HAS_USAGE = "(InputTokens + OutputTokens > 0 OR ReportedCostUsd >= 0)"
_T = [f"tupleElement(u, {i})" for i in range(1, 13)]
_U = Usage(_T[1], _T[2], _T[0], *_T[3:])  # the tuple starts (At, Project, Model): Usage's order is (project, model, at)
_U_COST, _U_UNPRICED = span_cost(_U)


def usage_cost(array: str) -> str:
    """Total cost of an array of usage tuples."""
    return f"arraySum(u -> {_U_COST}, {array})"


def usage_unpriced(array: str) -> str:
    """How many usage tuples of the array have tokens and no price."""
    return f"arrayCount(u -> {_U_UNPRICED} = 1, {array})"


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
_DICT_VALUES = ", ".join(f"ifNull({c}, {PRICE_FALLBACK[c]}) AS {c}" if c in PRICE_FALLBACK else c for c in PRICE_COLUMNS)
# A price holds from its EffectiveFrom to the second before the next one of the same key.
PRICE_DICT = f"""
CREATE DICTIONARY IF NOT EXISTS {{database}}.model_price_history_dict (
    Project String,
    Model String,
    EffectiveFrom DateTime,
    EffectiveTo DateTime,
    {", ".join(f"{c} Float64" for c in PRICE_COLUMNS)}
) PRIMARY KEY Project, Model
SOURCE(CLICKHOUSE(QUERY 'SELECT Project, Model, EffectiveFrom, {_ENDS} AS EffectiveTo, {_DICT_VALUES} FROM ({CURRENT_PRICE_ROWS})'))
LAYOUT(COMPLEX_KEY_RANGE_HASHED())
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

SPAN_KIND_COLUMNS = tuple(f"ALTER TABLE otel_traces ADD COLUMN IF NOT EXISTS {k} UInt64 MATERIALIZED {kind_expr(k)}"
                          for k in KINDS) + (
    f"ALTER TABLE otel_traces ADD COLUMN IF NOT EXISTS ReportedCostUsd Float64 MATERIALIZED {REPORTED_COST}",)

# The summary's view wrote insert-time cost; it is replaced by one writing usage (below).
DROP_SUMMARY_MV = "DROP VIEW IF EXISTS trace_summary_mv"

SPAN_COST_COLUMNS = (
    f"ALTER TABLE otel_traces MODIFY COLUMN CostUsd Float64 ALIAS {SPAN_COST}",
    f"ALTER TABLE otel_traces MODIFY COLUMN PriceModel String ALIAS {PRICE_MODEL}",
    f"ALTER TABLE otel_traces ADD COLUMN IF NOT EXISTS Unpriced UInt8 ALIAS {SPAN_UNPRICED}",
)


def _per_span(value: str, value_type: str) -> str:
    return f"Map(String, {value_type}) ALIAS mapApply((k, u) -> (k, {value}), Usage)"


# trace_summary keeps each LLM span's usage keyed by SpanId (maxMap: a retried span counts once);
# Cost, the per-span token kinds and Unpriced are computed from it when read, so the readers'
# `maxMap(Cost)` stays as it was and prices at query time.
SUMMARY_USAGE = (
    f"ALTER TABLE trace_summary ADD COLUMN IF NOT EXISTS Usage SimpleAggregateFunction(maxMap, Map(String, {USAGE_TUPLE_TYPE}))",
    f"ALTER TABLE trace_summary MODIFY COLUMN Cost {_per_span(_U_COST, 'Float64')}",
    f"ALTER TABLE trace_summary ADD COLUMN IF NOT EXISTS Unpriced {_per_span(_U_UNPRICED, 'UInt8')}",
    *(f"ALTER TABLE trace_summary ADD COLUMN IF NOT EXISTS {k} {_per_span(f'tupleElement(u, {USAGE_POS[k]})', 'UInt64')}"
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
    maxMap(if({_qualified(HAS_USAGE)}, map(SpanId, CAST({_qualified(USAGE_TUPLE)}, '{USAGE_TUPLE_TYPE}')), map())) AS Usage,
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
                    "SpanCount, ErrorSpans, Services, Models, InputTokens, OutputTokens, Usage, SessionId, UserId) "
                    + SUMMARY_SELECT)

# The archive index: each archived trace's usage, priced when read through archived_traces.
# Rows archived before have no usage and keep the cost they were archived with.
ARCHIVE_USAGE = f"ALTER TABLE trace_summary_archive ADD COLUMN IF NOT EXISTS Usage Array({USAGE_TUPLE_TYPE})"
ARCHIVED_TRACES_PRICED = f"""
CREATE OR REPLACE VIEW archived_traces AS
SELECT * REPLACE (if(empty(Usage), CostUsd, {usage_cost('Usage')}) AS CostUsd),
       {usage_unpriced('Usage')} AS Unpriced,
       {usage_tokens('Usage', USAGE_POS['CacheReadTokens'])} AS CacheReadTokens,
       {usage_tokens('Usage', USAGE_POS['CacheWriteTokens'])} AS CacheWriteTokens,
       {usage_tokens('Usage', USAGE_POS['ReasoningTokens'])} AS ReasoningTokens
FROM trace_summary_archive
WHERE RunId IN (SELECT RunId FROM archive_run_state WHERE State IN ({', '.join(repr(v) for v in VISIBLE_STATES)}))
  AND TraceId NOT IN (SELECT TraceId FROM restore_flipped)
"""

DROP_OLD_PRICES = ("DROP DICTIONARY IF EXISTS {database}.model_prices_dict", "DROP TABLE IF EXISTS model_prices")

STATEMENTS: tuple[str, ...] = (
    PRICE_HISTORY, PRICE_HISTORY_FROM_OLD, ALIASES, PRICE_DICT, ALIASES_DICT_DDL, *SPAN_KIND_COLUMNS,
    DROP_SUMMARY_MV, *SPAN_COST_COLUMNS, *SUMMARY_USAGE, SUMMARY_MV, SUMMARY_BACKFILL, ARCHIVE_USAGE,
    ARCHIVED_TRACES_PRICED, *DROP_OLD_PRICES,
)
