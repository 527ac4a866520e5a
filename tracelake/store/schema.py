"""The ClickHouse schema, as numbered migrations applied at start.

``otel_traces`` keeps the OpenTelemetry Collector ClickHouse exporter's column names and types, so
Grafana's ClickHouse plugin reads it as is. What LLM traces need is added beside it:

* derived LLM columns (MATERIALIZED, so ClickHouse computes them on insert from the attributes of
  all three conventions in the wild: OTel GenAI, OpenInference, OpenLLMetry);
* ``trace_summary``: one row per trace and insert block, merged per trace, fed by a materialized
  view at insert time. Every aggregate is idempotent (min, max, maps keyed by SpanId, sets), so a
  span stored twice after a client retry never counts twice;
* ``otel_traces_trace_id_ts``: the exporter's trace id -> time range lookup;
* prices with history and the usage they price at read (:mod:`tracelake.store.cost_schema`).

Layout for the archiver: everything is partitioned by day, so whole days leave with
``DROP PARTITION``; whole traces are found through the lookup table and summary.
``otel_traces`` is a ReplacingMergeTree whose key ends in (TraceId, SpanId): duplicates from
retries merge away, and readers that must be exact until then use ``LIMIT 1 BY SpanId``.

Unlike the exporter, there are no bloom filters on attribute *values*: LLM payloads make them the
most expensive part of an insert (measured ~25 %) for little use, since values are searched by
substring, not equality.
"""
from __future__ import annotations

from dataclasses import dataclass

from tracelake.auth import schema as _auth
from tracelake.store import alerts_schema, archive_schema, cost_schema, cost_schema_50, erase_schema, keep_schema, project_schema, rules_schema, scores_schema, search_text


def _first(*keys: str, attrs: str = "SpanAttributes") -> str:
    """The first non-empty attribute among ``keys``, or ''."""
    args = ", ".join(f"nullIf({attrs}['{k}'], '')" for k in keys)
    return f"ifNull(coalesce({args}), '')"


PROVIDER = _first("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
MODEL = _first("gen_ai.response.model", "gen_ai.request.model", "llm.response.model",
               "llm.model_name", "llm.request.model")
INPUT_TOKENS = f"toUInt64OrZero({_first('gen_ai.usage.input_tokens', 'gen_ai.usage.prompt_tokens', 'llm.token_count.prompt', 'llm.usage.prompt_tokens')})"
OUTPUT_TOKENS = f"toUInt64OrZero({_first('gen_ai.usage.output_tokens', 'gen_ai.usage.completion_tokens', 'llm.token_count.completion', 'llm.usage.completion_tokens')})"
OPERATION = (f"lower({_first('gen_ai.operation.name', 'openinference.span.kind', 'traceloop.span.kind', 'llm.request.type')})")
SESSION = _first("session.id", "gen_ai.conversation.id", "traceloop.association.properties.session_id")
USER = _first("user.id", "enduser.id", "traceloop.association.properties.user_id")
PROJECT = ("ifNull(coalesce(nullIf(SpanAttributes['tracelake.project'], ''), "
           "nullIf(ResourceAttributes['tracelake.project'], ''), "
           "nullIf(ResourceAttributes['openinference.project.name'], '')), 'default')")


_PRICES = "'{database}.model_prices_dict'"
# The price table's name for the model: exact, else without a trailing date stamp
# (gpt-4o-2024-08-06 -> gpt-4o). An ALIAS, so it costs nothing unless cost is computed.
PRICE_MODEL = (f"if(dictHas({_PRICES}, tuple(LlmModel)), LlmModel, "
               f"replaceRegexpOne(LlmModel, '-\\\\d{{4}}-?\\\\d{{2}}-?\\\\d{{2}}$', ''))")


def _price(column: str) -> str:
    return f"dictGetOrDefault({_PRICES}, '{column}', tuple(PriceModel), 0.)"


# A cost reported by the instrumentation (OpenInference llm.cost.total) wins over our price table;
# spans without tokens (most of them) skip the lookups.
COST = (f"if(SpanAttributes['llm.cost.total'] != '', toFloat64OrZero(SpanAttributes['llm.cost.total']), "
        f"if(InputTokens + OutputTokens = 0, 0., "
        f"(InputTokens * {_price('InputPerMTok')} + OutputTokens * {_price('OutputPerMTok')}) / 1e6))")

_MAP = "Map(LowCardinality(String), String)"

OTEL_TRACES = f"""
CREATE TABLE IF NOT EXISTS otel_traces (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes {_MAP} CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes {_MAP} CODEC(ZSTD(1)),
    Duration UInt64 CODEC(T64, ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes {_MAP}
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes {_MAP}
    ) CODEC(ZSTD(1)),
    Project LowCardinality(String) MATERIALIZED {PROJECT},
    LlmOperation LowCardinality(String) MATERIALIZED {OPERATION},
    LlmProvider LowCardinality(String) MATERIALIZED {PROVIDER},
    LlmModel LowCardinality(String) MATERIALIZED {MODEL},
    InputTokens UInt64 MATERIALIZED {INPUT_TOKENS},
    OutputTokens UInt64 MATERIALIZED {OUTPUT_TOKENS},
    PriceModel String ALIAS {PRICE_MODEL},
    CostUsd Float64 MATERIALIZED {COST},
    SessionId String MATERIALIZED {SESSION},
    UserId String MATERIALIZED {USER},
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1,
    INDEX idx_lower_span_name lower(SpanName) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
) ENGINE = ReplacingMergeTree
PARTITION BY toDate(Timestamp)
PRIMARY KEY (ServiceName, SpanName, toDateTime(Timestamp))
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp, TraceId, SpanId)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""

TRACE_ID_TS = """
CREATE TABLE IF NOT EXISTS otel_traces_trace_id_ts (
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime) CODEC(Delta, ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime) CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = AggregatingMergeTree
PARTITION BY toDate(Start)
ORDER BY (TraceId)
"""

TRACE_ID_TS_MV = """
CREATE MATERIALIZED VIEW IF NOT EXISTS otel_traces_trace_id_ts_mv TO otel_traces_trace_id_ts AS
SELECT TraceId, min(toDateTime(Timestamp)) AS Start, max(toDateTime(Timestamp)) AS End
FROM otel_traces WHERE TraceId != '' GROUP BY TraceId
"""

TRACE_SUMMARY = """
CREATE TABLE IF NOT EXISTS trace_summary (
    Project LowCardinality(String),
    TraceId String,
    Start SimpleAggregateFunction(min, DateTime64(9)),
    End SimpleAggregateFunction(max, DateTime64(9)),
    RootName SimpleAggregateFunction(max, String),
    RootService SimpleAggregateFunction(max, String),
    FirstSpanName AggregateFunction(argMin, String, DateTime64(9)),
    SpanCount AggregateFunction(uniq, String),
    ErrorSpans SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    Services SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    Models SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    InputTokens SimpleAggregateFunction(maxMap, Map(String, UInt64)),
    OutputTokens SimpleAggregateFunction(maxMap, Map(String, UInt64)),
    Cost SimpleAggregateFunction(maxMap, Map(String, Float64)),
    SessionId SimpleAggregateFunction(max, String),
    UserId SimpleAggregateFunction(max, String),
    INDEX idx_start Start TYPE minmax GRANULARITY 1,
    INDEX idx_session SessionId TYPE bloom_filter(0.01) GRANULARITY 1
) ENGINE = AggregatingMergeTree
PARTITION BY toDate(Start)
ORDER BY (Project, TraceId)
"""

# Per-span token and cost contributions are keyed by SpanId: maxMap makes a retried span a no-op.
TRACE_SUMMARY_MV = """
CREATE MATERIALIZED VIEW IF NOT EXISTS trace_summary_mv TO trace_summary AS
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
    maxMap(if(CostUsd > 0, map(SpanId, CostUsd), map())) AS Cost,
    max(SessionId) AS SessionId,
    max(UserId) AS UserId
FROM otel_traces
WHERE TraceId != ''
GROUP BY Project, TraceId
"""

MODEL_PRICES = """
CREATE TABLE IF NOT EXISTS model_prices (
    Model String,
    InputPerMTok Float64,
    OutputPerMTok Float64,
    Source LowCardinality(String),
    UpdatedAt DateTime64(3) DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(UpdatedAt)
ORDER BY Model
"""

MODEL_PRICES_DICT = """
CREATE DICTIONARY IF NOT EXISTS {database}.model_prices_dict (
    Model String,
    InputPerMTok Float64,
    OutputPerMTok Float64
) PRIMARY KEY Model
SOURCE(CLICKHOUSE(QUERY 'SELECT Model, argMax(InputPerMTok, UpdatedAt) AS InputPerMTok, argMax(OutputPerMTok, UpdatedAt) AS OutputPerMTok FROM {database}.model_prices GROUP BY Model'))
LAYOUT(COMPLEX_KEY_HASHED())
LIFETIME(MIN 0 MAX 60)
"""


# One row per attachment blob (tracelake.attachments.index); rows for the same blob from several
# collectors or restarts merge into one.
ATTACHMENTS = """
CREATE TABLE IF NOT EXISTS attachments (
    Sha256 String,
    MimeType SimpleAggregateFunction(any, String),
    Size SimpleAggregateFunction(max, UInt64),
    ObjectKey SimpleAggregateFunction(any, String),
    FirstSeen SimpleAggregateFunction(min, DateTime64(3)),
    LastSeen SimpleAggregateFunction(max, DateTime64(3)),
    TraceId SimpleAggregateFunction(any, String),
    SpanId SimpleAggregateFunction(any, String)
) ENGINE = AggregatingMergeTree
ORDER BY Sha256
"""


# A spool segment is inserted with its own insert_deduplication_token: repeating the INSERT after
# a crash or a lost reply must leave the rows once, in the table and in the views' tables. Plain
# MergeTree keeps the hashes of its last N blocks only when this window is set.
DEDUP_WINDOW = tuple(f"ALTER TABLE {t} MODIFY SETTING non_replicated_deduplication_window = 10000"
                     for t in ("otel_traces", "otel_traces_trace_id_ts", "trace_summary"))


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]

    def sql(self, database: str) -> list[str]:
        # str.replace, not format(): the DDL is full of braces of its own.
        return [s.replace("{database}", database) for s in self.statements]


# Append only: a released migration never changes; later changes are new migrations.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "prices", (MODEL_PRICES, MODEL_PRICES_DICT)),
    Migration(2, "otel_traces with LLM columns, trace lookup and summary",
              (OTEL_TRACES, TRACE_ID_TS, TRACE_ID_TS_MV, TRACE_SUMMARY, TRACE_SUMMARY_MV)),
    Migration(10, "attachments", (ATTACHMENTS,)),
    Migration(3, "insert deduplication for spool segments", DEDUP_WINDOW),
    Migration(20, "archive tier: trace index, runs, visibility views", archive_schema.STATEMENTS),
    Migration(30, "access: api keys, audit log, session secret", (_auth.API_KEYS, _auth.AUDIT_LOG, _auth.AUTH_SECRETS,
                                                                      _auth.REVOKED_SESSIONS)),
    Migration(31, "access: Project from the caller's key wins", (_auth.stamped_project_column(PROJECT),)),
    Migration(21, "retention: pins and legal holds", keep_schema.STATEMENTS),
    Migration(22, "erasure and restore: requests, targets, receipts, restore flip", erase_schema.STATEMENTS),
    Migration(23, "retention rules edited from the page, versioned", (rules_schema.RETENTION_POLICY_VERSIONS,)),
    Migration(24, "archive: archived_traces without FINAL (trace lookups)", (archive_schema.ARCHIVED_TRACES_NO_FINAL,)),
    Migration(25, "retention: a legal hold's project ('' = all projects)", (keep_schema.HOLDS_PROJECT,)),
    Migration(26, "trace-keyed rows carry their spans' project (lookup, attachments, pins, targets)",
              project_schema.STATEMENTS),
    Migration(40, "search: text index over spans' searchable text, the archive's term index", search_text.STATEMENTS),
    Migration(50, "cost at read: token kinds, prices with history, aliases, usage per trace", cost_schema_50.STATEMENTS),
    Migration(51, "cost at read: names resolved per name seen, UInt64 price keys, usage as numbers", cost_schema.STATEMENTS),
    Migration(60, "scores and score configs", scores_schema.STATEMENTS),
    Migration(70, "alerts: rule versions, states, history, silences, destinations, outbox, delivery log",
              alerts_schema.STATEMENTS),
    Migration(71, "alerts: settled traces' rows for long windows", (alerts_schema.ALERT_TRACE_CACHE,)),
)

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    Version UInt32,
    Name String,
    AppliedAt DateTime DEFAULT now()
) ENGINE = MergeTree ORDER BY Version
"""
