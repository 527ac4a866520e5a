"""Long windows read settled traces from the alerts' cache: the values are the ones built live,
at the boundary between cached and live traces too, and after the cache is dropped."""
from __future__ import annotations

from datetime import timedelta

from alerts_helpers import T0, insert, ns, traces

from tracelake.alerts import cache
from tracelake.alerts.query import values
from tracelake.alerts.rulefile import parse_rules
from tracelake.ui.queries.dashboard import trace_rows

RULES = parse_rules("""rules:
  - name: day-count
    filter: service:cache-svc
    aggregate: count
    window: 1d
    threshold: 1
  - name: day-errors-per-user
    filter: service:cache-svc
    aggregate: error_rate
    window: 1d
    threshold: 10%
    group_by: user
  - name: day-p95
    filter: service:cache-svc
    aggregate: p95_latency
    window: 1d
    threshold: 100
  - name: day-tokens-per-model
    filter: service:cache-svc
    aggregate: tokens
    window: 1d
    threshold: 100
    group_by: model
""", "cache.yaml").rules


def _both(store, points):
    live, errors = values(store, list(RULES), points, trace_rows, use_cache=False)
    cached, errors2 = values(store, list(RULES), points, trace_rows, use_cache=True)
    assert errors == errors2 == {}
    return live, cached


def test_cached_and_live_values_agree(store):
    day = T0 + timedelta(days=25)  # well before the wall clock: the cache only keeps settled traces
    requests = []
    for user, errors in (("u1", 3), ("u2", 0), ("u3", 9)):
        requests += traces(day, 30, errors=errors, every=timedelta(hours=1), service="cache-svc",
                           attrs={"user.id": user, "gen_ai.request.model": f"m-{user}", "gen_ai.usage.input_tokens": 7},
                           duration_ms=40 + 10 * errors)
    insert(store, requests)
    now = day + timedelta(hours=29, minutes=30)
    live, cached = _both(store, [ns(now)])
    assert live == cached
    assert live["/day-count"][""] == [72.0]  # 3 users x 24 hourly traces in the last day
    assert set(live["/day-errors-per-user"]) == {"u1", "u2", "u3"}
    # A trace in the live hour and one just before it: counted once each, on the right side.
    insert(store, traces(now - timedelta(minutes=61), 1, service="cache-svc", attrs={"user.id": "u2"}))
    insert(store, traces(now - timedelta(minutes=59), 1, service="cache-svc", attrs={"user.id": "u2"}))
    later = now + timedelta(minutes=1)
    cache.forget()  # the first trace landed in an already cached range: start again (as after an erasure)
    live, cached = _both(store, [ns(later)])
    assert live == cached and live["/day-count"][""] == [74.0]
    # Several instants (the preview's path) agree as well.
    points = [ns(later - timedelta(hours=k)) for k in range(6, -1, -1)]
    live, cached = _both(store, points)
    assert live == cached
