"""Restore on the embedded store: archived traces come back hot, pinned, never duplicated; killed at
every step, each span is visible in exactly one tier, and a rerun completes it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from arx_helpers import copy_store
from ers_helpers import cli, seeded_template, tool

from tracelake.archiver.restore import FAIL_POINTS


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return seeded_template(tmp_path_factory.mktemp("rst"))


def _restore(data: Path, *args: str, env: dict[str, str] | None = None):
    return cli("archiver", "restore", "--data-dir", str(data), "--json", *args, env=env)


def _check_one_tier(world: dict[str, Any], snap: dict[str, Any]) -> None:
    before = world["before"]
    hot, archive = set(snap["hot_visible"]), set(snap["archive_visible"])
    assert not hot & archive, f"visible in both tiers: {sorted(hot & archive)[:3]}"
    assert snap["archive_rows"] == len(archive)  # no span twice in the archive
    assert hot | archive == set(before["hot_visible"]) | set(before["archive_visible"])  # nothing lost


def _check_restored(world: dict[str, Any], snap: dict[str, Any], restored: set[str]) -> None:
    _check_one_tier(world, snap)
    before = world["before"]
    moved = {p for p in before["archive_visible"] if p.split(":")[0] in restored}
    assert moved and moved <= set(snap["hot_visible"])
    assert not {p for p in snap["archive_visible"] if p.split(":")[0] in restored}
    assert not restored & set(snap["archived_traces"])
    assert snap["hot_rows"] == len(snap["hot"])  # no span stored twice in the hot table
    assert restored <= set(snap["summary_traces"])


def test_restore_one_trace_pins_it_and_removes_the_archive_copy(world):
    data = copy_store(world["template"], world["root"] / "one")
    tid = sorted(world["w"].others_archived)[0]
    out = _restore(data, tid, "--pin-for", "3d")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["trace_ids"] == [tid] and doc["state"] == "done" and doc["spans_restored"] == world["w"].spans[tid]
    _check_restored(world, tool("tiers", data), {tid})
    pins = {p["trace_id"]: p for p in tool("pins", data)["pins"]}
    assert pins[tid]["reason"] == "restored" and pins[tid]["until"]
    # Restoring it again: it is no longer archived.
    again = _restore(data, tid)
    assert again.returncode == 1 and "not in the archive" in again.stderr
    assert [(a["Action"], a["Outcome"]) for a in tool("tiers", data)["audit"]] == [("restore", "ok"), ("restore", "refused")]


def test_restore_refuses_bad_input_and_changes_nothing(world):
    data = copy_store(world["template"], world["root"] / "bad")
    for args, message in ((["nothex!"], "not a trace id"), (["ab" * 16], "not in the archive"),
                          (["--filter", "nosuchfield:1"], "filter does not parse"),
                          (["--filter", "user:nobody"], "no archived trace matches"),
                          ([sorted(world["w"].others_archived)[0], "--pin-for", "soon"], "--pin-for")):
        out = _restore(data, *args)
        assert out.returncode in (1, 2) and message in out.stderr, (args, out.stderr)
    snap = tool("tiers", data)
    assert snap["hot"] == world["before"]["hot"] and snap["archive_visible"] == world["before"]["archive_visible"]
    assert snap["requests"] == []


@pytest.mark.parametrize("point", FAIL_POINTS)
def test_restore_killed_at_each_step_keeps_one_tier_and_completes(world, point):
    data = copy_store(world["template"], world["root"] / f"kill-{point}")
    restored = set(world["w"].victim_archived)
    out = _restore(data, "--filter", "session:victim-s2", env={"TRACELAKE_ARCHIVER_FAIL_AT": f"{point}:kill"})
    assert out.returncode == -9, out.stderr
    _check_one_tier(world, tool("tiers", data))
    # The next restore call finishes the cut-off one first (here it restores another trace too).
    other = sorted(world["w"].others_archived)[0]
    again = _restore(data, other)
    if point == "restore_after_targets":
        # killed before the request was recorded: nothing changed; ask again
        assert again.returncode == 0, again.stderr
        third = _restore(data, "--filter", "session:victim-s2")
        assert third.returncode == 0, third.stderr
    else:
        assert again.returncode == 0, again.stderr
    snap = tool("tiers", data)
    _check_restored(world, snap, restored | {other})
    assert all(r["State"] == "done" for r in snap["requests"])


def test_server_start_finishes_an_interrupted_restore(world):
    """Killed after the copy, then no other restore call: the next server start finishes it."""
    from server_process import start_server, wait_until

    data = copy_store(world["template"], world["root"] / "resume-at-start")
    tid = sorted(world["w"].others_archived)[0]
    killed = _restore(data, tid, env={"TRACELAKE_ARCHIVER_FAIL_AT": "restore_after_copied:kill"})
    assert killed.returncode == -9, killed.stderr
    assert [r["State"] for r in tool("tiers", data)["requests"]] == ["copied"]
    with start_server(data) as server:
        wait_until(lambda: server.sql("SELECT State FROM retention_request_state") == [["done"]],
                   "the interrupted restore is done", timeout=180, every=0.5)
    snap = tool("tiers", data)
    _check_restored(world, snap, {tid})
    assert [(a["Action"], a["Actor"]) for a in snap["audit"]] == [("restore", "tracelake (resumed at start)")]
