"""The archiver on the embedded store: whole traces move by rule, plans change nothing, and a run
killed (or failing) at any step leaves every span visible in exactly one tier and completes on rerun."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from arx_helpers import POLICY, archiver, copy_store, make_dataset, seed, snapshot, trace_ids

from tracelake.archiver.runs import FAIL_POINTS


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("arx")
    ds = make_dataset()
    template = root / "template"
    seed(template, ds)
    policy = root / "retention.yaml"
    policy.write_text(POLICY)
    sample = sorted(ds.archive)[:4]
    before = snapshot(template, sample)
    assert trace_ids(before["hot"]) == ds.stay_hot | ds.archive | ds.delete
    return {"root": root, "ds": ds, "template": template, "policy": policy, "before": before, "sample": sample}


def _fresh(world: dict[str, Any], name: str) -> Path:
    return copy_store(world["template"], world["root"] / name)


def _spans_of(pairs: list[str], traces: set[str]) -> set[str]:
    return {p for p in pairs if p.split(":")[0] in traces}


def _check_final(world: dict[str, Any], after: dict[str, Any]) -> None:
    ds, before = world["ds"], world["before"]
    assert trace_ids(after["hot"]) == ds.stay_hot
    assert set(after["hot"]) == _spans_of(before["hot"], ds.stay_hot)
    assert set(after["archive_visible"]) == _spans_of(before["hot"], ds.archive)
    assert after["archive_rows"] == len(after["archive_visible"])  # no span twice in the archive
    assert set(after["archived_traces"]) == ds.archive
    # The MV-fed tables lost the moved traces too.
    assert after["summary_traces"] == len(ds.stay_hot)
    assert after["trace_id_ts"] == len(ds.stay_hot)
    assert [r["State"] for r in after["runs"]][-1] == "done"


def _check_one_tier(world: dict[str, Any], snap: dict[str, Any]) -> None:
    """At any moment: no span visible in both tiers, and none lost (deleted traces may be gone)."""
    ds, before = world["ds"], world["before"]
    hot, archive = set(snap["hot_visible"]), set(snap["archive_visible"])
    assert not hot & archive, f"visible in both tiers: {sorted(hot & archive)[:3]}"
    assert snap["archive_rows"] == len(archive)
    union = hot | archive
    kept = _spans_of(before["hot"], ds.stay_hot | ds.archive)
    assert kept <= union, f"lost: {sorted(kept - union)[:3]}"
    assert union <= set(before["hot"])


def test_run_moves_whole_traces_by_rule_and_deletes_expired(world):
    data = _fresh(world, "clean")
    out = archiver(data, retention=world["policy"])
    assert out.returncode == 0, out.stderr
    [run] = json.loads(out.stdout)["runs"]
    ds = world["ds"]
    assert run["state"] == "done"
    assert run["traces"] == len(ds.archive | ds.delete)
    assert run["deleted_traces"] == len(ds.delete)
    assert run["dropped_partitions"] >= 1  # the 40-day-old day had only leaving traces
    after = snapshot(data, world["sample"])
    _check_final(world, after)
    # The archive view has otel_traces' columns, names and types, plus Day.
    hot_cols, archive_cols = after["columns"]["otel_traces"], after["columns"]["otel_traces_archive"]
    # ... and the columns the hot table prices when read (ALIAS there, computed by the view here).
    assert archive_cols == hot_cols + [["Day", "Date"], ["CostUsd", "Float64"], ["Unpriced", "UInt8"], ["PriceModel", "String"]]
    # Field by field, the archived spans are the hot spans they were.
    assert after["archive_rows_sample"] == world["before"]["hot_rows"]
    assert len(after["archive_rows_sample"]) == sum(ds.spans[t] for t in world["sample"])
    # A second pass has nothing to do and changes nothing.
    again = archiver(data, retention=world["policy"])
    assert again.returncode == 0, again.stderr
    [run2] = json.loads(again.stdout)["runs"]
    assert (run2["traces"], run2["deleted_traces"]) == (0, 0)
    second = snapshot(data)
    assert (second["hot"], second["archive_visible"]) == (after["hot"], after["archive_visible"])


def test_trace_by_id_reads_its_files_and_sees_deletes_by_others(world):
    data = _fresh(world, "lookup")
    out = archiver(data, retention=world["policy"])
    assert out.returncode == 0, out.stderr
    ds = world["ds"]
    busy = [ds.busy_day[i] for i in (2, 9, 17)]
    sample = world["sample"] + [t for t in busy if t not in world["sample"]]
    got = snapshot(data, sample, command="lookup")
    for tid in sample:
        before = got["before"][tid]
        # Read from the trace's Parquet files (not the engine table), same spans as the view.
        assert before["direct"] and before["files_live"], tid
    for tid in busy:
        # Its day has a file per slice of start times (each spanning most TraceIds); it is read
        # from its own only, picked by its time window (the traces are a minute apart).
        before = got["before"][tid]
        assert before["partition_files"] >= 2 and before["files_used"] == 1, before
        assert len(before["spans"]) == ds.spans[tid]
        assert before["spans"] == before["view_spans"]
        assert before["detail"] is not None and before["detail"][0]  # attributes of the first span
    # After another writer deleted the first trace from Delta and vacuumed, the cached file list
    # follows the new table version: no spans of it are read, the others are still there.
    first = got["after"][sample[0]]
    assert first["spans"] == [] and first["view_spans"] == []
    for tid in sample[1:]:
        assert got["after"][tid]["files_live"]  # not a vacuumed file of the old version
        assert got["after"][tid]["spans"] == got["before"][tid]["spans"]


def test_plan_counts_per_rule_and_day_and_changes_nothing(world):
    data = _fresh(world, "plan")
    out = archiver(data, "plan", retention=world["policy"])
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    ds = world["ds"]
    totals = plan["totals"]
    assert totals["archive"]["traces"] == len(ds.archive)
    assert totals["archive"]["spans"] == sum(ds.spans[t] for t in ds.archive)
    assert totals["delete"]["traces"] == len(ds.delete)
    assert totals["archive"]["bytes"] > 0
    assert {r["rule"] for r in plan["rows"]} == {"errors", "default"}
    after = snapshot(data)
    assert after["hot"] == world["before"]["hot"]
    assert after["index_rows"] == 0 and after["runs"] == []


def test_bad_retention_file_is_refused_and_nothing_moves(world, tmp_path):
    data = _fresh(world, "bad")
    bad = tmp_path / "bad.yaml"
    bad.write_text(POLICY.replace("hot: 7d", "hot: 7 days"))
    out = archiver(data, retention=bad)
    assert out.returncode == 2
    assert "line 7" in out.stderr and "rules[1] (default).hot" in out.stderr and "bad duration" in out.stderr
    assert snapshot(data)["runs"] == []


KILLS = [(p, "kill") for p in FAIL_POINTS] + [(p, "error") for p in
                                              ("mid_write", "after_committed", "mid_hot_delete", "after_expire_delta")]


@pytest.mark.parametrize("point,how", KILLS, ids=[f"{p}-{h}" for p, h in KILLS])
def test_interrupted_run_keeps_one_tier_and_completes_on_rerun(world, point, how):
    data = _fresh(world, f"fail-{point}-{how}")
    out = archiver(data, retention=world["policy"], env={"TRACELAKE_ARCHIVER_FAIL_AT": f"{point}:{how}"})
    if how == "kill":
        assert out.returncode == -9, (out.returncode, out.stderr[-2000:])
    else:
        assert out.returncode == 1 and f"injected failure at {point}" in out.stderr
    _check_one_tier(world, snapshot(data))
    rerun = archiver(data, retention=world["policy"])
    assert rerun.returncode == 0, rerun.stderr
    after = snapshot(data, world["sample"])
    _check_final(world, after)
    assert after["archive_rows_sample"] == world["before"]["hot_rows"]
    assert all(r["State"] == "done" for r in after["runs"])
