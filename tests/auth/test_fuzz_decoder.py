"""The OTLP decoder never crashes: arbitrary bytes and arbitrary (valid or not) OTLP messages
either decode or raise BadRequest; and the running collector answers them without a 5xx and
keeps serving."""
from __future__ import annotations

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tracelake.auth.ingest import _stamp_slow, stamp_body
from tracelake.collector.decode import BadRequest, decode_json, decode_protobuf

text = st.text(max_size=40)
leaf = st.one_of(text.map(lambda s: AnyValue(string_value=s)), st.integers(-2**63, 2**63 - 1).map(lambda i: AnyValue(int_value=i)),
                 st.floats(allow_nan=True).map(lambda f: AnyValue(double_value=f)), st.booleans().map(lambda b: AnyValue(bool_value=b)),
                 st.binary(max_size=40).map(lambda b: AnyValue(bytes_value=b)))


def _nest(children):
    return st.one_of(
        st.lists(children, max_size=3).map(lambda vs: _array(vs)),
        st.lists(st.tuples(text, children), max_size=3).map(lambda kvs: _kvlist(kvs)))


def _array(values):
    v = AnyValue()
    v.array_value.values.extend(values)
    return v


def _kvlist(pairs):
    v = AnyValue()
    v.kvlist_value.values.extend(KeyValue(key=k, value=x) for k, x in pairs)
    return v


any_value = st.recursive(leaf, _nest, max_leaves=8)
attrs = st.lists(st.tuples(text, any_value), max_size=5)


@st.composite
def otlp_requests(draw) -> bytes:
    req = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rs = req.resource_spans.add()
        rs.resource.attributes.extend(KeyValue(key=k, value=v) for k, v in draw(attrs))
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add()
            ss.scope.name = draw(text)
            for _ in range(draw(st.integers(0, 3))):
                sp = ss.spans.add()
                sp.trace_id = draw(st.one_of(st.binary(min_size=16, max_size=16), st.binary(max_size=20)))
                sp.span_id = draw(st.one_of(st.binary(min_size=8, max_size=8), st.binary(max_size=10)))
                sp.parent_span_id = draw(st.one_of(st.just(b""), st.binary(max_size=9)))
                sp.name = draw(text)
                sp.kind = draw(st.integers(0, 5))
                start = draw(st.integers(0, 2**63))
                sp.start_time_unix_nano = start
                sp.end_time_unix_nano = draw(st.integers(0, 2**64 - 1))
                sp.attributes.extend(KeyValue(key=k, value=v) for k, v in draw(attrs))
                sp.status.code = draw(st.integers(0, 2))
                sp.status.message = draw(text)
                for _ in range(draw(st.integers(0, 2))):
                    ev = sp.events.add()
                    ev.name = draw(text)
                    ev.time_unix_nano = draw(st.integers(0, 2**64 - 1))
                    ev.attributes.extend(KeyValue(key=k, value=v) for k, v in draw(attrs))
    return req.SerializeToString()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_decode_or_bad_request(body):
    try:
        decoded = decode_protobuf(body)
    except BadRequest:
        return
    assert decoded.accepted + decoded.rejected >= 0
    stamp_body(decoded.body, "p")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(otlp_requests())
def test_structured_requests_decode_and_stamp(body):
    decoded = decode_protobuf(body)
    stamped = ExportTraceServiceRequest.FromString(stamp_body(decoded.body, "proj"))
    for rs in stamped.resource_spans:
        values = [kv.value.string_value for kv in rs.resource.attributes if kv.key == "tracelake.auth.project"]
        assert values == ["proj"]
    # The wire-level rewrite means exactly what a full parse + rewrite means.
    assert stamped == ExportTraceServiceRequest.FromString(_stamp_slow(decoded.body, "proj"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(otlp_requests(), st.lists(st.tuples(text, text), max_size=3))
def test_stamping_replaces_client_claims(body, claims):
    req = ExportTraceServiceRequest.FromString(body)
    for rs in req.resource_spans:
        for k, v in claims:
            rs.resource.attributes.add(key="tracelake.auth.project", value=AnyValue(string_value=v + k))
    stamped = ExportTraceServiceRequest.FromString(stamp_body(req.SerializeToString(), "mine"))
    assert len(stamped.resource_spans) == len(req.resource_spans)
    for before, after in zip(req.resource_spans, stamped.resource_spans):
        assert [kv.value.string_value for kv in after.resource.attributes if kv.key == "tracelake.auth.project"] == ["mine"]
        assert after.scope_spans == before.scope_spans


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats(allow_nan=False) | text,
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(text, c, max_size=3), max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, st.fixed_dictionaries({"resourceSpans": st.lists(st.fixed_dictionaries(
    {"scopeSpans": st.lists(st.fixed_dictionaries({"spans": st.lists(st.dictionaries(
        st.sampled_from(["traceId", "spanId", "parentSpanId", "name", "startTimeUnixNano", "endTimeUnixNano",
                         "attributes", "kind", "events", "links", "status"]), json_values, max_size=6), max_size=3)}),
        max_size=2)}), max_size=2)})))
def test_arbitrary_json_decodes_or_bad_request(doc):
    import orjson

    try:
        decode_json(orjson.dumps(doc))
    except BadRequest:
        pass


def test_the_running_collector_survives_fuzzed_requests(stack):
    """Fuzzed bodies (raw and structured) to the real server: never a 5xx, and it still ingests."""
    key = stack.keys["A:ingest"]
    url = f"{stack.server.otlp_http_url}/v1/traces"
    headers = {"content-type": "application/x-protobuf", "authorization": f"Bearer {key}"}
    statuses: list[int] = []

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.binary(max_size=1024), otlp_requests()))
    def send(body):
        response = httpx.post(url, content=body, headers=headers, timeout=60)
        statuses.append(response.status_code)
        assert response.status_code in (200, 400, 413), (response.status_code, response.text[:300])

    send()
    assert statuses
    from auth_stack import emit

    assert emit(stack.server, "http", key, [{"name": "after-fuzz"}]) == ["SUCCESS"]
    rows = stack.admin.sql("SELECT count() FROM otel_traces WHERE SpanName = 'after-fuzz'").json()["rows"]
    assert rows == [[1]]
