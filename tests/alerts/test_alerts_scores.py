"""Score aggregates of alert rules (avg_score, score_count) over the scores table (issues 25, 26)."""
from __future__ import annotations

from datetime import timedelta

from alerts_helpers import T0, insert, ns, traces

from tracelake.alerts import query
from tracelake.alerts.rulefile import parse_rules


def _trace_ids(store, service):
    return [r["TraceId"] for r in store.query_arrow(
        "SELECT DISTINCT TraceId FROM otel_traces WHERE ServiceName = {s:String} ORDER BY TraceId", {"s": service}).to_pylist()]


def _score(store, trace_id, name, value, text, minutes):
    store.execute("INSERT INTO scores (Project, TraceId, SpanId, Name, Value, StringValue, DataType, Comment, Source, "
                  "Author, AuthorVersion, ScoreId, CreatedAt) VALUES ('default', {t:String}, '', {n:String}, {v:Float64}, "
                  "{s:String}, 'numeric', '', 'code', 'test', '', {i:String}, now64(6) + toIntervalMinute({m:Int64}))",
                  {"t": trace_id, "n": name, "v": value, "s": text, "i": f"{trace_id[:8]}{minutes}", "m": minutes})


def test_average_and_count_of_current_scores_per_window(store):
    from tracelake.ui.queries.dashboard import trace_rows

    day = T0 + timedelta(days=3)
    insert(store, traces(day, 6, service="judged-svc"))
    ids = _trace_ids(store, "judged-svc")
    # correctness: 1, 2, 5 then re-scored 4 (the newest counts), one trace unscored; thumbs: down twice, up once.
    for tid, v in zip(ids, (1, 2, 5)):
        _score(store, tid, "correctness", v, "", 0)
    _score(store, ids[2], "correctness", 4, "", 1)
    for tid, t in zip(ids[3:], ("down", "down", "up")):
        _score(store, tid, "thumbs", {"down": 0.0, "up": 1.0}[t], t, 0)
    _score(store, ids[0], "thumbs", 1.0, "up", 0)  # another name on a scored trace: not mixed in
    rules = parse_rules("""rules:
  - name: avg-correctness
    filter: service:judged-svc
    aggregate: avg_score(correctness)
    window: 1h
    threshold: 3
    op: "<"
  - name: downs
    filter: service:judged-svc
    aggregate: score_count(thumbs=down)
    window: 1h
    threshold: 1
""", "inline").rules
    values, errors = query.values(store, rules, [ns(day + timedelta(minutes=30))], trace_rows)
    assert errors == {}
    by_name = {r.name: values[r.key][""][0] for r in rules}
    assert abs(by_name["avg-correctness"] - (1 + 2 + 4) / 3) < 1e-9
    assert by_name["downs"] == 2
    # A window without the traces has no average (not 0) and no downs.
    later, _ = query.values(store, rules, [ns(day + timedelta(hours=3))], trace_rows)
    assert later[rules[0].key][""][0] is None and later[rules[1].key][""][0] == 0
