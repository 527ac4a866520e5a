"""ClickHouse table of retention rules edited from the Retention page (migration 23); read and
written by :mod:`tracelake.archiver.policy_store`."""

RETENTION_POLICY_VERSIONS = """
CREATE TABLE IF NOT EXISTS retention_policy_versions (
    Version UInt64,
    Id String,
    Yaml String,
    Sha256 String,
    Actor String,
    ActorRole LowCardinality(String),
    AppliedAt DateTime64(9, 'UTC'),
    Comment String
) ENGINE = MergeTree
ORDER BY (Version, AppliedAt, Id)
"""
