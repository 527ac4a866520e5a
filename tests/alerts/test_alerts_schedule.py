"""The schedule on the real clock: it evaluates at start and at its interval, sends the firing to
a receiver, and retries a receiver that was down as soon as its backoff ends (waits poll the
receiver, never sleep a fixed time)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from alerts_helpers import engine, insert, traces
from server_process import wait_until

from tracelake.alerts import destinations
from tracelake.alerts.delivery import delivery_log
from tracelake.alerts.service import Scheduler


def test_the_schedule_fires_and_retries_a_receiver_that_comes_back(store, receiver):
    now = datetime.now(timezone.utc)
    insert(store, traces(now - timedelta(seconds=40), 20, errors=10, service="sched-svc"))
    destinations.put(store, name="sched-hook", kind="webhook", secret=receiver.url, project="", actor="t", now=now)
    receiver.stop()  # down when the alert fires
    e = engine(store, """rules:
  - name: sched
    filter: service:sched-svc
    aggregate: error_rate
    window: 5m
    threshold: 10%
    destinations: [sched-hook]
""", every=timedelta(seconds=1), retry_base_s=0.5, retry_attempts=20)
    scheduler = Scheduler(e).start()
    try:
        wait_until(lambda: delivery_log(store, rule="sched"), "a first attempt", timeout=60)
        assert delivery_log(store, rule="sched")[-1]["error"] == "ConnectError"
        receiver.start()
        wait_until(lambda: receiver.kinds() == ["firing"], "the firing message after the receiver came back", timeout=60)
    finally:
        scheduler.stop()
    outcomes = [r["outcome"] for r in reversed(delivery_log(store, rule="sched"))]
    assert outcomes[0] == "retry" and outcomes[-1] == "delivered" and outcomes.count("delivered") == 1
    assert e.last is not None and e.last.rules == 1
