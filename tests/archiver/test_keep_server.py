"""Pins and holds in a real ``tracelake server``: real spans with old timestamps through the
collector, a rule of ``hot: 0d archive: 0d``, the API, the archiver honoring both at every step,
explain for hot and archived traces, ``pinned:true`` over both tiers, and the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from arx_helpers import DAY_NS, send
from otlp_spans import GENAI_CHAT, new_trace_id, request, span
from server_process import start_server

POLICY = "rules:\n  - name: gone\n    hot: 0d\n    archive: 0d\n"


def _trace(start_ns: int, *, user: str = "", child: str = "chat", project: str = "") -> tuple[str, bytes]:
    tid = new_trace_id()
    attrs = {"user.id": user} if user else {}
    root = span("agent run", tid, start_ns=start_ns, duration_ns=5_000_000, attrs=attrs)
    kid = span(child, tid, parent=root["span_id"], start_ns=start_ns + 1000, attrs={**GENAI_CHAT, **attrs})
    resource = {"tracelake.project": project} if project else None
    return tid.hex(), request([root, kid], resource=resource).SerializeToString()


def _run(server) -> dict[str, Any]:
    with httpx.stream("POST", f"{server.ui_url}/api/archiver/run", json={}, timeout=httpx.Timeout(60, read=None)) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.strip():
                event = json.loads(line)
                assert event["event"] != "error", event
                if event["event"] == "result":
                    return event
    raise AssertionError("no result")


def _where(server, tid: str) -> tuple[int, int]:
    """(hot spans, archived spans) of a trace."""
    hot = int(server.sql("SELECT count() FROM otel_traces WHERE TraceId = {t:String}", t=tid)[0][0])
    arch = int(server.sql("SELECT count() FROM otel_traces_archive WHERE TraceId = {t:String}", t=tid)[0][0])
    return hot, arch


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tracelake.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "200"})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("keep")
    old = time.time_ns() - 3 * DAY_NS
    traces = {"pinned": _trace(old, user="pat"), "bob": _trace(old + 10**9, user="bob"),
              "span": _trace(old + 2 * 10**9, child="retrieve docs"), "plain": _trace(old + 3 * 10**9),
              "recent": _trace(time.time_ns() - 10 * 60 * 10**9)}  # 10 min old: not settled, stays hot
    yield from serve(tmp, traces)


def serve(tmp: Path, traces: dict[str, tuple[str, bytes]]):
    """A server on the 0d/0d rule with ``traces`` (two spans each) stored: yields (server, name -> id)."""
    policy = tmp / "retention.yaml"
    policy.write_text(POLICY)
    server = start_server(tmp / "data", retention=str(policy), archive_every="1d")
    try:
        send(server, [body for _, body in traces.values()])
        server.wait_for_count("SELECT count() FROM otel_traces", 2 * len(traces))
        yield server, {k: v[0] for k, v in traces.items()}
    finally:
        server.terminate()


def test_pins_and_holds_through_runs_with_hot_0d_archive_0d(world):
    server, t = world
    api = server.ui_url
    with httpx.Client(base_url=api, timeout=60) as c:
        r = c.post(f"/api/traces/{t['pinned']}/pin", json={"reason": "incident 7"})
        assert r.status_code == 200, r.text
        assert r.json()["pin"]["actor"] == "local" and r.json()["pin"]["until"] is None
        assert c.post("/api/holds", json={"name": "hold-bob", "filter": "user:bob", "reason": "case 1"}).status_code == 201
        assert c.post("/api/holds", json={"name": "hold-span", "filter": 'span:"retrieve docs"',
                                          "reason": "case 2"}).status_code == 201
        # Unknown and malformed trace ids.
        assert c.post(f"/api/traces/{new_trace_id().hex()}/pin", json={}).status_code == 404
        assert c.get(f"/api/traces/{new_trace_id().hex()}/retention").status_code == 404
        assert c.get("/api/traces/zz-not-hex/retention").status_code == 400

        plan = c.post("/api/archiver/plan", json={}).json()
        assert plan["kept"] == {"gone": {"pin": 1, "hold: hold-bob": 1, "hold: hold-span": 1}}
        assert plan["totals"]["delete"]["traces"] == 1  # only the plain one
        assert plan["totals"]["archive"]["traces"] == 2  # the held ones move, are not deleted

        # explain before the run: a hot trace, its rule, when it leaves, what keeps it.
        e = c.get(f"/api/traces/{t['pinned']}/retention").json()
        assert e["tier"] == "hot" and e["rule"]["name"] == "gone" and e["pin"]["reason"] == "incident 7"
        assert e["leaves_hot"] is None and e["deleted"] is None
        e = c.get(f"/api/traces/{t['plain']}/retention").json()
        assert e["pin"] is None and e["holds"] == [] and e["deleted"] is not None
        assert "due to be deleted at the next archive run" in e["notes"]

        _run(server)
        assert _where(server, t["pinned"]) == (2, 0)  # pinned: stays hot
        assert _where(server, t["bob"]) == (0, 2)  # held: moved, not deleted
        assert _where(server, t["span"]) == (0, 2)  # held by a span-level term
        assert _where(server, t["plain"]) == (0, 0)  # past hot + archive: deleted
        assert _where(server, t["recent"]) == (2, 0)  # not settled yet (hot below 1h acts as 1h)
        e = c.get(f"/api/traces/{t['bob']}/retention").json()
        assert e["tier"] == "archive" and e["holds"] == ["hold-bob"] and e["deleted"] is None
        e = c.get(f"/api/traces/{t['span']}/retention").json()  # a span-level hold over the archive
        assert e["tier"] == "archive" and e["holds"] == ["hold-span"] and e["rule"]["name"] == "gone"
        assert c.get(f"/api/traces/{t['plain']}/retention").status_code == 404

        # pinned:true over both tiers: pin an archived trace too.
        assert c.post(f"/api/traces/{t['span']}/pin", json={"until": "30d"}).status_code == 200
        rows = c.get("/api/traces", params={"q": "pinned:true", "range": "30d"}).json()["traces"]
        assert {(x["trace_id"], x["tier"]) for x in rows} == {(t["pinned"], "hot"), (t["span"], "archive")}
        rows = c.get("/api/traces", params={"q": "pinned:false", "range": "30d"}).json()["traces"]
        assert {x["trace_id"] for x in rows} == {t["bob"], t["recent"]}
        assert c.post(f"/api/traces/{t['span']}/unpin").json() == {"unpinned": True}

        # A second run deletes nothing held.
        _run(server)
        assert _where(server, t["bob"]) == (0, 2) and _where(server, t["span"]) == (0, 2)

        # Release one hold: its trace is deleted from the archive at the next run, the other stays.
        assert c.delete("/api/holds/hold-bob").json() == {"released": "hold-bob"}
        assert c.delete("/api/holds/hold-bob").status_code == 404
        _run(server)
        assert _where(server, t["bob"]) == (0, 0)
        assert _where(server, t["span"]) == (0, 2)
        assert int(server.sql("SELECT count() FROM archived_traces WHERE TraceId = {t:String}", t=t["bob"])[0][0]) == 0

        # Unpin: the next run archives and deletes it (hot 0d, archive 0d).
        assert c.delete(f"/api/traces/{t['pinned']}/pin").json() == {"unpinned": True}
        _run(server)
        assert _where(server, t["pinned"]) == (0, 0)
        assert _where(server, t["recent"]) == (2, 0)

        # Every change is in the hold's own rows and in the audit log, with who and when.
        holds = {h["name"]: h for h in c.get("/api/holds").json()["holds"]}
        assert holds["hold-bob"]["released_by"] == "local" and holds["hold-bob"]["released"]
        assert holds["hold-span"]["active"]
        actions = [r[0] for r in server.sql("SELECT Action FROM audit_log WHERE Action LIKE 'retention.%' ORDER BY Time")]
        assert actions.count("retention.pin") == 2 and actions.count("retention.unpin") == 2
        assert actions.count("retention.hold.create") == 2 and actions.count("retention.hold.release") == 1


def test_bad_hold_filter_is_refused_over_the_api(world):
    server, _ = world
    with httpx.Client(base_url=server.ui_url, timeout=60) as c:
        r = c.post("/api/holds", json={"name": "bad", "filter": "user:alice duration>abc", "reason": "r"})
        assert r.status_code == 400 and r.json()["field"] == "filter" and "duration" in r.json()["error"]
        assert r.json()["pos"] == 20
        assert all(h["name"] != "bad" for h in c.get("/api/holds").json()["holds"])
        r = c.post("/api/traces/" + "ab" * 16 + "/pin", content=b"{not json")
        assert r.status_code == 400


def test_cli_explain_pin_and_holds_through_the_server(world):
    server, t = world
    url = ["--url", server.ui_url]
    out = _cli("archiver", "explain", t["recent"], *url)
    assert out.returncode == 0, out.stderr
    assert "gone" in out.stdout and "hot" in out.stdout
    doc = json.loads(_cli("archiver", "explain", t["recent"], *url, "--json").stdout)
    assert doc["tier"] == "hot" and doc["rule"]["name"] == "gone"
    missing = _cli("archiver", "explain", new_trace_id().hex(), *url)
    assert missing.returncode != 0 and "no trace" in missing.stderr

    assert _cli("archiver", "pin", t["recent"], "--until", "30d", *url).returncode == 0
    doc = json.loads(_cli("archiver", "explain", t["recent"], *url, "--json").stdout)
    assert doc["pin"]["until"] is not None
    assert _cli("archiver", "unpin", t["recent"], *url).returncode == 0

    made = _cli("archiver", "hold", "create", "cli-hold", "--filter", "user:nobody", "--reason", "testing", *url)
    assert made.returncode == 0, made.stderr
    bad = _cli("archiver", "hold", "create", "cli-bad", "--filter", "user:", "--reason", "x", *url)
    assert bad.returncode != 0 and "missing value" in bad.stderr
    listed = json.loads(_cli("archiver", "hold", "list", *url, "--json").stdout)
    assert "cli-hold" in {h["name"] for h in listed["holds"]}
    assert "cli-bad" not in {h["name"] for h in listed["holds"]}
    assert _cli("archiver", "hold", "release", "cli-hold", *url).returncode == 0
    again = _cli("archiver", "hold", "release", "cli-hold", *url)
    assert again.returncode != 0 and "no active hold" in again.stderr
