"""ClickHouse tables of alerts (migration 70); read and written by :mod:`tracelake.alerts`.

* ``alert_rule_versions``: rule files applied from the Alerts page, one row per version (as
  ``retention_policy_versions``), one series of versions per project ('' is the admins' file);
* ``alert_states``: the state of each rule and group, one row per change (latest ``Version`` wins);
* ``alert_events``: the history: each change of state (firing, resolved), with its value and window;
* ``alert_silences``: silences with an end time and a reason (a lift is a new row);
* ``alert_destinations``: where messages go; ``Secret`` (a webhook URL, e-mail addresses) is
  written once and read only by the sender: /api/sql filters the whole table to nothing for every
  caller, admin included (tracelake.auth.scope);
* ``alert_outbox``: messages to send, with their attempts and next try (latest ``Version`` wins);
* ``alert_deliveries``: the delivery log, one row per attempt.

Every row carries the ``Project`` of its rule ('' for rules over every project): the API shows a
caller the rows of its project only.
"""

ALERT_RULE_VERSIONS = """
CREATE TABLE IF NOT EXISTS alert_rule_versions (
    Project LowCardinality(String),
    Version UInt64,
    Id String,
    Yaml String,
    Sha256 String,
    Actor String,
    ActorRole LowCardinality(String),
    AppliedAt DateTime64(9, 'UTC'),
    Comment String
) ENGINE = MergeTree
ORDER BY (Project, Version, AppliedAt, Id)
"""

ALERT_STATES = """
CREATE TABLE IF NOT EXISTS alert_states (
    Rule String,
    GroupKey String,
    Project LowCardinality(String),
    State LowCardinality(String),
    Since DateTime64(3, 'UTC'),
    Streak UInt32,
    Value Nullable(Float64),
    Notified LowCardinality(String),
    NotifiedAt DateTime64(3, 'UTC'),
    EvaluatedAt DateTime64(3, 'UTC'),
    Error String,
    Version UInt64
) ENGINE = ReplacingMergeTree(Version)
ORDER BY (Project, Rule, GroupKey)
"""

ALERT_EVENTS = """
CREATE TABLE IF NOT EXISTS alert_events (
    Id String,
    At DateTime64(3, 'UTC'),
    Rule String,
    GroupKey String,
    Project LowCardinality(String),
    FromState LowCardinality(String),
    ToState LowCardinality(String),
    Value Nullable(Float64),
    Threshold Float64,
    WindowStart DateTime64(3, 'UTC'),
    WindowEnd DateTime64(3, 'UTC'),
    Filter String,
    Silenced Bool
) ENGINE = MergeTree
PARTITION BY toYYYYMM(At)
ORDER BY (Project, Rule, At)
"""

ALERT_SILENCES = """
CREATE TABLE IF NOT EXISTS alert_silences (
    Id String,
    Rule String,
    GroupKey String,
    Project LowCardinality(String),
    StartsAt DateTime64(3, 'UTC'),
    EndsAt DateTime64(3, 'UTC'),
    Reason String,
    Actor String,
    Lifted Bool,
    Version UInt64
) ENGINE = ReplacingMergeTree(Version)
ORDER BY Id
"""

ALERT_DESTINATIONS = """
CREATE TABLE IF NOT EXISTS alert_destinations (
    Name String,
    Kind LowCardinality(String),
    Project LowCardinality(String),
    Secret String,
    Fingerprint String,
    Actor String,
    UpdatedAt DateTime64(3, 'UTC'),
    Deleted Bool,
    Version UInt64
) ENGINE = ReplacingMergeTree(Version)
ORDER BY Name
"""

ALERT_OUTBOX = """
CREATE TABLE IF NOT EXISTS alert_outbox (
    Id String,
    Destination String,
    Project LowCardinality(String),
    Rule String,
    GroupKey String,
    Kind LowCardinality(String),
    Payload String,
    CreatedAt DateTime64(3, 'UTC'),
    NextAt DateTime64(3, 'UTC'),
    Attempts UInt32,
    State LowCardinality(String),
    Version UInt64
) ENGINE = ReplacingMergeTree(Version)
ORDER BY Id
"""

ALERT_DELIVERIES = """
CREATE TABLE IF NOT EXISTS alert_deliveries (
    MessageId String,
    Destination String,
    Project LowCardinality(String),
    Rule String,
    GroupKey String,
    Kind LowCardinality(String),
    Attempt UInt32,
    At DateTime64(3, 'UTC'),
    Outcome LowCardinality(String),
    HttpStatus UInt16,
    Error String,
    NextAt Nullable(DateTime64(3, 'UTC'))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(At)
ORDER BY (At, MessageId)
"""

# Settled traces' rows (started more than SETTLE ago), as the dashboard computes them from
# trace_summary: long windows read these instead of merging every trace's partial rows each round
# (tracelake.alerts.cache). Columns are compile.py's aliases, so filters compile over them as is.
ALERT_TRACE_CACHE = """
CREATE TABLE IF NOT EXISTS alert_trace_cache (
    Project LowCardinality(String),
    TraceId String,
    TS Int64,
    TE Int64,
    Root String,
    RootService LowCardinality(String),
    NSpans UInt64,
    Errors UInt64,
    Svcs Array(String),
    Mods Array(String),
    InTok UInt64,
    OutTok UInt64,
    CostUsd Float64,
    Sess String,
    Usr String,
    Proj LowCardinality(String)
) ENGINE = MergeTree
PARTITION BY toDate(fromUnixTimestamp64Nano(TS))
ORDER BY (TS, TraceId)
"""

TABLES = ("alert_rule_versions", "alert_states", "alert_events", "alert_silences", "alert_destinations",
          "alert_outbox", "alert_deliveries", "alert_trace_cache")
STATEMENTS = (ALERT_RULE_VERSIONS, ALERT_STATES, ALERT_EVENTS, ALERT_SILENCES, ALERT_DESTINATIONS, ALERT_OUTBOX,
              ALERT_DELIVERIES)
