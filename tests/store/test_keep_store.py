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


def _trace(store: Store, *, user: str = "", session: str = "", child: str = "chat", attrs: dict | None = None) -> str:
    tid = new_trace_id()
    root_attrs = {k: v for k, v in (("user.id", user), ("session.id", session)) if v}
    root = span("agent run", tid, attrs=root_attrs)
    kid = span(child, tid, parent=root["span_id"], attrs={**GENAI_CHAT, **(attrs or {}), **root_attrs})
    store.insert_otlp("otel_traces", length_delimited([request([root, kid]).SerializeToString()]))
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
    assert keep.release_hold(store, "sess", actor="ops2") is True
    assert keep.release_hold(store, "sess", actor="ops2") is False
    assert keep.release_hold(store, "nope", actor="ops2") is False
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
