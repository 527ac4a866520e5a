"""A run killed (kill -9) at every step with pins and holds in place: each span stays visible in
exactly one tier, and the rerun ends with the pinned trace hot, the held ones archived (never
deleted) and the rest deleted — with a rule of ``hot: 0d archive: 0d``. Pins and holds are made
with the CLI on the embedded store (``--data-dir``), as an operator without a server would."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from arx_helpers import DAY_NS, Dataset, _trace, archiver, copy_store, seed, snapshot, trace_ids

from tracelake.archiver.runs import FAIL_POINTS

POLICY = "rules:\n  - name: gone\n    hot: 0d\n    archive: 0d\n"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tracelake.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("keepkill")
    old = time.time_ns() - 5 * DAY_NS
    ds = Dataset()
    pinned = _trace(old)
    ds.add(pinned, "stay_hot")
    held = _trace(old + DAY_NS)  # another day: the held trace's partition is not the pinned one's
    for s in held:
        s["attrs"]["user.id"] = "held-user"
    ds.add(held, "archive")
    for i in range(4):
        ds.add(_trace(old + i * 10**9), "delete")
    template = root / "template"
    seed(template, ds)
    tid = pinned[0]["trace_id"].hex()
    for args in (("pin", tid), ("hold", "create", "legal-1", "--filter", "user:held-user", "--reason", "case 9")):
        out = _cli("archiver", *args, "--data-dir", str(template))
        assert out.returncode == 0, out.stderr
    policy = root / "retention.yaml"
    policy.write_text(POLICY)
    # explain on its own (no server): the rule, the pin, the hold.
    out = _cli("archiver", "explain", tid, "--data-dir", str(template), "--retention", str(policy), "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["rule"]["name"] == "gone" and doc["pin"]["actor"].startswith("cli") and doc["leaves_hot"] is None
    out = _cli("archiver", "explain", held[0]["trace_id"].hex(), "--data-dir", str(template), "--retention", str(policy),
               "--json")
    assert json.loads(out.stdout)["holds"] == ["legal-1"]
    return {"root": root, "ds": ds, "template": template, "policy": policy, "before": snapshot(template)}


def _spans(pairs: list[str], traces: set[str]) -> set[str]:
    return {p for p in pairs if p.split(":")[0] in traces}


@pytest.mark.parametrize("point", FAIL_POINTS)
def test_killed_run_with_pins_and_holds_completes_on_rerun(world, point):
    ds, before = world["ds"], world["before"]
    data = copy_store(world["template"], world["root"] / f"kill-{point}")
    out = archiver(data, retention=world["policy"], env={"TRACELAKE_ARCHIVER_FAIL_AT": f"{point}:kill"})
    assert out.returncode == -9, (out.returncode, out.stderr[-2000:])
    mid = snapshot(data)
    hot, arch = set(mid["hot_visible"]), set(mid["archive_visible"])
    assert not hot & arch
    assert _spans(before["hot"], ds.stay_hot | ds.archive) <= hot | arch  # nothing kept is lost
    assert _spans(before["hot"], ds.stay_hot) <= hot  # the pinned trace never left hot
    rerun = archiver(data, retention=world["policy"])
    assert rerun.returncode == 0, rerun.stderr
    after = snapshot(data)
    assert trace_ids(after["hot_visible"]) == ds.stay_hot
    assert set(after["archive_visible"]) == _spans(before["hot"], ds.archive)
    assert after["archive_rows"] == len(after["archive_visible"])
    assert set(after["archived_traces"]) == ds.archive
