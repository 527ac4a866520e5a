"""Editing retention rules on a real ``tracelake server`` started without ``--retention``: preview
errors with their line, both plans per rule on old spans sent through the collector, apply (audited)
and the next archiver run using the new rules, stale previews refused, the stored rules used at the
next start; and with ``--retention FILE`` apply refused while "what if" previews still work."""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from arx_helpers import POLICY, make_dataset, send
from server_process import start_server

# POLICY (tests/archiver/arx_helpers.py) with the default rule's hot window at 11 days: the five
# 10-day-old default traces stay hot.
LONGER = POLICY.replace("    hot: 7d\n", "    hot: 11d\n")
# Without the errors rule: error traces fall to the default rule.
NO_ERRORS = "rules:\n  - name: default\n    hot: 7d\n    archive: 20d\n"


def _post(server, path: str, **kw) -> httpx.Response:
    return httpx.post(f"{server.ui_url}{path}", timeout=120, **kw)


def _rule(preview: dict, name: str) -> dict:
    return next(r for r in preview["rules"] if r["rule"] == name)


def _count(server, sql: str) -> int:
    return int(server.sql(sql)[0][0])


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A server without --retention holding the dataset (old spans through the collector)."""
    root = tmp_path_factory.mktemp("rules-api")
    ds = make_dataset()
    server = start_server(root / "data", archive_every="1d", env={"TRACELAKE_ARCHIVE_CHUNK_SPANS": "20"})
    try:
        send(server, ds.requests)
        server.wait_for_count("SELECT count() FROM otel_traces", sum(ds.spans.values()))
        yield server, ds, root
    finally:
        server.terminate()


def test_preview_errors_name_the_line_and_field_and_save_nothing(seeded):
    server, _, _ = seeded
    bad_duration = POLICY.replace("archive: 20d", "archive: 20 days")
    r = _post(server, "/api/retention/preview", json={"yaml": bad_duration})
    assert r.status_code == 400
    body = r.json()
    assert body["valid"] is False and body["line"] == 8 and body["field"] == "rules[1] (default).archive"
    assert "bad duration '20 days'" in body["error"]
    bad_filter = POLICY.replace("'status:error'", "'nosuchfield:1'")
    r = _post(server, "/api/retention/preview", content=bad_filter.encode(), headers={"Content-Type": "application/yaml"})
    assert r.status_code == 400 and r.json()["line"] == 3 and r.json()["field"] == "rules[0] (errors).match"
    r = _post(server, "/api/retention/preview", json={"yaml": POLICY + "  - name: other\n    hot: 1d\n    archive: 1d\n"})
    assert r.status_code == 400 and r.json()["line"] == 9 and "second default rule" in r.json()["error"]
    assert _post(server, "/api/retention/preview", json={}).status_code == 400
    assert httpx.get(f"{server.ui_url}/api/retention/versions", timeout=30).json()["versions"] == []


def test_preview_apply_and_the_next_run_uses_the_new_rules(seeded):
    server, ds, _ = seeded
    versions = httpx.get(f"{server.ui_url}/api/retention/versions", timeout=30).json()
    assert versions["source"] == "none" and versions["current"] == 0
    assert httpx.get(f"{server.ui_url}/api/archiver/status", timeout=30).json() == {"enabled": False}

    # No rules today: nothing moves; the edited rules would move what the dataset says.
    first = _post(server, "/api/retention/preview", json={"yaml": POLICY})
    assert first.status_code == 200, first.text
    pv = first.json()
    assert pv["base_version"] == 0 and pv["today"]["plan"] is None
    errors, default = _rule(pv, "errors"), _rule(pv, "default")
    assert errors["status"] == default["status"] == "added"
    assert errors["today"]["archive"]["traces"] == 0 and errors["edited"]["archive"]["traces"] == 1  # the 40-day error
    archived_default = len(ds.archive) - 1
    assert default["edited"]["archive"]["traces"] == archived_default
    assert default["edited"]["delete"]["traces"] == len(ds.delete)
    assert default["edited"]["archive"]["spans"] == sum(ds.spans[t] for t in ds.archive) - 4  # minus the error trace
    assert default["diff"]["archive"]["traces"] == archived_default and default["differs"]
    assert pv["totals"]["edited"]["delete"]["traces"] == len(ds.delete)
    assert _count(server, "SELECT count() FROM otel_traces") == sum(ds.spans.values())  # nothing moved

    applied = _post(server, "/api/retention/apply", json={"yaml": POLICY, "base_version": 0, "comment": "first rules"})
    assert applied.status_code == 200, applied.text
    assert applied.json()["version"]["version"] == 1 and applied.json()["archiver"] == "started"
    status = httpx.get(f"{server.ui_url}/api/archiver/status", timeout=30).json()
    assert status["enabled"] and [r["name"] for r in status["rules"]] == ["errors", "default"]

    # Edited against version 1: a longer hot window keeps the five 10-day-old traces hot.
    pv = _post(server, "/api/retention/preview", json={"yaml": LONGER}).json()
    assert pv["base_version"] == 1
    default = _rule(pv, "default")
    assert default["status"] == "changed" and default["changed"] == ["hot"]
    assert default["today"]["archive"]["traces"] == archived_default
    assert default["edited"]["archive"]["traces"] == archived_default - 5
    assert default["diff"]["archive"]["traces"] == -5 and default["diff"]["archive"]["spans"] == -20
    assert _rule(pv, "errors")["status"] == "same" and not _rule(pv, "errors")["differs"]
    # A removed rule: its traces fall to the default (the 40-day error is then deleted, the 10-day one archived).
    removed = _post(server, "/api/retention/preview", json={"yaml": NO_ERRORS}).json()
    assert _rule(removed, "errors")["status"] == "removed"
    assert _rule(removed, "errors")["edited"]["archive"]["traces"] == 0
    assert _rule(removed, "default")["diff"]["delete"]["traces"] == 1
    assert _rule(removed, "default")["diff"]["archive"]["traces"] == 1

    applied = _post(server, "/api/retention/apply", json={"yaml": LONGER, "base_version": 1, "comment": "keep 11 days"})
    assert applied.status_code == 200, applied.text
    assert applied.json()["version"]["version"] == 2 and applied.json()["archiver"] == "swapped"

    with httpx.stream("POST", f"{server.ui_url}/api/archiver/run", timeout=300) as r:
        events = [json.loads(line) for line in r.iter_lines() if line.strip()]
    assert events[-1]["event"] == "result", events[-1]
    run = events[-1]["runs"][-1]
    assert run["state"] == "done" and run["rules"]["default"]["hot"] == "11d"
    kept_hot = {t for t in ds.archive if t not in _archived_ids(server)}
    assert len(kept_hot) == 5  # the 10-day-old default traces: version 2 kept them
    assert run["traces"] == len(ds.archive) - 5 + len(ds.delete)
    assert _count(server, "SELECT count() FROM otel_traces_archive") == sum(ds.spans[t] for t in ds.archive) - 20

    history = httpx.get(f"{server.ui_url}/api/retention/versions", timeout=30).json()
    assert [(v["version"], v["comment"], v["actor"]) for v in history["versions"]] == [
        (2, "keep 11 days", "local"), (1, "first rules", "local")]
    one = httpx.get(f"{server.ui_url}/api/retention/versions/1", timeout=30).json()
    assert one["yaml"] == POLICY
    assert httpx.get(f"{server.ui_url}/api/retention/versions/9", timeout=30).status_code == 404
    audit = server.sql("SELECT Actor, Action, Target FROM audit_log WHERE Action = 'retention.apply' ORDER BY Time")
    assert audit == [["local", "retention.apply", "version 1"], ["local", "retention.apply", "version 2"]]


def _archived_ids(server) -> set[str]:
    return {r[0] for r in server.sql("SELECT TraceId FROM archived_traces")}


def test_a_stale_preview_is_refused(seeded):
    server, _, _ = seeded
    base = _post(server, "/api/retention/preview", json={"yaml": NO_ERRORS}).json()["base_version"]
    # Someone else applies meanwhile.
    other = _post(server, "/api/retention/apply", json={"yaml": POLICY, "base_version": base, "comment": "other"})
    assert other.status_code == 200, other.text
    stale = _post(server, "/api/retention/apply", json={"yaml": NO_ERRORS, "base_version": base})
    assert stale.status_code == 409
    assert stale.json()["reason"] == "stale" and stale.json()["current"]["version"] == base + 1
    assert "preview again" in stale.json()["error"]
    current = httpx.get(f"{server.ui_url}/api/retention/versions", timeout=30).json()["current"]
    assert current == base + 1
    assert httpx.get(f"{server.ui_url}/api/retention/versions/{current}", timeout=30).json()["yaml"] == POLICY
    assert _post(server, "/api/retention/apply", json={"yaml": POLICY}).status_code == 400  # no base_version


def test_the_stored_rules_are_used_at_the_next_start(seeded, tmp_path: Path):
    server, _, root = seeded
    current = httpx.get(f"{server.ui_url}/api/retention/versions", timeout=30).json()["current"]
    if current == 0:  # this test alone
        assert _post(server, "/api/retention/apply", json={"yaml": POLICY, "base_version": 0}).status_code == 200
        current = 1
    yaml_text = httpx.get(f"{server.ui_url}/api/retention/versions/{current}", timeout=30).json()["yaml"]
    assert server.terminate() == 0
    with start_server(root / "data", archive_every="1d") as again:
        assert any(f"rules       version {current} applied" in line for line in again.output), again.output
        status = httpx.get(f"{again.ui_url}/api/archiver/status", timeout=30).json()
        assert status["enabled"]
        from tracelake.archiver.policy import parse_policy

        assert status["rules"] == [r.describe() for r in parse_policy(yaml_text).rules]


def test_with_a_retention_file_apply_is_refused_and_the_page_says_so(tmp_path: Path):
    rules_file = tmp_path / "retention.yaml"
    rules_file.write_text(POLICY)
    with start_server(tmp_path / "data", retention=str(rules_file), archive_every="1d") as server:
        what_if = _post(server, "/api/retention/preview", json={"yaml": LONGER})
        assert what_if.status_code == 200 and what_if.json()["source"]["kind"] == "file"
        assert _rule(what_if.json(), "default")["status"] == "changed"
        refused = _post(server, "/api/retention/apply", json={"yaml": LONGER, "base_version": 0})
        assert refused.status_code == 409
        assert refused.json()["reason"] == "file" and refused.json()["path"] == str(rules_file.resolve())
        assert httpx.get(f"{server.ui_url}/api/retention/versions", timeout=30).json()["versions"] == []
        page = httpx.get(f"{server.ui_url}/retention?tab=rules", timeout=60).text
        assert "Read-only:" in page and str(rules_file.resolve()) in page
        assert 'id="rules-apply"' not in page
        # The page's own form is refused the same way.
        form = _post(server, "/retention/rules/apply", data={"yaml": LONGER, "base_version": "0"})
        assert form.status_code == 200 and 'id="rules-apply-error"' in form.text and "source of truth" in form.text
        status = httpx.get(f"{server.ui_url}/api/archiver/status", timeout=30).json()
        assert [r["hot"] for r in status["rules"]] == ["30d", "1w"]  # still the file's


def test_the_archiver_on_its_own_uses_the_stored_rules(tmp_path: Path, moto_endpoint: str, s3_bucket: str):
    """``tracelake archiver run --clickhouse-url`` without --retention: the rules applied on the page."""
    import os
    import subprocess
    import sys

    from server_process import start_clickhouse_endpoint

    from tracelake.archiver import policy_store
    from tracelake.store import open_store

    endpoint = start_clickhouse_endpoint(tmp_path / "ch")
    try:
        url = f"{endpoint.url}/rules_cli"
        argv = [sys.executable, "-m", "tracelake.cli", "archiver", "run", "--clickhouse-url", url,
                "--object-store", f"s3://{s3_bucket}/tl", "--json"]

        def run() -> subprocess.CompletedProcess:
            return subprocess.run(argv, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200",
                                                                                "TRACELAKE_S3_ENDPOINT_URL": moto_endpoint})

        store = open_store(clickhouse_url=url)
        try:
            refused = run()
            assert refused.returncode == 2 and "no rules were applied" in refused.stderr, refused.stderr
            policy_store.save(store, LONGER, actor="someone", role="admin", expected=0)
            done = run()
            assert done.returncode == 0, done.stderr
            rules = json.loads(done.stdout)["runs"][-1]["rules"]
            assert list(rules) == ["errors", "default"] and rules["default"]["hot"] == "11d"
        finally:
            store.execute("DROP DATABASE IF EXISTS rules_cli")
            store.close()
    finally:
        endpoint.stop()


def test_rules_applied_during_a_run_take_effect_after_it(tmp_path: Path):
    """Never mid-run: a run paused after fixing its traces finishes with the rules it started with;
    the rules applied meanwhile are pending, then in force, and the next run uses them."""
    import threading

    from server_process import wait_until

    ds = make_dataset()
    pause = tmp_path / "pause"
    pause.mkdir()
    env = {"TRACELAKE_ARCHIVER_FAIL_AT": "after_planned:pause", "TRACELAKE_ARCHIVER_PAUSE_DIR": str(pause)}
    with start_server(tmp_path / "data", archive_every="1d", env=env) as server:
        send(server, ds.requests)
        server.wait_for_count("SELECT count() FROM otel_traces", sum(ds.spans.values()))
        assert _post(server, "/api/retention/apply", json={"yaml": POLICY, "base_version": 0}).json()["archiver"] == "started"
        events: list[dict] = []

        def run() -> None:
            with httpx.stream("POST", f"{server.ui_url}/api/archiver/run", timeout=300) as r:
                events.extend(json.loads(line) for line in r.iter_lines() if line.strip())

        worker = threading.Thread(target=run)
        worker.start()
        wait_until((pause / "after_planned.paused").exists, "the run paused after fixing its traces", 120)
        applied = _post(server, "/api/retention/apply", json={"yaml": LONGER, "base_version": 1})
        assert applied.status_code == 200 and applied.json()["archiver"] == "pending", applied.text
        page = httpx.get(f"{server.ui_url}/retention?tab=rules", timeout=60).text
        assert 'id="rules-pending"' in page
        status = httpx.get(f"{server.ui_url}/api/archiver/status", timeout=30).json()
        assert status["rules"][1]["hot"] == "1w"  # the running pass keeps version 1
        (pause / "after_planned.go").touch()
        worker.join(300)
        assert events and events[-1]["event"] == "result", events[-1:]
        first = events[-1]["runs"][-1]
        assert first["state"] == "done" and first["rules"]["default"]["hot"] == "1w"
        assert first["traces"] == len(ds.archive | ds.delete)  # version 1 moved the 10-day-old traces too
        status = httpx.get(f"{server.ui_url}/api/archiver/status", timeout=30).json()
        assert status["rules"][1]["hot"] == "11d"  # in force once the pass ended
        assert 'id="rules-pending"' not in httpx.get(f"{server.ui_url}/retention?tab=rules", timeout=60).text
        with httpx.stream("POST", f"{server.ui_url}/api/archiver/run", timeout=300) as r:
            second = [json.loads(line) for line in r.iter_lines() if line.strip()][-1]["runs"][-1]
        assert second["rules"]["default"]["hot"] == "11d"


def test_a_version_applied_by_another_process_is_used_at_the_next_pass(tmp_path: Path, moto_endpoint: str,
                                                                       s3_bucket: str):
    """Two servers on one ClickHouse (the scaled-out layout): rules applied on one server's page are
    read again by the other's archiver at its next pass."""
    from server_process import start_clickhouse_endpoint

    endpoint = start_clickhouse_endpoint(tmp_path / "ch")
    flags = {"clickhouse_url": f"{endpoint.url}/rules_two", "object_store": f"s3://{s3_bucket}/tl", "archive_every": "1d"}
    env = {"TRACELAKE_S3_ENDPOINT_URL": moto_endpoint}
    try:
        with start_server(tmp_path / "a", env=env, **flags) as a:
            assert _post(a, "/api/retention/apply", json={"yaml": POLICY, "base_version": 0}).status_code == 200
            with start_server(tmp_path / "b", env=env, **flags) as b:
                assert any("rules       version 1 applied" in line for line in b.output), b.output
                applied = _post(a, "/api/retention/apply", json={"yaml": LONGER, "base_version": 1})
                assert applied.status_code == 200, applied.text
                # B's page already plans with version 2 as today's rules.
                pv = _post(b, "/api/retention/preview", json={"yaml": LONGER}).json()
                assert pv["base_version"] == 2 and _rule(pv, "default")["status"] == "same"
                with httpx.stream("POST", f"{b.ui_url}/api/archiver/run", timeout=300) as r:
                    events = [json.loads(line) for line in r.iter_lines() if line.strip()]
                assert events[-1]["event"] == "result", events[-1]
                assert events[-1]["runs"][-1]["rules"]["default"]["hot"] == "11d"
                status = httpx.get(f"{b.ui_url}/api/archiver/status", timeout=30).json()
                assert status["rules"][1]["hot"] == "11d"
    finally:
        endpoint.stop()
