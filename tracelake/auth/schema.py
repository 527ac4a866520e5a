"""Tables of the access layer, appended to the store's migrations (versions 30+).

* ``api_keys``: one row per key version (create, revoke); only the SHA-256 of the secret is kept.
* ``audit_log``: who did what, when, from where.
* ``auth_revoked_sessions``: sessions ended by sign-out before their expiry.
* ``auth_secrets``: the server-wide secret that signs session cookies, shared by every UI process
  on the same ClickHouse (the earliest row wins, so processes racing at first start agree).
* ``Project`` of ``otel_traces`` now prefers the project the collector stamped from the caller's
  key (resource attribute ``tracelake.auth.project``, which the collector strips from what
  clients send), so spans cannot claim another project.
"""
from __future__ import annotations

VERIFIED_PROJECT_ATTR = "tracelake.auth.project"

# Sessions ended by sign-out before their expiry (the cookie itself is stateless); rows leave
# with their expiry.
REVOKED_SESSIONS = """
CREATE TABLE IF NOT EXISTS auth_revoked_sessions (
    Nonce String,
    Expires DateTime
) ENGINE = MergeTree
ORDER BY Nonce
TTL Expires
"""

API_KEYS = """
CREATE TABLE IF NOT EXISTS api_keys (
    KeyId String,
    Name String,
    Project String,
    Role LowCardinality(String),
    SecretSha256 String,
    CreatedAt DateTime64(3),
    CreatedBy String,
    RevokedAt Nullable(DateTime64(3)),
    RevokedBy String DEFAULT '',
    Version UInt64
) ENGINE = ReplacingMergeTree(Version)
ORDER BY KeyId
"""

AUDIT_LOG = """
CREATE TABLE IF NOT EXISTS audit_log (
    Time DateTime64(3),
    Actor String,
    ActorRole LowCardinality(String),
    Action LowCardinality(String),
    Project String,
    Target String,
    Detail String,
    Remote String,
    Outcome LowCardinality(String)
) ENGINE = MergeTree
PARTITION BY toYYYYMM(Time)
ORDER BY Time
"""

AUTH_SECRETS = """
CREATE TABLE IF NOT EXISTS auth_secrets (
    Name String,
    Value String,
    CreatedAt DateTime64(3) DEFAULT now64(3)
) ENGINE = MergeTree
ORDER BY (Name, CreatedAt)
"""



def stamped_project_expr(claimed: str) -> str:
    """The project of a span: the one the collector stamped from the caller's key, else ``claimed``."""
    return (f"if(ResourceAttributes['{VERIFIED_PROJECT_ATTR}'] != '', "
            f"ResourceAttributes['{VERIFIED_PROJECT_ATTR}'], {claimed})")


def stamped_project_column(claimed: str) -> str:
    """The ALTER making the stamped project win over ``claimed`` (the released expression)."""
    verified = stamped_project_expr(claimed)
    return f"ALTER TABLE otel_traces MODIFY COLUMN Project LowCardinality(String) MATERIALIZED {verified}"

# Tables holding nothing a viewer of one project may see; never readable through scoped reads.
PRIVATE_TABLES = ("api_keys", "audit_log", "auth_secrets", "auth_revoked_sessions",
                  "retention_policy_versions",  # rules: who applied what (ops read it through the page)
                  # erasure: receipts name users and traces of every project (the API filters them per project)
                  "erasure_receipts", "retention_requests", "retention_targets",
                  # alerts: rules, states and the delivery log of every project (the alerts API
                  # filters them per project); destinations hold write-only secrets (webhook URLs)
                  "alert_rule_versions", "alert_states", "alert_events", "alert_silences", "alert_destinations",
                  "alert_outbox", "alert_deliveries", "alert_trace_cache")
