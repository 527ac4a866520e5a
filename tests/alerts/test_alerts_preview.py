"""The preview replays the past with evaluation's own query and state machine: what it says a rule
would have done is what evaluation at those instants then does."""
from __future__ import annotations

import random
from datetime import timedelta

from alerts_helpers import T0, engine, insert, traces

from tracelake.alerts.preview import instants, preview
from tracelake.alerts.rulefile import parse_rules
from tracelake.ui.queries.dashboard import trace_rows

MIN = timedelta(minutes=1)
RULES = """rules:
  - name: pv-errors
    filter: service:pv-svc
    aggregate: error_rate
    window: 3m
    threshold: 20%
    clear: 10%
    for: 2
    destinations: [nowhere]
  - name: pv-users
    filter: service:pv-svc
    aggregate: count
    window: 5m
    threshold: 40
    group_by: user
  - name: pv-slow
    filter: service:pv-svc
    aggregate: p95_latency
    window: 10m
    threshold: 150
"""


def test_preview_matches_what_evaluation_then_does(store):
    day = T0 + timedelta(days=20)
    rnd = random.Random(7)
    # An hour of traffic whose error rate, volume per user and latency wander over and under the thresholds.
    requests = []
    for k in range(60):
        bad = rnd.choice((0, 2, 5, 12, 20))
        user = rnd.choice(("u1", "u2", "u3"))
        requests += traces(day + k * MIN, 20 + rnd.randrange(30), errors=bad, service="pv-svc",
                           every=timedelta(seconds=2), attrs={"user.id": user},
                           duration_ms=rnd.choice((50, 100, 200, 400)))
    insert(store, requests)
    end = day + 60 * MIN
    rules = parse_rules(RULES, "preview.yaml")
    shown = preview(store, rules, trace_rows, end=end, span=timedelta(hours=1), every=MIN)
    assert shown["step_s"] == 60 and shown["points"] == 60
    by_rule = {r["rule"]["name"]: r for r in shown["rules"]}
    assert all(r["error"] is None for r in by_rule.values())
    assert by_rule["pv-errors"]["firings"] >= 2 and by_rule["pv-users"]["groups_fired"] >= 2  # the data makes changes

    e = engine(store, RULES)
    points, _ = instants(end, timedelta(hours=1), MIN)
    done = []
    for p in points:
        for c in e.evaluate(day.fromtimestamp(p / 1e9, tz=day.tzinfo)).changes:
            done.append((c.rule.name, c.at.isoformat(), c.group if c.rule.group_by else None, c.to_state))
    said = [(name, c["at"], c["group"], c["to"]) for name, r in by_rule.items() for c in r["changes"]]
    assert sorted(said) == sorted(done)
    assert by_rule["pv-errors"]["messages"] == by_rule["pv-errors"]["firings"] + by_rule["pv-errors"]["resolutions"]


def test_a_long_span_is_replayed_at_a_coarser_step():
    points, step = instants(T0, timedelta(days=7), MIN)
    assert step == 300 and len(points) == 2016 and points[-1] == int(T0.timestamp()) * 10**9
