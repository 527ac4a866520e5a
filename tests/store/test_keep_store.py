"""Pins and holds data layer (tracelake.archiver.keep) on both stores (the ``store`` fixture of
tests/store/conftest.py: chdb and ClickHouse over HTTP)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from otlp_spans import GENAI_CHAT, new_trace_id, request, span

from tracelake.archiver import keep
from tracelake.query.filters import FilterError
from tracelake.store import Store
from tracelake.store.otlp import length_delimited


def _trace(store: Store, *, user: str = "", session: str = "", child: str = "chat", attrs: dict | None = None,
           project: str = "") -> str:
    tid = new_trace_id()
    root_attrs = {k: v for k, v in (("user.id", user), ("session.id", session)) if v}
    root = span("agent run", tid, attrs=root_attrs)
    kid = span(child, tid, parent=root["span_id"], attrs={**GENAI_CHAT, **(attrs or {}), **root_attrs})
    resource = {"tracelake.project": project} if project else None
    store.insert_otlp("otel_traces", length_delimited([request([root, kid], resource=resource).SerializeToString()]))
    return tid.hex()


def test_pin_unpin_keeps_history(store):
    tid = new_trace_id().hex()
    other = new_trace_id().hex()
    until = datetime.now(timezone.utc) + timedelta(days=30)
    got = keep.pin(store, tid, until=until, actor="alice", reason="incident 7")
    assert got.trace_id == tid and got.actor == "alice" and got.reason == "incident 7"
    assert abs((got.until - until).total_seconds()) < 0.01
    keep.pin(store, other, until=None, actor="bob")
    assert keep.pinned_until(store, [tid, other, new_trace_id().hex()]).keys() == {tid, other}
    assert keep.pinned_until(store, [other]) == {other: None}
    assert {p.trace_id for p in keep.list_pins(store)} == {tid, other}
    assert store.query_arrow(f"SELECT count() AS n FROM ({keep.PINNED_TRACES_SQL})").to_pylist()[0]["n"] == 2

    assert keep.unpin(store, tid, actor="carol") is True
    assert keep.unpin(store, tid, actor="carol") is False  # nothing active: nothing written
    assert keep.pinned_until(store, [tid, other]) == {other: None}
    history = keep.pin_history(store, tid)
    assert [(h["action"], h["actor"]) for h in history] == [("pin", "alice"), ("unpin", "carol")]
    # Pin again: active again, the history grows.
    keep.pin(store, tid, until=None, actor="dave", reason="again")
    assert keep.pinned_until(store, [tid]) == {tid: None}
    assert [h["actor"] for h in keep.pin_history(store, tid)] == ["alice", "carol", "dave"]


def test_expired_pin_is_not_active(store):
    tid = new_trace_id().hex()
    keep.pin(store, tid, until=datetime.now(timezone.utc) + timedelta(days=1), actor="a")
    assert keep.pinned_until(store, [tid])
    # A pin whose until has passed (as seen by a run at a later clock) is not active.
    later = int((datetime.now(timezone.utc) + timedelta(days=2)).timestamp() * 1000)
    sql = keep.pinned_sql("{now:Int64}")
    assert store.query_arrow(f"SELECT count() AS n FROM ({sql})", {"now": later}).to_pylist()[0]["n"] == 0


def test_bad_pin_input_is_refused_and_nothing_written(store):
    with pytest.raises(keep.KeepError, match="hexadecimal"):
        keep.pin(store, "not-a-trace'); DROP TABLE x", until=None, actor="a")
    with pytest.raises(keep.KeepError, match="future"):
        keep.pin(store, "ab" * 16, until=datetime.now(timezone.utc) - timedelta(seconds=5), actor="a")
    with pytest.raises(keep.KeepError, match="actor"):
        keep.pin(store, "ab" * 16, until=None, actor="  ")
    assert store.query_arrow("SELECT count() AS n FROM retention_pins").to_pylist()[0]["n"] == 0


def test_holds_create_release_list(store):
    h = keep.create_hold(store, "case 2026-114", "user:alice", "litigation <b>hold</b>", actor="legal")
    assert h.active and h.actor == "legal" and h.filter == "user:alice"
    keep.create_hold(store, "sess", "session:s-1 OR span:retrieve", "audit", actor="ops")
    names = [x.name for x in keep.list_holds(store)]
    assert set(names) == {"case 2026-114", "sess"}
    released = keep.release_hold(store, "sess", actor="ops2")
    assert released is not None and released.released_by == "ops2" and not released.active
    assert keep.release_hold(store, "sess", actor="ops2") is None
    assert keep.release_hold(store, "nope", actor="ops2") is None
    holds = {x.name: x for x in keep.list_holds(store)}
    assert holds["sess"].released is not None and holds["sess"].released_by == "ops2"
    assert holds["sess"].actor == "ops" and holds["case 2026-114"].active
    assert [x.name for x in keep.active_holds(store)] == ["case 2026-114"]
    assert keep.list_holds(store)[0].name == "case 2026-114"  # active first
    # Names are never reused, even after release.
    with pytest.raises(keep.KeepError, match="already exists"):
        keep.create_hold(store, "sess", "user:x", "r", actor="ops")
    rows = store.query_arrow("SELECT Name, Active, Actor FROM retention_holds ORDER BY Version").to_pylist()
    assert [(r["Name"], r["Active"], r["Actor"]) for r in rows] == [
        ("case 2026-114", 1, "legal"), ("sess", 1, "ops"), ("sess", 0, "ops2")]


@pytest.mark.parametrize("text, message", [
    ("user:", "missing value"),
    ("bogus:1", "unknown field"),
    ("(user:a", r"missing '\)'"),
    ("duration>abc", "expected a duration"),
    ("", "needs a filter"),
])
def test_bad_hold_filter_names_the_problem_and_creates_nothing(store, text, message):
    with pytest.raises(FilterError, match=message):
        keep.create_hold(store, "h1", text, "reason", actor="a")
    assert keep.list_holds(store) == []


def test_bad_hold_name_or_reason(store):
    for name in ("", "x" * 101, "a/b", "<script>"):
        with pytest.raises(keep.KeepError, match="hold name"):
            keep.create_hold(store, name, "user:a", "r", actor="a")
    with pytest.raises(keep.KeepError, match="reason"):
        keep.create_hold(store, "ok", "user:a", "  ", actor="a")
    assert keep.list_holds(store) == []


def test_holds_covering_trace_and_span_terms(store):
    alice = _trace(store, user="alice")
    bob = _trace(store, user="bob", child="retrieve docs")
    carol = _trace(store, user="carol", attrs={"ticket": "T-9"})
    keep.create_hold(store, "alice", "user:alice", "r", actor="a")
    keep.create_hold(store, "retrieval", "span:\"retrieve docs\"", "r", actor="a")
    keep.create_hold(store, "ticket", "attr.ticket:T-9 OR user:alice", "r", actor="a")
    keep.create_hold(store, "released", "user:bob", "r", actor="a")
    keep.release_hold(store, "released", actor="a")
    got = keep.holds_covering(store, [alice, bob, carol, new_trace_id().hex(), "zz"])
    assert got == {"alice": [alice], "retrieval": [bob], "ticket": sorted([alice, carol])}
    assert keep.holds_covering(store, [new_trace_id().hex()]) == {}
    assert keep.holds_covering(store, []) == {}


def test_holds_covering_pinned_term(store):
    a, b = _trace(store, user="u1"), _trace(store, user="u2")
    keep.pin(store, a, until=None, actor="x")
    keep.create_hold(store, "pinned", "pinned:true", "keep what is pinned", actor="a")
    assert keep.holds_covering(store, [a, b]) == {"pinned": [a]}


def test_project_hold_covers_only_its_project_and_global_covers_all(store):
    a, b = _trace(store, user="alice", project="A"), _trace(store, user="alice", project="B")
    keep.create_hold(store, "a-only", "user:alice", "case of A", actor="admin", project="A")
    assert keep.holds_covering(store, [a, b]) == {"a-only": [a]}
    keep.create_hold(store, "everywhere", "user:alice", "case of all", actor="admin")
    assert keep.holds_covering(store, [a, b]) == {"a-only": [a], "everywhere": sorted([a, b])}
    holds = {h.name: h for h in keep.list_holds(store)}
    assert holds["a-only"].project == "A" and holds["everywhere"].project == ""
    assert holds["a-only"].to_dict()["project"] == "A" and holds["everywhere"].to_dict()["project"] is None
    rows = store.query_arrow("SELECT Name, Project FROM retention_holds ORDER BY Name").to_pylist()
    assert rows == [{"Name": "a-only", "Project": "A"}, {"Name": "everywhere", "Project": ""}]
    # Released, the project's hold keeps its project in its history row.
    assert keep.release_hold(store, "a-only", actor="admin").project == "A"
    assert keep.holds_covering(store, [a, b]) == {"everywhere": sorted([a, b])}
    assert store.query_arrow("SELECT count() AS n FROM retention_holds WHERE Project = 'A'").to_pylist()[0]["n"] == 2


def test_a_project_viewer_sees_changes_and_is_told_only_its_own(store):
    b = _trace(store, user="bob", project="B")
    keep.create_hold(store, "of-a", "user:alice", "secret reason of A", actor="admin", project="A")
    keep.create_hold(store, "global", "user:bob", "secret reason of all", actor="admin")
    mine = keep.create_hold(store, "of-b", "user:bob", "reason of B", actor="ops-b", viewer="B")
    assert mine.project == "B"  # a project's caller makes holds of its project
    # B sees its own in full, the global one without filter or reason, not A's at all.
    seen = {h.name: h.to_dict() for h in keep.list_holds(store, "B")}
    assert set(seen) == {"global", "of-b"}
    assert seen["of-b"]["filter"] == "user:bob" and seen["of-b"]["reason"] == "reason of B"
    assert seen["global"]["filter"] is None and seen["global"]["reason"] is None
    assert seen["global"]["details"] == keep.GLOBAL_DETAILS and seen["global"]["actor"] == "admin"
    assert "secret" not in repr(keep.list_holds(store, "B"))
    assert {h.name for h in keep.list_holds(store)} == {"of-a", "global", "of-b"}  # an admin sees all
    # B may not make holds for A nor for everyone.
    with pytest.raises(keep.HoldForbidden, match="project 'B'"):
        keep.create_hold(store, "b-for-a", "user:x", "r", actor="ops-b", project="A", viewer="B")
    # A used name is refused without saying whose it is.
    with pytest.raises(keep.KeepError, match="across all projects") as err:
        keep.create_hold(store, "of-a", "user:x", "r", actor="ops-b", viewer="B")
    assert "'A'" not in str(err.value)
    # Release: A's hold is as if it did not exist; the global one is refused; its own works.
    assert keep.release_hold(store, "of-a", actor="ops-b", viewer="B") is None
    with pytest.raises(keep.HoldForbidden, match="only an admin"):
        keep.release_hold(store, "global", actor="ops-b", viewer="B")
    assert {h.name for h in keep.active_holds(store)} == {"of-a", "global", "of-b"}
    # Erasure's view: its own hold by name, the global one only as an admin's.
    assert keep.holds_covering(store, [b], viewer="B") == {keep.ADMIN_HOLD: [b], "of-b": [b]}
    assert keep.holds_covering(store, [b]) == {"global": [b], "of-b": [b]}
    assert keep.release_hold(store, "of-b", actor="ops-b", viewer="B") is not None
    with pytest.raises(keep.KeepError, match="choose another name"):
        keep.create_hold(store, "A hold made by an admin", "user:x", "r", actor="a")
    with pytest.raises(keep.KeepError, match="not a project name"):
        keep.create_hold(store, "bad-project", "user:x", "r", actor="a", project="no'quote")


def test_migration_keeps_an_existing_hold_global(store):
    """A store as it was before migration 25: its hold keeps covering every project's traces."""
    from tracelake.store.keep_schema import HOLDS
    from tracelake.store.migrate import applied_versions, migrate

    store.execute("DROP TABLE retention_holds")
    store.execute(HOLDS)  # migration 21's table, without Project
    store.execute("INSERT INTO retention_holds (Name, Version, Active, Filter, Reason, Actor, Time) "
                  "VALUES ('old', 1, 1, 'user:alice', 'made before projects', 'legal', now64(3))")
    store.execute("DELETE FROM schema_migrations WHERE Version = 25")
    assert 25 not in applied_versions(store)
    assert migrate(store) == [25]
    a, b = _trace(store, user="alice", project="A"), _trace(store, user="alice", project="B")
    (old,) = keep.list_holds(store)
    assert old.name == "old" and old.project == "" and old.active
    assert keep.holds_covering(store, [a, b]) == {"old": sorted([a, b])}
    assert keep.holds_covering(store, [a], viewer="A") == {keep.ADMIN_HOLD: [a]}
