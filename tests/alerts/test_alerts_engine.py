"""Evaluation, states and messages over a real store, with an explicit clock (``evaluate(now)``)
and a webhook receiver in the test process: no sleeps."""
from __future__ import annotations

from datetime import timedelta

from alerts_helpers import T0, engine, insert, traces

from tracelake.alerts import delivery, destinations, history, silences
from tracelake.alerts.delivery import deliver_due, delivery_log

MIN = timedelta(minutes=1)


def _hook(store, name, receiver, kind="webhook"):
    destinations.put(store, name=name, kind=kind, secret=receiver.url, project="", actor="test", now=T0)


def _sent(store, e, now, rule):
    """This rule's attempts among those due at ``now`` (other tests' messages may be due too)."""
    return [a for a in deliver_due(store, e.config, now) if a["Rule"] == rule]


def _run(e, store, start, minutes):
    """One round a minute, messages sent after each, as the schedule does."""
    rounds = []
    for k in range(minutes):
        now = start + k * MIN
        rounds.append(e.evaluate(now))
        deliver_due(store, e.config, now)
    return rounds


def test_a_spike_of_errors_sends_exactly_one_firing_and_one_resolved(store, receiver):
    day = T0 + timedelta(days=1)
    # 10 minutes of calm traffic, a 3-minute spike (half the traces fail), calm again.
    insert(store, traces(day, 600, service="spike-svc"))
    insert(store, traces(day + 10 * MIN, 180, errors=90, service="spike-svc", every=timedelta(milliseconds=997)))
    insert(store, traces(day + 13 * MIN, 600, service="spike-svc"))
    _hook(store, "spike-hook", receiver)
    e = engine(store, """rules:
  - name: spike
    filter: service:spike-svc
    aggregate: error_rate
    window: 2m
    threshold: 10%
    destinations: [spike-hook]
""")
    rounds = _run(e, store, day + 2 * MIN, 20)
    assert receiver.kinds() == ["firing", "resolved"], receiver.bodies
    firing, resolved = receiver.bodies
    assert firing["rule"]["name"] == "spike" and firing["value"] > 0.1 and firing["state"] == "firing"
    assert resolved["value"] < 0.1 and resolved["state"] == "resolved"
    # It fired at the first round whose window held the spike, and the link opens the failed traces of that window.
    fired_at = next(r.at for r in rounds if r.changes)
    assert day + 10 * MIN < fired_at <= day + 11 * MIN
    assert "status%3Aerror" in firing["links"]["traces"] and "spike-svc" in firing["links"]["traces"]
    changes = [(ev["to"], ev["rule"]) for ev in history.events(store, rule="spike")]
    assert changes == [("ok", "spike"), ("firing", "spike")]


def test_hysteresis_holds_on_a_noisy_series(store, receiver):
    day = T0 + timedelta(days=2)
    # Error rate per minute alternating around the threshold (12 %, 8 %, 12 %, 8 % ...) after a first spike of 30 %.
    insert(store, traces(day, 60, errors=18, service="noisy-svc"))
    for k in range(1, 16):
        insert(store, traces(day + k * MIN, 60, errors=7 if k % 2 else 5, service="noisy-svc"))
    _hook(store, "noisy-hook", receiver)
    rules = """rules:
  - name: noisy{suffix}
    filter: service:noisy-svc
    aggregate: error_rate
    window: 1m
    threshold: 10%
    {clear}
    destinations: [noisy-hook]
"""
    steady = engine(store, rules.format(suffix="", clear="clear: 3%"))
    _run(steady, store, day + MIN, 16)
    assert receiver.kinds() == ["firing"]  # fired once and held: 8 % is not back under 3 %
    # The same series without a clear level flaps: the rule above is what stops it.
    receiver.bodies.clear()
    flapping = engine(store, rules.format(suffix="-bare", clear=""))
    _run(flapping, store, day + MIN, 16)
    assert receiver.kinds().count("firing") >= 5 and receiver.kinds().count("resolved") >= 5


def test_for_needs_consecutive_evaluations(store, receiver):
    day = T0 + timedelta(days=3)
    insert(store, traces(day, 60, errors=30, service="blip-svc"))  # one bad minute
    insert(store, traces(day + MIN, 120, service="blip-svc"))
    insert(store, traces(day + 3 * MIN, 120, errors=120, service="blip-svc"))  # two bad minutes
    _hook(store, "blip-hook", receiver)
    e = engine(store, """rules:
  - name: blip
    filter: service:blip-svc
    aggregate: error_rate
    window: 1m
    threshold: 10%
    for: 2
    destinations: [blip-hook]
""")
    rounds = _run(e, store, day + MIN, 6)
    assert receiver.kinds() == ["firing"]
    assert [r.at for r in rounds if r.changes] == [day + 5 * MIN]  # the second bad minute, not the blip


def test_silences_suppress_and_what_still_holds_is_told_after(store, receiver):
    day = T0 + timedelta(days=4)
    insert(store, traces(day, 600, errors=300, service="mute-svc"))
    _hook(store, "mute-hook", receiver)
    e = engine(store, """rules:
  - name: mute
    filter: service:mute-svc
    aggregate: error_rate
    window: 2m
    threshold: 10%
    destinations: [mute-hook]
""")
    s = silences.create(store, rule="mute", group="", project="", ends_at=day + 5 * MIN, reason="deploy <b>x</b>",
                        actor="test", now=day)
    rounds = _run(e, store, day + 2 * MIN, 3)
    assert receiver.kinds() == []
    assert rounds[0].changes and rounds[0].changes[0].silenced  # the change is in the history, marked silenced
    assert history.events(store, rule="mute")[0]["silenced"] is True
    silences.lift(store, s.id, None)
    _run(e, store, day + 5 * MIN, 1)
    assert receiver.kinds() == ["firing"]  # still firing when the silence ended: told once


def test_a_receiver_that_is_down_gets_the_message_when_it_is_back(store, receiver):
    day = T0 + timedelta(days=5)
    insert(store, traces(day, 120, errors=60, service="down-svc"))
    _hook(store, "down-hook", receiver)
    receiver.stop()  # the port is closed: connections are refused
    e = engine(store, """rules:
  - name: down
    filter: service:down-svc
    aggregate: error_rate
    window: 2m
    threshold: 10%
    destinations: [down-hook]
""", retry_base_s=10, retry_attempts=5)
    now = day + 2 * MIN
    e.evaluate(now)
    first = _sent(store, e, now, "down")
    assert [a["Outcome"] for a in first] == ["retry"]
    assert _sent(store, e, now + timedelta(seconds=9), "down") == []  # not before its backoff
    second = _sent(store, e, now + timedelta(seconds=10), "down")
    assert [a["Outcome"] for a in second] == ["retry"]  # still down: the next wait doubles
    receiver.start()
    assert _sent(store, e, now + timedelta(seconds=29), "down") == []
    third = _sent(store, e, now + timedelta(seconds=30), "down")
    assert [a["Outcome"] for a in third] == ["delivered"]
    assert receiver.kinds() == ["firing"]
    log = delivery_log(store, rule="down")
    assert [(r["attempt"], r["outcome"]) for r in log] == [(3, "delivered"), (2, "retry"), (1, "retry")]
    assert log[-1]["error"] == "ConnectError" and log[0]["http_status"] == 200
    assert all(receiver.url not in str(r) for r in log)  # the URL (a secret) is never in the log
    assert [m for m in delivery.due(store, now + timedelta(days=1)) if m.rule == "down"] == []  # nothing left to send


def test_a_receiver_answering_errors_is_retried_then_given_up(store, receiver):
    day = T0 + timedelta(days=6)
    insert(store, traces(day, 120, errors=60, service="gone-svc"))
    _hook(store, "gone-hook", receiver)
    receiver.status = 503
    e = engine(store, """rules:
  - name: gone
    filter: service:gone-svc
    aggregate: error_rate
    window: 2m
    threshold: 10%
    destinations: [gone-hook]
""", retry_base_s=1, retry_attempts=3)
    now = day + 2 * MIN
    e.evaluate(now)
    outcomes = [a["Outcome"] for t in (0, 1, 3, 10) for a in _sent(store, e, now + timedelta(seconds=t), "gone")]
    assert outcomes == ["retry", "retry", "gave_up"]
    assert [r["http_status"] for r in delivery_log(store, rule="gone")] == [503, 503, 503]


def test_grouped_rules_fire_per_group(store, receiver):
    day = T0 + timedelta(days=7)
    for user, errors in (("alice", 20), ("bob", 0), ("carol", 15)):
        insert(store, traces(day, 40, errors=errors, service="group-svc", attrs={"user.id": user}))
    _hook(store, "group-hook", receiver)
    e = engine(store, """rules:
  - name: per-user
    filter: service:group-svc
    aggregate: error_rate
    window: 5m
    threshold: 25%
    group_by: user
    destinations: [group-hook]
""")
    r = e.evaluate(day + 2 * MIN)
    deliver_due(store, e.config, day + 2 * MIN)
    assert sorted((c.group, c.to_state) for c in r.changes) == [("alice", "firing"), ("carol", "firing")]
    assert sorted(b["group"] for b in receiver.bodies) == ["alice", "carol"]
    assert all(b["kind"] == "firing" for b in receiver.bodies)
    # Each group resolves on its own: alice's traffic recovers, carol's does not.
    insert(store, traces(day + 6 * MIN, 40, service="group-svc", attrs={"user.id": "alice"}))
    insert(store, traces(day + 6 * MIN, 40, errors=30, service="group-svc", attrs={"user.id": "carol"}))
    r = e.evaluate(day + 8 * MIN)
    assert [(c.group, c.to_state) for c in r.changes] == [("alice", "ok")]


def test_a_firing_alert_reminds_at_its_interval(store, receiver):
    day = T0 + timedelta(days=8)
    insert(store, traces(day, 3600, errors=3600, every=timedelta(seconds=1), service="remind-svc"))
    _hook(store, "remind-hook", receiver)
    e = engine(store, """rules:
  - name: remind
    filter: service:remind-svc
    aggregate: count
    window: 5m
    threshold: 100
    reminder: 10m
    destinations: [remind-hook]
""")
    for k in range(0, 26, 5):
        now = day + (5 + k) * MIN
        e.evaluate(now)
        deliver_due(store, e.config, now)
    assert receiver.kinds() == ["firing", "reminder", "reminder"]  # at 5, 15 and 25 minutes


def test_states_survive_a_restart_of_the_engine(store, receiver):
    day = T0 + timedelta(days=9)
    insert(store, traces(day, 120, errors=60, service="restart-svc"))
    _hook(store, "restart-hook", receiver)
    rules = """rules:
  - name: restart
    filter: service:restart-svc
    aggregate: error_rate
    window: 2m
    threshold: 10%
    destinations: [restart-hook]
"""
    engine(store, rules).evaluate(day + 2 * MIN)
    again = engine(store, rules)  # a new process: states come from the store
    again.evaluate(day + 2 * MIN + timedelta(seconds=30))
    deliver_due(store, again.config, day + 3 * MIN)
    assert receiver.kinds() == ["firing"]


def test_a_silence_covers_its_own_project_group_and_rule_only():
    from tracelake.alerts.silences import Silence

    s = Silence("id", "errors", "alice", "A", T0, T0 + MIN, "r", "ops")
    assert s.covers("errors", "alice", "A")
    assert not s.covers("errors", "alice", "B") and not s.covers("errors", "bob", "A")
    assert not s.covers("latency", "alice", "A")
    every = Silence("id", "*", "", "A", T0, T0 + MIN, "r", "ops")
    assert every.covers("latency", "bob", "A") and not every.covers("latency", "bob", "B")
    assert s.active(T0) and not s.active(T0 + MIN)


def test_a_rule_cannot_send_to_another_projects_destination(store, receiver):
    day = T0 + timedelta(days=10)
    insert(store, traces(day, 60, errors=30, service="cross-svc", project="alpha"))
    destinations.put(store, name="beta-hook", kind="webhook", secret=receiver.url, project="beta", actor="t", now=day)
    e = engine(store, """rules:
  - name: cross
    project: alpha
    filter: service:cross-svc
    aggregate: error_rate
    window: 2m
    threshold: 10%
    destinations: [beta-hook]
""")
    assert e.evaluate(day + MIN).changes
    (attempt,) = _sent(store, e, day + MIN, "cross")
    assert attempt["Outcome"] == "gave_up" and "another project" in attempt["Error"]
    assert receiver.bodies == []
