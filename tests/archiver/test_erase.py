"""Erasure on the embedded store with a local object store: checked from outside the product
(SQL over every content table, pyarrow over every Parquet file, raw bytes of every file), killed at
every step and rerun, refused with nothing changed on bad input."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from arx_helpers import copy_store
from ers_helpers import (CONTENT_MARK, SHARED_IMAGE, USER_MARK, VICTIM_ARCHIVED_IMAGE, VICTIM_IMAGE, cli,
                         files_holding, parquet_values_holding, seeded_template, sha, tool)

from tracelake.archiver.erase import FAIL_POINTS

NEEDLES = [CONTENT_MARK, USER_MARK]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    world = seeded_template(tmp_path_factory.mktemp("ers"))
    w = world["w"]
    assert set(world["before"]["archived_traces"]) == w.victim_archived | w.others_archived
    return world


def _fresh(world: dict[str, Any], name: str) -> Path:
    return copy_store(world["template"], world["root"] / name)


def _erase(data: Path, *args: str, env: dict[str, str] | None = None):
    return cli("erase", "--data-dir", str(data), "--json", *args,
               env={"TRACELAKE_ERASE_PARTS_WAIT_S": "0", **(env or {})})


def _blob_exists(data: Path, digest: str) -> bool:
    return any(p.name == digest for p in (data / "attachments" / "blobs").rglob("*"))


def _check_gone(world: dict[str, Any], data: Path) -> None:
    """No byte of the victim's content anywhere; everyone else's traces intact."""
    w, before = world["w"], world["before"]
    inspect = tool("inspect", data, *NEEDLES)
    assert {k: v for k, v in inspect.items() if k != "outdated_parts"} == {k: 0 for k in inspect if k != "outdated_parts"}
    archive_dir = data / "attachments" / "archive"
    assert archive_dir.is_dir()
    files = {str(p): p.read_bytes() for p in archive_dir.rglob("*") if p.is_file()}
    assert any(name.endswith(".parquet") for name in files)
    assert parquet_values_holding(files, NEEDLES) == []
    assert files_holding(archive_dir, [n.encode() for n in NEEDLES]) == []  # _delta_log included
    # Another engine over the table format: delta-rs + pyarrow read the current version.
    from deltalake import DeltaTable

    rows = DeltaTable(str(archive_dir / "otel_traces")).to_pyarrow_table().to_pylist()
    assert {r["TraceId"] for r in rows} == w.others_archived
    assert CONTENT_MARK not in json.dumps(rows, default=str) and USER_MARK not in json.dumps(rows, default=str)
    # Blobs: the victim's own are gone, the shared one stays.
    assert not _blob_exists(data, sha(VICTIM_IMAGE)) and not _blob_exists(data, sha(VICTIM_ARCHIVED_IMAGE))
    assert _blob_exists(data, sha(SHARED_IMAGE))
    objects = data / "attachments"
    assert files_holding(objects, [VICTIM_IMAGE[-64:], VICTIM_ARCHIVED_IMAGE[-64:]]) == []
    after = tool("tiers", data)
    others = w.others_hot | w.others_archived
    assert {p.split(":")[0] for p in after["hot_visible"]} == w.others_hot
    assert {p.split(":")[0] for p in after["archive_visible"]} == w.others_archived
    kept = {p for p in before["hot_visible"] + before["archive_visible"] if p.split(":")[0] in others}
    assert set(after["hot_visible"]) | set(after["archive_visible"]) == kept


def test_erase_by_user_leaves_no_byte_and_writes_a_receipt(world):
    data = _fresh(world, "clean")
    w = world["w"]
    pinned = sorted(w.victim_hot)[0]
    tool("pin", data, pinned)
    dry = _erase(data, "--user", USER_MARK, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert set(json.loads(dry.stdout)["matched_trace_ids"]) == w.victim
    assert tool("tiers", data)["hot"] == world["before"]["hot"]  # the dry run changed nothing
    out = _erase(data, "--user", USER_MARK, env={"TRACELAKE_ERASE_PARTS_WAIT_S": "180"})
    assert out.returncode == 0, out.stderr
    receipt = json.loads(out.stdout)
    assert set(receipt["matched_trace_ids"]) == w.victim
    assert receipt["request"]["criteria"]["user"] == USER_MARK
    assert receipt["spans"]["before"] == {"hot": sum(w.spans[t] for t in w.victim_hot),
                                          "archive": sum(w.spans[t] for t in w.victim_archived)}
    assert receipt["spans"]["after"] == {"hot": 0, "archive": 0}
    assert receipt["delta"]["files_rewritten"] >= 1 and receipt["delta"]["files_affected"]
    assert set(receipt["delta"]["files_affected"]) <= set(receipt["delta"]["vacuumed"])
    assert receipt["delta"]["affected_files_left"] == []
    assert set(receipt["blobs_removed"]) == {sha(VICTIM_IMAGE), sha(VICTIM_ARCHIVED_IMAGE)}
    assert receipt["blobs_kept_shared"] == [sha(SHARED_IMAGE)]
    assert receipt["replaced_parts_left"] == []
    assert receipt["pins_removed"] == 1 and pinned not in {p["trace_id"] for p in tool("pins", data)["pins"]}
    assert set(receipt["steps"]) == {"planned", "hot_erased", "archive_erased", "archive_scrubbed", "blobs_erased", "done"}
    assert receipt["spool"]["checked"] is True and receipt["spool"]["drained"] is True
    _check_gone(world, data)
    # Replaced parts are gone too: a byte search of the ClickHouse data finds no content marker.
    assert files_holding(data / "clickhouse" / "store", [CONTENT_MARK.encode()]) == []
    # The archiver's own bookkeeping survives the log cleanup: its app transaction is in the
    # checkpoint, and its next pass finds nothing new to move.
    from deltalake import DeltaTable

    assert DeltaTable(str(data / "attachments" / "archive" / "otel_traces")).transaction_version("tracelake-archiver") == 0
    run = cli("archiver", "run", "--data-dir", str(data), "--json", "--retention", str(world["root"] / "retention.yaml"))
    assert run.returncode == 0, run.stderr
    assert [(r["state"], r["traces"]) for r in json.loads(run.stdout)["runs"]] == [("done", 0)]
    # A second run of the same request finds nothing, says so, and changes nothing.
    again = _erase(data, "--user", USER_MARK)
    assert again.returncode == 1 and "nothing matched" in again.stderr
    audit = [(a["Action"], a["Outcome"], a["Actor"]) for a in tool("tiers", data)["audit"]]
    assert audit == [("erase", "ok", "local"), ("erase", "refused", "local")]


def test_erase_refuses_bad_input_and_changes_nothing(world):
    data = _fresh(world, "bad")
    bad = _erase(data, "--filter", "nosuchfield:1")
    assert bad.returncode == 1 and "filter does not parse" in bad.stderr and "nosuchfield" in bad.stderr
    none = _erase(data, "--user", "nobody-at-all")
    assert none.returncode == 1 and "nothing matched" in none.stderr
    empty = _erase(data)
    assert empty.returncode == 1 and "--user" in empty.stderr
    # A legal hold covering one matched trace refuses the whole request.
    tool("hold", data, "case-42", "session:victim-s2")
    held = _erase(data, "--user", USER_MARK)
    assert held.returncode == 1 and "legal hold" in held.stderr and "case-42" in held.stderr
    assert "nothing was changed" in held.stderr
    after = tool("tiers", data)
    assert after["hot"] == world["before"]["hot"] and after["archive_visible"] == world["before"]["archive_visible"]
    assert after["requests"] == []
    assert {(a["Action"], a["Outcome"]) for a in after["audit"]} == {("erase", "refused")}


KILLS = [p for p in FAIL_POINTS]


@pytest.mark.parametrize("point", KILLS)
def test_erase_killed_at_each_step_completes_on_rerun(world, point):
    data = _fresh(world, f"kill-{point}")
    out = _erase(data, "--session", "victim-s2", env={"TRACELAKE_ARCHIVER_FAIL_AT": f"{point}:kill"})
    assert out.returncode == -9, out.stderr
    # Any later erasure call finishes it first (here: the same criteria again).
    again = _erase(data, "--session", "victim-s1")
    assert again.returncode == 0, again.stderr
    requests = tool("tiers", data)["requests"]
    if point == "erase_after_targets":
        # Killed before the request was recorded: nothing was changed; run it again.
        third = _erase(data, "--session", "victim-s2")
        assert third.returncode == 0, third.stderr
        requests = tool("tiers", data)["requests"]
    assert all(r["State"] == "done" for r in requests) and len(requests) == 2
    _check_gone(world, data)
    done = _erase(data, "--session", "victim-s2")
    assert done.returncode == 1 and "nothing matched" in done.stderr


def test_server_start_finishes_an_interrupted_erasure(world):
    """Killed midway, then nobody erases again: the next server start finishes it (receipt,
    audit entry) without a call."""
    from server_process import start_server, wait_until

    data = _fresh(world, "resume-at-start")
    killed = _erase(data, "--session", "victim-s2", env={"TRACELAKE_ARCHIVER_FAIL_AT": "erase_mid_archive:kill"})
    assert killed.returncode == -9, killed.stderr
    assert [r["State"] for r in tool("tiers", data)["requests"]] == ["hot_erased"]
    with start_server(data, env={"TRACELAKE_ERASE_PARTS_WAIT_S": "0"}) as server:
        def finished() -> bool:
            return server.sql("SELECT State FROM retention_request_state") == [["done"]]

        wait_until(finished, "the interrupted erasure is done", timeout=180, every=0.5)
        receipts = httpx.get(f"{server.ui_url}/api/erasure", timeout=60).json()["receipts"]
    assert [(r["criteria"]["session"], r["traces"]) for r in receipts] == [("victim-s2", len(world["w"].victim_archived))]
    after = tool("tiers", data)
    assert [(a["Action"], a["Actor"]) for a in after["audit"]] == [("erase", "tracelake (resumed at start)")]
    gone = {p.split(":")[0] for p in after["hot_visible"] + after["archive_visible"]}
    assert not gone & world["w"].victim_archived and world["w"].others_archived <= gone
