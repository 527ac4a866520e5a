"""Stored retention rules (tracelake.archiver.policy_store), on the embedded store and on a ClickHouse
server: versions numbered in order, the YAML kept byte for byte, stale saves and bad YAML refused
with nothing stored, and the race between two processes settled with exactly one winner."""
from __future__ import annotations

import pytest

from tracelake.archiver import policy_store
from tracelake.archiver.policy import PolicyError
from tracelake.archiver.policy_store import StaleVersion

V1 = """\
rules:
  - name: default   # keep a week
    hot: 7d
    archive: 90d
"""
# Quotes, backslashes, tabs in comments and non-ASCII: what the editor sends must come back as is.
V2 = """\
rules:
  - name: errors
    match: 'status:error AND "it''s \\\\ bad"'   # élan \t tab
    hot: 30d
    archive: forever
  - name: default
    hot: 3d
    archive: 30d
"""


def test_versions_are_numbered_and_kept_byte_for_byte(store):
    assert policy_store.current(store) is None and policy_store.history(store) == []
    first = policy_store.save(store, V1, actor="local", role="local", comment="first", expected=0)
    assert first.version == 1 and first.yaml == V1 and first.comment == "first"
    second = policy_store.save(store, V2, actor="k_abc", role="admin", comment="errors longer", expected=1)
    assert second.version == 2
    current = policy_store.current(store)
    assert current is not None and current.version == 2 and current.yaml == V2 and current.actor == "k_abc"
    assert [v.version for v in policy_store.history(store)] == [2, 1]
    assert policy_store.get(store, 1).yaml == V1
    assert policy_store.get(store, 3) is None
    assert second.applied_at >= first.applied_at


def test_a_stale_save_is_refused_and_nothing_is_stored(store):
    policy_store.save(store, V1, actor="a", role="admin", expected=0)
    policy_store.save(store, V2, actor="b", role="admin", expected=1)
    with pytest.raises(StaleVersion) as caught:
        policy_store.save(store, V1, actor="c", role="admin", expected=1)  # previewed against version 1
    assert caught.value.current.version == 2 and "applied by b" in str(caught.value)
    with pytest.raises(StaleVersion):
        policy_store.save(store, V1, actor="c", role="admin", expected=0)
    assert [v.version for v in policy_store.history(store)] == [2, 1]


def test_bad_yaml_is_refused_with_line_and_field_and_nothing_is_stored(store):
    with pytest.raises(PolicyError, match=r"line 4, rules\[0\] \(default\)\.archive: bad duration"):
        policy_store.save(store, V1.replace("archive: 90d", "archive: 90 days"), actor="a", role="admin", expected=0)
    with pytest.raises(PolicyError, match="larger than"):
        policy_store.save(store, V1 + "#" * (policy_store.MAX_YAML_BYTES + 1), actor="a", role="admin", expected=0)
    assert policy_store.current(store) is None


def test_two_processes_saving_the_same_number_leave_exactly_one(store):
    """The insert of another process lands between our check and our insert: we withdraw."""
    policy_store.save(store, V1, actor="a", role="admin", expected=0)
    # What another process did meanwhile: version 2 is already there (inserted first).
    store.execute(f"INSERT INTO {policy_store.TABLE} (Version, Id, Yaml, Sha256, Actor, ActorRole, AppliedAt, Comment) "
                  "VALUES (2, 'other', 'rules: []', '', 'other-process', 'admin', now64(9, 'UTC') - 1, '')")
    real_current = policy_store.current

    calls = []

    def stale_view(s):  # our check ran before the other insert: it still saw version 1
        calls.append(1)
        return policy_store.get(s, 1) if len(calls) == 1 else real_current(s)

    policy_store.current = stale_view
    try:
        with pytest.raises(StaleVersion) as caught:
            policy_store.save(store, V2, actor="me", role="admin", expected=1)
    finally:
        policy_store.current = real_current
    assert caught.value.current.actor == "other-process"
    rows = store.query_arrow(f"SELECT Actor FROM {policy_store.TABLE} WHERE Version = 2").to_pylist()
    assert [r["Actor"] for r in rows] == ["other-process"]  # ours withdrawn
