"""A window that reaches the archive counts archived traces too, each trace once: the values are
the same before and after the archiver moves the older traces, read live or through the cache
(filled while they were still hot), with a span-level filter that reads each tier's spans."""
from __future__ import annotations

import time

import pytest

from alerts_helpers import insert, traces

from tracelake.alerts import cache
from tracelake.alerts.query import values
from tracelake.alerts.rulefile import parse_rules
from tracelake.ui.queries.dashboard import trace_rows

HOUR = 3600 * 10**9
RULES = list(parse_rules("""rules:
  - name: week-count
    filter: service:tier-svc
    aggregate: count
    window: 7d
    threshold: 1
  - name: week-errors-in-handle
    filter: 'service:tier-svc span:handle'
    aggregate: error_rate
    window: 7d
    threshold: 10%
  - name: week-per-user
    filter: service:tier-svc
    aggregate: count
    window: 7d
    threshold: 1
    group_by: user
""", "tiers.yaml").rules)


@pytest.fixture(scope="module")
def tiered(tmp_path_factory):
    from datetime import datetime, timezone

    from server_process import fresh_store
    from tracelake.archiver.delta import ArchiveLocation
    from tracelake.archiver.policy import parse_policy
    from tracelake.archiver.service import Archiver
    from tracelake.store import open_store

    root = tmp_path_factory.mktemp("alerts-tiers")
    store = open_store(fresh_store(root / "data"))
    now = datetime.now(timezone.utc).replace(microsecond=0)
    old = datetime.fromtimestamp(now.timestamp() - 3 * 86400, tz=timezone.utc)
    recent = datetime.fromtimestamp(now.timestamp() - 5 * 3600, tz=timezone.utc)
    insert(store, traces(old, 20, errors=5, service="tier-svc", attrs={"user.id": "old-user"})
           + traces(recent, 10, errors=1, service="tier-svc", attrs={"user.id": "new-user"}))
    archiver = Archiver(store, parse_policy("rules:\n  - name: default\n    hot: 1d\n    archive: forever\n"),
                        ArchiveLocation.for_url((root / "objects").as_uri()))
    yield store, archiver
    archiver.release()
    store.close()


def test_archived_traces_count_once_whichever_tier_holds_them(tiered):
    store, archiver = tiered
    point = [time.time_ns() // HOUR * HOUR]
    before_live, _ = values(store, RULES, point, trace_rows, use_cache=False)
    before_cached, _ = values(store, RULES, point, trace_rows, use_cache=True)  # fills the cache while every trace is hot
    assert before_live == before_cached
    assert before_live["/week-count"][""] == [30.0]
    assert before_live["/week-errors-in-handle"][""] == [pytest.approx(6 / 30)]
    assert set(before_live["/week-per-user"]) == {"old-user", "new-user"}
    run = archiver.run_once().runs[-1]
    assert run.traces == 20, run  # the three-day-old traces left the hot tier
    assert store.query_arrow("SELECT count() AS n FROM trace_summary WHERE RootService = 'tier-svc'"
                             ).column("n")[0].as_py() < 30
    after_cached, _ = values(store, RULES, point, trace_rows, use_cache=True)  # cached while hot: not counted again from the archive
    after_live, _ = values(store, RULES, point, trace_rows, use_cache=False)
    assert after_live == before_live and after_cached == before_live
    cache.forget()  # filled again now that they are archived: read from the archive
    assert values(store, RULES, point, trace_rows, use_cache=True)[0] == before_live
