"""Hot and archived traces behind the same list, filters, trace page, sessions and API (issue 9).

The store holds the known traces twice: a recent set (hot) and the same shapes three days ago,
moved to the Delta archive by a real archiver run (rule: hot for 1 day, archived forever); one more
old trace is caught by a second run stopped right after the commit (its archive copy is the visible
one, its hot copy is not deleted yet). Spans enter the store as the collector writes them.
"""
from __future__ import annotations

import time

import pytest

import ui_traces

DAY = 86400 * ui_traces.S


@pytest.fixture(scope="module")
def tiered(tmp_path_factory):
    from fastapi.testclient import TestClient

    from tracelake.config import Settings
    from tracelake.store import open_store
    from tracelake.web import create_app

    from tracelake.archiver import runs
    from tracelake.archiver.delta import ArchiveLocation
    from tracelake.archiver.policy import parse_policy
    from tracelake.archiver.service import Archiver

    root = tmp_path_factory.mktemp("ui-archive")
    store = open_store(data_dir=root / "data")
    now = time.time_ns()
    hot = ui_traces.known_traces(now)
    old = ui_traces.known_traces(now - 3 * DAY, seed=7)
    moving = ui_traces.known_traces(now - 2 * DAY, seed=8)
    ui_traces.insert(store, hot.requests + old.requests)
    policy = parse_policy("rules:\n  - name: default\n    hot: 1d\n    archive: forever\n")
    archiver = Archiver(store, policy, ArchiveLocation.for_url((root / "objects").as_uri()))
    app = create_app(store, Settings())
    app.state.archiver = archiver
    with TestClient(app) as client:
        # Nothing archived yet: the archive's objects are empty, the list is the hot tier's.
        assert len(client.get("/api/traces", params={"range": "7d"}).json()["traces"]) == 10
        archiver.run_once()
        ui_traces.insert(store, [moving.requests[0]])
        mp = pytest.MonkeyPatch()
        mp.setenv(runs.FAIL_ENV, "after_committed:error")
        with pytest.raises(runs.InjectedFailure):
            archiver.run_once()
        mp.undo()
        yield client, hot, old, moving
    archiver.release()  # its own chdb connection: left open, it pins the embedded engine to this path
    store.close()


def _list(client, **params) -> list[dict]:
    r = client.get("/api/traces", params=params)
    assert r.status_code == 200, r.text
    return r.json()["traces"]


def test_recent_range_reads_the_hot_tier_only(tiered):
    client, hot, _, _ = tiered
    rows = _list(client, range="1h")
    assert {r["trace_id"] for r in rows} == {hot.genai, hot.openinference, hot.openllmetry, hot.error, hot.xss}
    assert {r["tier"] for r in rows} == {"hot"}


def test_wide_range_merges_both_tiers_newest_first(tiered):
    client, hot, old, moving = tiered
    rows = _list(client, range="7d")
    tiers = {r["trace_id"]: r["tier"] for r in rows}
    assert len(rows) == 11 and len(tiers) == 11  # the moving trace appears once
    assert [r["start_ns"] for r in rows] == sorted((r["start_ns"] for r in rows), reverse=True)
    assert {t for t, tier in tiers.items() if tier == "archive"} == {old.genai, old.openinference, old.openllmetry,
                                                                      old.error, old.xss, moving.genai}
    assert tiers[hot.genai] == "hot"


def test_archived_row_has_the_same_figures_as_its_hot_twin(tiered):
    client, hot, old, _ = tiered
    rows = {r["trace_id"]: r for r in _list(client, range="7d")}
    a, h = rows[old.genai], rows[hot.genai]
    for key in ("name", "root_service", "status", "error_spans", "spans", "services", "models", "input_tokens",
                "output_tokens", "session_id", "user_id", "project"):
        assert a[key] == h[key], key
    assert a["cost_usd"] == pytest.approx(h["cost_usd"]) and a["duration_ms"] == pytest.approx(h["duration_ms"])


@pytest.mark.parametrize("q,names", [
    ("model:gpt-4o", {"genai", "error"}),
    ("status:error", {"error"}),
    ("tokens>1000", {"genai"}),
    ("session:sess-1 -status:error", {"genai"}),
    ("service:oi-svc OR name:weather*", {"openinference", "openllmetry"}),
    ('"refund"', {"error"}),  # free text: span payloads of both tiers
    ("span:retrieve", {"openinference"}),
    ("event:exception", {"error"}),
    ("attr.gen_ai.tool.name:lookup_order", {"genai"}),
    ("-span:retrieve model:*", {"genai", "openllmetry", "error", "xss"}),
])
def test_filters_cover_both_tiers(tiered, q, names):
    client, hot, old, moving = tiered
    got = {(r["trace_id"], r["tier"]) for r in _list(client, range="7d", q=q)}
    want = {(getattr(k, n), tier) for k, tier in ((hot, "hot"), (old, "archive")) for n in names}
    if "genai" in names:
        want.add((moving.genai, "archive"))
    assert got == want


def test_cursor_pages_cover_both_tiers_once(tiered):
    client, *_ = tiered
    every = [r["trace_id"] for r in _list(client, range="7d")]
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"range": "7d", "limit": 3, **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/traces", params=params).json()
        seen += [r["trace_id"] for r in body["traces"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == every


def test_archived_trace_page_and_api(tiered):
    client, hot, old, _ = tiered
    a = client.get(f"/api/traces/{old.genai}").json()
    h = client.get(f"/api/traces/{hot.genai}").json()
    assert a["tier"] == "archive" and h["tier"] == "hot"
    assert [(s["name"], s["depth"]) for s in a["spans"]] == [(s["name"], s["depth"]) for s in h["spans"]]
    page = client.get(f"/traces/{old.genai}", params={"span": old.genai_chat})
    assert page.status_code == 200 and 'class="badge tier tier-archive"' in page.text
    assert "Your order 42 has shipped." in page.text  # the selected span's panel, read from the archive
    span = client.get(f"/api/traces/{old.error}/spans/{old.error_span}").json()
    assert span["tier"] == "archive" and span["events"][0]["name"] == "exception"
    assert span["attributes"]["gen_ai.request.model"] == "gpt-4o"


def test_archived_trace_totals_skeleton_and_shape_match_the_hot_copy(tiered):
    """The big-trace reads (totals, tree windows, shape) give the same answers from the archive."""
    client, hot, old, _ = tiered
    a, h = (client.get(f"/api/traces/{t}").json() for t in (old.genai, hot.genai))
    keys = ("span_count", "error_spans", "input_tokens", "output_tokens", "services", "duration_ms")
    assert a["tier"] == "archive" and {k: a[k] for k in keys} == {k: h[k] for k in keys} and a["span_count"] == 3
    sa, sh = (client.get(f"/api/traces/{t}/skeleton").json() for t in (old.genai, hot.genai))
    assert [r[2:5] for r in sa["rows"]] == [r[2:5] for r in sh["rows"]] and sa["tier"] == "archive"
    ga, gh = (client.get(f"/api/traces/{t}/shape").json()["groups"] for t in (old.genai, hot.genai))
    assert [(g["name"], g["n"]) for g in ga] == [(g["name"], g["n"]) for g in gh]


def test_moving_trace_is_read_from_the_archive(tiered):
    client, _, _, moving = tiered
    body = client.get(f"/api/traces/{moving.genai}").json()
    assert body["tier"] == "archive" and len(body["spans"]) == 3


def test_list_rows_show_their_tier(tiered):
    client, hot, old, _ = tiered
    html = client.get("/traces", params={"range": "7d"}).text
    assert f'data-id="{old.genai}" data-tier="archive"' in html
    assert f'data-id="{hot.genai}" data-tier="hot"' in html


def test_sessions_cover_both_tiers(tiered):
    client, hot, old, moving = tiered
    sessions = {s["session_id"]: s for s in client.get("/api/sessions", params={"range": "7d"}).json()["sessions"]}
    s1 = sessions["sess-1"]
    assert s1["traces"] == 5 and s1["tiers"] == ["hot", "archive"]  # genai + error, each tier, + moving genai
    assert s1["failed_traces"] == 2  # the error trace of each tier: traces, not their error spans
    recent = {s["session_id"]: s for s in client.get("/api/sessions", params={"range": "1h"}).json()["sessions"]}
    assert recent["sess-1"]["traces"] == 2 and recent["sess-1"]["tiers"] == ["hot"]
    body = client.get("/api/sessions/sess-1").json()
    turns = body["turns"]
    assert [t["trace"]["tier"] for t in turns] == ["archive", "archive", "archive", "hot", "hot"]
    assert turns[0]["trace"]["trace_id"] == old.genai and turns[0]["user"]  # conversation from archived spans
    assert "refund" in turns[1]["user"]
    assert 'tier-archive' in client.get("/sessions/sess-1").text


def test_sql_api_reads_the_archive_table(tiered):
    client, _, old, _ = tiered
    r = client.get("/api/sql", params={"q": "SELECT count() AS n FROM otel_traces_archive WHERE TraceId = {t:String}",
                                       "param_t": old.genai})
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [[3]]


def _every_row(client, **params) -> list[dict]:
    """The trace list's every row over both tiers, page by page."""
    rows: list[dict] = []
    cursor = None
    while True:
        body = client.get("/api/traces", params={**params, "limit": 200, **({"cursor": cursor} if cursor else {})}).json()
        rows += body["traces"]
        cursor = body["next_cursor"]
        if not cursor:
            return rows


@pytest.mark.parametrize("q", ["", "model:gpt-4o", "status:error", "service:oi-svc OR name:weather*", '"refund"',
                               "-span:retrieve model:*"])
def test_dashboard_counts_the_traces_the_list_shows_in_both_tiers(tiered, q):
    """Over a range reaching the archive the dashboard counts what the list shows: hot and archived
    traces, each once (the moving trace too), with the same filter."""
    client, *_ = tiered
    rows = _every_row(client, range="7d", q=q)
    d = client.get("/api/dashboard", params={"range": "7d", "q": q}).json()
    t = d["totals"]
    assert t["requests"] == len(rows) and sum(b["requests"] for b in d["series"]) == len(rows)
    assert {r["tier"] for r in rows} == {"hot", "archive"}
    assert d["tiers"] == {**d["tiers"], "hot": sum(r["tier"] == "hot" for r in rows),
                          "archive": sum(r["tier"] == "archive" for r in rows), "archive_read": True}
    assert t["errors"] == sum(r["status"] == "error" for r in rows)
    assert t["input_tokens"] == sum(r["input_tokens"] for r in rows)
    assert t["output_tokens"] == sum(r["output_tokens"] for r in rows)
    assert t["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in rows))
    per_service: dict[str, int] = {}
    for r in rows:
        per_service[r["root_service"]] = per_service.get(r["root_service"], 0) + 1
    assert {s["key"]: s["requests"] for s in d["by_service"]} == per_service


def test_dashboard_per_model_calls_include_archived_spans(tiered):
    """By model counts the LLM calls of the counted traces, archived spans included: the same
    figures as the spans of every listed trace, opened one by one."""
    client, *_ = tiered
    for q in ("", "status:error"):
        want: dict[str, dict[str, float]] = {}
        for r in _every_row(client, range="7d", q=q):
            for s in client.get(f"/api/traces/{r['trace_id']}").json()["spans"]:
                if s["model"]:
                    m = want.setdefault(s["model"], {"requests": 0, "archived": 0, "input_tokens": 0, "output_tokens": 0})
                    m["requests"] += 1
                    m["archived"] += r["tier"] == "archive"
                    m["input_tokens"] += s["input_tokens"]
                    m["output_tokens"] += s["output_tokens"]
        d = client.get("/api/dashboard", params={"range": "7d", "q": q}).json()
        got = {m["key"]: {k: m[k] for k in ("requests", "archived", "input_tokens", "output_tokens")} for m in d["by_model"]}
        assert got == want and any(m["archived"] for m in want.values()), q
    recent = client.get("/api/dashboard", params={"range": "1h"}).json()
    assert recent["by_model"] and {m["archived"] for m in recent["by_model"]} == {0}  # a hot-only range


def test_dashboard_page_says_what_it_covers(tiered):
    client, hot, *_ = tiered
    wide = client.get("/dashboard", params={"range": "7d"}).text
    api = client.get("/api/dashboard", params={"range": "7d"}).json()
    assert "Hot and archived traces:" in wide and f"({api['tiers']['hot']} hot, {api['tiers']['archive']} archived)" in wide
    assert f'data-metric="requests" data-value="{api["totals"]["requests"]}"' in wide
    recent = client.get("/dashboard", params={"range": "1h"}).text
    assert "Hot traces only:" in recent and "nothing in this range is archived" in recent
    assert client.get("/api/dashboard", params={"range": "1h"}).json()["tiers"]["archive_read"] is False


def test_dashboard_hot_only_leaves_the_archive_out(tiered):
    """The comparison mode the benchmark times: the hot tier alone, moving trace not counted."""
    from tracelake.ui.queries.dashboard import dashboard
    from tracelake.ui.render import time_range

    client, *_ = tiered
    store = client.app.state.store
    tr = time_range("7d", None, None)
    assert dashboard(store, tr.lo_ns, tr.hi_ns, archive=False)["totals"]["requests"] == 5


def test_retention_api_after_a_run(tiered):
    client, _, old, _ = tiered
    r = client.get("/api/retention").json()
    assert r["configured"] is True and r["archive"].endswith("/archive/otel_traces")
    assert r["rules"] == [{"name": "default", "match": None, "hot": "1d", "archive": "forever"}]
    assert r["plan"] is not None and r["plan_error"] is None
    states = sorted(run["state"] for run in r["runs"])
    assert states == ["committed", "done"]  # the second run was stopped right after its commit
    done = next(run for run in r["runs"] if run["state"] == "done")
    assert done["traces"] == 5 and done["spans"] == 12 and done["error"] == ""
    archive_days = [t for t in r["tiers"] if t["tier"] == "archive"]
    assert archive_days and sum(t["spans"] for t in archive_days) == 12 + 3
    assert r["tier_totals"]["archive"]["spans"] == 15 and r["tier_totals"]["hot"]["spans"] > 0


def test_retention_page(tiered):
    client, *_ = tiered
    html = client.get("/retention").text
    assert 'id="rules"' in html and 'id="plan"' in html and 'id="runs"' in html
    assert html.count("<svg") >= 2 and "Spans per day" in html and "Bytes per day" in html
    assert "not-configured" not in html
    # One job per tab: the overview holds no editor, pins or erasure forms; each tab holds its own.
    assert 'id="rules-editor"' not in html and 'id="retention-keep"' not in html and 'id="retention-erase"' not in html
    for tab, section in (("rules", 'id="rules-editor"'), ("keep", 'id="retention-keep"'), ("erase", 'id="retention-erase"')):
        page = client.get("/retention", params={"tab": tab}).text
        assert section in page and 'id="plan"' not in page and f'id="tab-{tab}" class="active"' in page
    assert client.get("/retention", params={"tab": "nope"}).status_code == 404


def test_hot_read_is_redone_with_the_exclusion_when_a_run_changes_state_meanwhile(tiered):
    from datetime import datetime, timezone

    from tracelake.archiver import runs
    from tracelake.store import tiers

    client, *_ = tiered
    store = client.app.state.store
    seen: list[str] = []

    def read(visible: str) -> int:
        seen.append(visible)
        if len(seen) == 1:  # an archiver writes a state while this read runs
            runs.record(store, runs.new_run(10_000, datetime.now(timezone.utc)), "failed", error="test")
        return len(seen)

    # run-2 of the fixture is still 'committed': the clause is there from the start.
    assert tiers.read_hot(store, read) == 1 and seen == [tiers.HOT_VISIBLE]
    committed = [r for r in runs.list_runs(store) if r.state == "committed"]
    for r in committed:  # let it look finished, then restore it
        runs.record(store, r, "done")
    try:
        seen.clear()
        assert tiers.read_hot(store, read) == 2 and seen == ["1", tiers.HOT_VISIBLE]
        seen.clear()
        assert tiers.read_hot(store, lambda v: seen.append(v) or 0) == 0 and seen == ["1"]  # nothing changed
    finally:
        for r in committed:
            runs.record(store, r, "committed")


@pytest.mark.parametrize("q", ['"refund"', "span:retrieve", "-span:retrieve model:*", "event:exception OR tokens>1000"])
def test_span_filters_give_the_same_rows_past_the_candidate_steps(tiered, monkeypatch, q):
    """Span terms over the archive: first on the newest candidate traces, then day by day below
    them; with tiny candidate steps the day scan does most of the work and the answer is the same."""
    from tracelake.ui.queries import archive_list

    client, *_ = tiered
    want = [(r["trace_id"], r["tier"]) for r in _list(client, range="7d", q=q)]
    monkeypatch.setattr(archive_list, "CANDIDATE_STEPS", (1, 2))
    assert [(r["trace_id"], r["tier"]) for r in _list(client, range="7d", q=q)] == want
    paged: list[tuple[str, str]] = []
    cursor = None
    for _ in range(12):
        body = client.get("/api/traces", params={"range": "7d", "q": q, "limit": 1, **({"cursor": cursor} if cursor else {})}).json()
        paged += [(r["trace_id"], r["tier"]) for r in body["traces"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert paged == want


@pytest.mark.parametrize("q", ['"refund"', "span:retrieve", "-span:retrieve model:*", "event:exception OR tokens>1000"])
def test_span_terms_on_candidates_read_their_files_with_the_views_answer(tiered, monkeypatch, q):
    """The candidates' span check reads the Parquet files of their time window, not the engine
    view; the rows are the same as through the view."""
    from tracelake.query.params import Params
    from tracelake.ui.queries import archive_files, archive_list

    client, _hot, old, _moving = tiered
    p = Params()
    ids = [old.genai, old.error, old.openinference]
    tier = archive_list._files_tier(client.app.state.store, p, f"SELECT arrayJoin(splitByChar(',', {p.s(','.join(ids))}))")
    assert tier is not None and "file(" in tier.spans_table and "otel_traces_archive" not in tier.spans_table
    direct = [(r["trace_id"], r["tier"]) for r in _list(client, range="7d", q=q)]
    monkeypatch.setattr(archive_files, "file_index", lambda store: None)  # through the view
    assert [(r["trace_id"], r["tier"]) for r in _list(client, range="7d", q=q)] == direct
    assert any(tier == "archive" for _, tier in direct) or q.startswith("-")


def test_search_results_in_both_tiers(tiered):
    """Issue 23: the span that matched, highlights and find-in-trace read archived spans too, with
    the same term semantics (a phrase across a tag, a word not a substring)."""
    client, hot, old, _ = tiered
    rows = {r["trace_id"]: r for r in _list(client, range="7d", q="quokka")}
    assert set(rows) == {hot.xss, old.xss} and rows[old.xss]["tier"] == "archive"
    for tid in (hot.xss, old.xss):
        assert (rows[tid]["matched_span"]["name"], rows[tid]["matched_span"]["count"]) == (ui_traces.XSS_IMG, 1)
    phrase = {r["trace_id"]: r["matched_span"] for r in _list(client, range="7d", q='"refund for order"')}
    assert set(phrase) == {hot.error, old.error}
    assert phrase[old.error] == {"span_id": old.error_span, "name": "chat gpt-4o", "count": 1}
    # The archived trace opened from the list: its matching span marked, the words highlighted, escaped.
    html = client.get(f"/traces/{old.xss}", params={"span": rows[old.xss]["matched_span"]["span_id"],
                                                     "hl": "quokka"}).text
    assert "&lt;/script&gt;<mark>quokka</mark>&lt;img src=x" in html and "<script>window.__xss" not in html
    assert "1 span of this trace matches" in html and 'class="srow sel hit"' in html
    find = f"/api/traces/{old.error}/find"
    assert client.get(find, params={"q": "refund"}).json()["total"] == 2
    assert client.get(find, params={"q": "refun"}).json()["total"] == 0
    assert client.get(find, params={"q": '"refund for order"'}).json()["matches"] == [old.error_span]


@pytest.mark.parametrize("value,mode", [("quokka", "word"), ("refund for order", "phrase"), ("rate*", "prefix"),
                                        ("limit", "word"), ("nothing-here", "word")])
def test_archive_span_terms_cheap_test_never_drops_a_match(tiered, value, mode):
    """Over the archive's columns (events as a list of maps), the substring test before term_sql
    keeps exactly the archived spans term_sql keeps (ui/queries/span_terms.py)."""
    from tracelake.query.compile import ARCHIVE
    from tracelake.query.filters import Text
    from tracelake.query.params import Params, query
    from tracelake.query.text_search import term_sql
    from tracelake.ui.queries.span_terms import span_term_sql

    client, *_ = tiered
    p, term = Params(), Text(value, 0, mode)  # type: ignore[arg-type]
    fast, exact = span_term_sql(p, term, hot=False), term_sql(p, term, ARCHIVE.text)
    got = query(client.app.state.store, f"SELECT countIf({fast}) AS f, countIf({exact}) AS e FROM otel_traces_archive", p)[0]
    assert got["f"] == got["e"] and (got["e"] > 0) == (value != "nothing-here")
