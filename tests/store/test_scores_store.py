"""Score spans through the store's OTLP insert, on both stores (issue 25): they become ``scores``
rows, never spans of a trace; typed values, the stamped project, invalid ones dropped, a retried
stream stored once."""
from __future__ import annotations

from otlp_spans import new_span_id, new_trace_id, request, span

from tracelake.store.otlp import length_delimited


def _score(trace: bytes, **attrs) -> dict:
    return span("tracelake.score", trace, attrs={f"tracelake.score.{k}": v for k, v in attrs.items()})


def test_score_spans_become_scores_not_spans(store):
    trace, root = new_trace_id(), new_span_id()
    other = new_trace_id().hex()
    body = request([span("root", trace, root),
                    _score(trace, name="correctness", value=2, span_id=root.hex(), comment="<b>meh</b>",
                           author="judge", author_version="1.2"),
                    _score(trace, name="thumbs", value="DOWN", source="app", author="user-1"),
                    _score(trace, name="helpful", value=True),
                    _score(trace, name="elsewhere", value=0.5, trace_id=other),
                    _score(trace, name="bad name!", value=1),
                    _score(trace, name="no_value", value=""),
                    _score(trace, name="bad_span", value=1, span_id="xyz")],
                   resource={"tracelake.project": "p1"}).SerializeToString()
    stream = length_delimited([body])
    store.insert_otlp("otel_traces", stream, dedup_token="seg-1")
    store.insert_otlp("otel_traces", stream, dedup_token="seg-1")  # a retried segment: stored once
    spans = store.query_arrow("SELECT SpanName FROM otel_traces").to_pylist()
    assert spans == [{"SpanName": "root"}]
    got = {r["Name"]: r for r in store.query_arrow(
        "SELECT toString(Project) AS Project, TraceId, SpanId, toString(Name) AS Name, Value, StringValue, "
        "toString(DataType) AS DataType, Comment, toString(Source) AS Source, Author, AuthorVersion FROM scores "
        "FINAL").to_pylist()}
    assert set(got) == {"correctness", "thumbs", "helpful", "elsewhere"}
    c = got["correctness"]
    assert (c["Project"], c["TraceId"], c["SpanId"], c["Value"], c["StringValue"], c["DataType"]) == (
        "p1", trace.hex(), root.hex(), 2.0, "", "numeric")
    assert (c["Comment"], c["Source"], c["Author"], c["AuthorVersion"]) == ("<b>meh</b>", "code", "judge", "1.2")
    t = got["thumbs"]
    assert (t["Value"], t["StringValue"], t["DataType"], t["Source"], t["SpanId"]) == (0.0, "down", "categorical", "app", "")
    assert (got["helpful"]["Value"], got["helpful"]["StringValue"], got["helpful"]["DataType"]) == (1.0, "true", "boolean")
    assert got["elsewhere"]["TraceId"] == other


def test_streams_without_scores_insert_spans_only(store):
    trace = new_trace_id()
    store.insert_otlp("otel_traces", length_delimited([request([span("plain", trace)]).SerializeToString()]))
    assert store.query_arrow("SELECT count() AS n FROM otel_traces").to_pylist() == [{"n": 1}]
    assert store.query_arrow("SELECT count() AS n FROM scores").to_pylist() == [{"n": 0}]
