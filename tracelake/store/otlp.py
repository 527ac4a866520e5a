"""OTLP protobuf -> otel_traces rows, computed by ClickHouse itself.

Python never touches a span's attributes: a writer (the collector, a spool loader) hands the store
a stream of length-delimited ``ExportTraceServiceRequest`` messages (:func:`length_delimited`) and
one INSERT ... SELECT turns them into rows. The store owns this SQL and its protobuf schema, so it
stands on its own: nothing here knows the collector. The embedded store reads the stream from a file (``file()``), a ClickHouse server from
the request body (``input()``); the SELECT is the same for both.

Attribute values are stringified the way the OpenTelemetry Collector's ClickHouse exporter does
(pdata ``AsString``): scalars as text, bools as ``true``/``false``, bytes as base64, arrays and
maps as JSON.
"""
from __future__ import annotations

import mmap
from functools import cache
from importlib.resources import files

from tracelake.store import scores_schema
from tracelake.store.base import Store
from tracelake.store.scores_schema import SCORE_SPAN

_ONEOF = ("Enum8('none' = 0, 'string_value' = 1, 'bool_value' = 2, 'int_value' = 3, "
          "'double_value' = 4, 'array_value' = 5, 'kvlist_value' = 6, 'bytes_value' = 7)")
_SCALARS = "string_value String, bool_value Bool, int_value Int64, double_value Float64, bytes_value String"
_LEAF = f"Tuple(value {_ONEOF}, {_SCALARS})"
_ANY = (f"Tuple(value {_ONEOF}, {_SCALARS}, array_value Tuple(values Array({_LEAF})), "
        f"kvlist_value Tuple(values Array(Tuple(key String, value {_LEAF}))))")
_KV = f"Array(Tuple(key String, value {_ANY}))"

STRUCTURE = (
    f"resource_spans Array(Tuple(resource Tuple(attributes {_KV}), scope_spans Array(Tuple("
    f"scope Tuple(name String, version String), spans Array(Tuple(trace_id String, span_id String, "
    f"trace_state String, parent_span_id String, name String, kind Int32, start_time_unix_nano UInt64, "
    f"end_time_unix_nano UInt64, attributes {_KV}, "
    f"events Array(Tuple(time_unix_nano UInt64, name String, attributes {_KV})), "
    f"links Array(Tuple(trace_id String, span_id String, trace_state String, attributes {_KV})), "
    f"status Tuple(message String, code Int32)))))))"
)

MESSAGE = "ExportTraceServiceRequest"

# Column order of the INSERT; matches the SELECT list below.
COLUMNS = (
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind",
    "ServiceName", "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes", "Duration",
    "StatusCode", "StatusMessage", "Events.Timestamp", "Events.Name", "Events.Attributes",
    "Links.TraceId", "Links.SpanId", "Links.TraceState", "Links.Attributes",
)


@cache
def proto_schema() -> str:
    """The flattened OTLP schema text (format_schema_source='string')."""
    return files("tracelake.store").joinpath("otlp_flat.proto").read_text()


def varint(n: int) -> bytes:
    """Protobuf's base-128 varint."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def length_delimited(bodies: list[bytes]) -> bytes:
    """The stream format ClickHouse's Protobuf input reads: varint length, then the message."""
    return b"".join(varint(len(b)) + b for b in bodies)


def _leaf_json(x: str) -> str:
    """A nested AnyValue as a JSON fragment (inside an array or kvlist)."""
    return (f"multiIf({x}.value = 'string_value', toJSONString({x}.string_value), "
            f"{x}.value = 'int_value', toString({x}.int_value), "
            f"{x}.value = 'double_value', toJSONString({x}.double_value), "
            f"{x}.value = 'bool_value', if({x}.bool_value, 'true', 'false'), "
            f"{x}.value = 'bytes_value', toJSONString(base64Encode({x}.bytes_value)), "
            f"{x}.value IN ('array_value', 'kvlist_value'), '\"[nested value]\"', 'null')")


def _value_text(v: str) -> str:
    """An attribute's AnyValue as the exporter's string."""
    return (f"multiIf({v}.value = 'string_value', {v}.string_value, "
            f"{v}.value = 'int_value', toString({v}.int_value), "
            f"{v}.value = 'double_value', toString({v}.double_value), "
            f"{v}.value = 'bool_value', if({v}.bool_value, 'true', 'false'), "
            f"{v}.value = 'bytes_value', base64Encode({v}.bytes_value), "
            f"{v}.value = 'array_value', concat('[', arrayStringConcat(arrayMap(e -> {_leaf_json('e')}, "
            f"{v}.array_value.values), ','), ']'), "
            f"{v}.value = 'kvlist_value', concat('{{', arrayStringConcat(arrayMap(e -> concat(toJSONString(e.key), "
            f"':', {_leaf_json('e.value')}), {v}.kvlist_value.values), ','), '}}'), '')")


# Stringifying an AnyValue is a SQL function created by a migration (see udf_statements):
# ClickHouse analyzes a function body once per use instead of the whole expression tree four
# times over, which cut the fixed cost of every INSERT by about a third.
VALUE_FUNCTION = "tracelake_otlp_value"


def udf_statements() -> list[str]:
    return [f"CREATE OR REPLACE FUNCTION {VALUE_FUNCTION} AS (v) -> {_value_text('v')}"]


def install_functions(store: Store) -> None:
    """Create the SQL functions the INSERT calls (idempotent; functions are server-wide)."""
    for statement in udf_statements():
        store.execute(statement)


def _kv_map(arr: str) -> str:
    return f"mapFromArrays(arrayMap(a -> a.key, {arr}), arrayMap(a -> {VALUE_FUNCTION}(a.value), {arr}))"


def _select(source: str) -> str:
    # Score spans (tracelake.store.scores_schema) are not spans of the trace: they go to ``scores``.
    return f"""SELECT
  fromUnixTimestamp64Nano(toInt64(sp.start_time_unix_nano)),
  lower(hex(sp.trace_id)), lower(hex(sp.span_id)), lower(hex(sp.parent_span_id)), sp.trace_state,
  sp.name,
  ['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer'][sp.kind + 1],
  ra['service.name'], ra, ss.scope.name, ss.scope.version,
  {_kv_map('sp.attributes')},
  sp.end_time_unix_nano - sp.start_time_unix_nano,
  ['Unset', 'Ok', 'Error'][sp.status.code + 1], sp.status.message,
  arrayMap(e -> fromUnixTimestamp64Nano(toInt64(e.time_unix_nano)), sp.events),
  arrayMap(e -> e.name, sp.events),
  arrayMap(e -> {_kv_map('e.attributes')}, sp.events),
  arrayMap(l -> lower(hex(l.trace_id)), sp.links),
  arrayMap(l -> lower(hex(l.span_id)), sp.links),
  arrayMap(l -> l.trace_state, sp.links),
  arrayMap(l -> {_kv_map('l.attributes')}, sp.links)
FROM (SELECT rs, {_kv_map('rs.resource.attributes')} AS ra FROM {source} ARRAY JOIN resource_spans AS rs)
ARRAY JOIN rs.scope_spans AS ss
ARRAY JOIN ss.spans AS sp
WHERE sp.name != '{SCORE_SPAN}'"""


def _scores_select(source: str) -> str:
    """The score spans of the stream as ``scores`` rows (:func:`scores_schema.score_columns`)."""
    from tracelake.auth.schema import stamped_project_expr
    from tracelake.store.schema import PROJECT

    named = ", ".join(f"{expr} AS {col}" for expr, col in
                      zip(scores_schema.score_columns(stamped_project_expr(PROJECT)), scores_schema.COLUMNS))
    return f"""SELECT {named} FROM (
SELECT lower(hex(sp.trace_id)) AS SpanTrace, lower(hex(sp.span_id)) AS SpanSelf,
  fromUnixTimestamp64Nano(toInt64(sp.start_time_unix_nano)) AS Start,
  {_kv_map('sp.attributes')} AS SpanAttributes, ra AS ResourceAttributes
FROM (SELECT rs, {_kv_map('rs.resource.attributes')} AS ra FROM {source} ARRAY JOIN resource_spans AS rs)
ARRAY JOIN rs.scope_spans AS ss
ARRAY JOIN ss.spans AS sp
WHERE sp.name = '{SCORE_SPAN}')
WHERE {scores_schema.score_validity()}"""


def carries_scores(stream: bytes | memoryview | mmap.mmap) -> bool:
    """Whether a stream may hold score spans (then the store runs the scores INSERT too): a byte
    search, far cheaper than a second decode of every segment."""
    return stream.find(SCORE_SPAN.encode()) >= 0


def stream_file_carries_scores(path: str) -> bool:
    with open(path, "rb") as f:
        try:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                return carries_scores(m)
        except ValueError:  # an empty file cannot be mapped
            return False


# Duplicates are retried requests, which arrive in other INSERTs than the original: the
# ReplacingMergeTree merges collapse them, so deduplicating inside each block on insert (the
# default) is work for nothing (measured ~7 % of an INSERT).
_INSERT_SETTINGS = {"input_format_protobuf_oneof_presence": 1, "optimize_on_insert": 0}


def dedup_settings(token: str | None) -> dict[str, str | int]:
    """Settings that make a repeated INSERT of the same stream a no-op (per block and partition),
    in the table and in the views fed by it. Needs ``non_replicated_deduplication_window`` > 0 on
    the tables (a migration sets it)."""
    if not token:
        return {}
    return {"insert_deduplicate": 1, "insert_deduplication_token": token,
            "deduplicate_blocks_in_dependent_materialized_views": 1}


def format_settings(dedup_token: str | None = None) -> dict[str, str | int]:
    """Settings that let ClickHouse read the stream with our schema, given inline."""
    return {"format_schema_source": "string", "format_schema": proto_schema(),
            "format_schema_message_name": MESSAGE, **_INSERT_SETTINGS, **dedup_settings(dedup_token)}


def _literal(v: str | int) -> str:
    """A SQL literal for our own constants (schema text, structure, spool paths)."""
    return str(v) if isinstance(v, int) else "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _settings_clause(schema_path: str, dedup_token: str | None) -> str:
    # A schema file, not the inline text: chdb would cache inline schemas under the cwd.
    settings = {"format_schema": f"{schema_path}:{MESSAGE}", **_INSERT_SETTINGS, **dedup_settings(dedup_token)}
    return "SETTINGS " + ", ".join(f"{k} = {_literal(v)}" for k, v in settings.items())


def _columns() -> str:
    return ", ".join(f"`{c}`" for c in COLUMNS)


def insert_from_file_sql(table: str, path: str, schema_path: str, dedup_token: str | None = None) -> str:
    """INSERT for the embedded store: the batch is a local file of length-delimited messages.

    ``path`` (a spool segment or temp file), ``schema_path`` (a copy of :func:`proto_schema`) and
    the token are ours, never user input.
    """
    source = f"file({_literal(path)}, 'Protobuf', {_literal(STRUCTURE)})"
    return f"INSERT INTO {table} ({_columns()})\n{_select(source)}\n{_settings_clause(schema_path, dedup_token)}"


def insert_from_body_sql(table: str) -> str:
    """INSERT for a ClickHouse server: the batch travels as the HTTP request body.

    Send it with :func:`format_settings` as query settings.
    """
    source = f"input({_literal(STRUCTURE)})"
    return f"INSERT INTO {table} ({_columns()})\n{_select(source)}\nFORMAT Protobuf"


def scores_token(dedup_token: str | None) -> str | None:
    """The scores INSERT's own deduplication token (a block's hash is per table anyway)."""
    return f"{dedup_token}/scores" if dedup_token else None


def scores_from_file_sql(database: str, path: str, schema_path: str, dedup_token: str | None = None) -> str:
    """The scores INSERT of a stream file (see :func:`insert_from_file_sql`)."""
    source = f"file({_literal(path)}, 'Protobuf', {_literal(STRUCTURE)})"
    cols = ", ".join(f"`{c}`" for c in scores_schema.COLUMNS)
    return (f"INSERT INTO {database}.scores ({cols})\n{_scores_select(source)}\n"
            f"{_settings_clause(schema_path, scores_token(dedup_token))}")


def scores_from_body_sql() -> str:
    """The scores INSERT for a ClickHouse server (the stream is the request body)."""
    source = f"input({_literal(STRUCTURE)})"
    cols = ", ".join(f"`{c}`" for c in scores_schema.COLUMNS)
    return f"INSERT INTO scores ({cols})\n{_scores_select(source)}\nFORMAT Protobuf"
