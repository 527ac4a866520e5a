"""Traces bigger than a page: totals over the whole trace, pages and windows that say what is
left, runs of similar siblings folded, the shape view, and a deep chain (issue 20).

Sizes are kept small for the suite (a few thousand spans: above views.SMALL_TRACE, so the windowed
page is what runs); benchmarks/bigtrace.py runs 1k to 1M."""
from __future__ import annotations

import re
import time

import pytest

import ui_traces
from tracelake.ui import views

STEPS = 700  # 1 + 6 * 700 = 4,201 spans: over SMALL_TRACE (2,000), several windows, 2,800 tool calls
CHAIN = 3_000


@pytest.fixture(scope="module")
def big(known_store):
    store, _ = known_store
    now = time.time_ns() - 600 * ui_traces.S
    loop, loop_id = ui_traces.agent_loop_requests(STEPS, now, per_request=1_000)
    chain, chain_id, deepest = ui_traces.chain_requests(CHAIN, now + ui_traces.S)
    ui_traces.insert(store, loop + chain)
    return {"store": store, "loop": loop_id, "chain": chain_id, "deepest": deepest}


def sql_totals(store, trace_id: str) -> dict:
    return store.query_arrow(
        "SELECT count() AS spans, countIf(StatusCode = 'Error') AS errors, sum(InputTokens) AS i, "
        "sum(OutputTokens) AS o, round(sum(CostUsd), 9) AS c FROM otel_traces WHERE TraceId = {t:String}",
        {"t": trace_id}).to_pylist()[0]


def test_totals_cover_the_whole_trace_and_match_sql(client, big):
    body = client.get(f"/api/traces/{big['loop']}", params={"limit": 500}).json()
    want = sql_totals(big["store"], big["loop"])
    assert want["spans"] == 1 + 6 * STEPS
    assert body["span_count"] == want["spans"] and len(body["spans"]) == 500
    assert (body["error_spans"], body["input_tokens"], body["output_tokens"]) == (want["errors"], want["i"], want["o"])
    assert body["cost_usd"] == pytest.approx(want["c"]) and want["c"] > 0
    assert body["services"] == ["planner"] and body["duration_ms"] == pytest.approx(STEPS * 5 + 1, rel=0.01)


def test_api_pages_say_what_is_left_and_give_every_span_once(client, big):
    seen, cursor, pages = [], 0, 0
    while cursor is not None:
        body = client.get(f"/api/traces/{big['loop']}", params={"cursor": cursor, "limit": 1500}).json()
        assert body["complete"] is False and len(body["spans"]) <= 1500
        seen += [s["span_id"] for s in body["spans"]]
        cursor, pages = body["next_cursor"], pages + 1
    assert pages == 3 and len(seen) == len(set(seen)) == 1 + 6 * STEPS
    one = client.get(f"/api/traces/{big['loop']}", params={"limit": 50_000}).json()
    assert one["complete"] is True and one["next_cursor"] is None
    assert [s["depth"] for s in one["spans"][:3]] == [0, 1, 2]  # depth-first: root, a step, its LLM call
    assert client.get(f"/api/traces/{big['loop']}", params={"limit": 0}).status_code == 422


def test_skeleton_folds_runs_and_opens_them_in_windows(client, big):
    first = client.get(f"/api/traces/{big['loop']}/skeleton").json()
    root, group = first["rows"]
    assert root[3] == "invoke_agent planner" and root[9] == STEPS
    g = group["group"]
    assert (g["name"], g["count"], g["depth"]) == ("agent step", STEPS, 1)
    assert g["errors"] == sql_totals(big["store"], big["loop"])["errors"] > 0
    assert first["next"] is None
    opened = client.get(f"/api/traces/{big['loop']}/skeleton",
                        params={"start": g["first_span_id"], "opened": g["first_span_id"], "limit": 12}).json()
    names = [r[3] for r in opened["rows"]]
    assert names == (["agent step", "chat gpt-4o"] + ["execute_tool lookup_order"] * 4) * 2
    assert opened["next"] is not None
    # Collapse the first step: its six rows become one.
    step = opened["rows"][0][0]
    collapsed = client.get(f"/api/traces/{big['loop']}/skeleton",
                           params={"start": g["first_span_id"], "opened": g["first_span_id"], "collapsed": step,
                                   "limit": 7}).json()
    assert [r[3] for r in collapsed["rows"]][:3] == ["agent step", "agent step", "chat gpt-4o"]
    assert collapsed["rows"][0][10] is True


def test_shape_groups_by_name_and_model(client, big):
    body = client.get(f"/api/traces/{big['loop']}/shape").json()
    by_name = {g["name"]: g for g in body["groups"]}
    tools = by_name["execute_tool lookup_order"]
    assert tools["n"] == 4 * STEPS and tools["errors"] == body["error_spans"] > 0
    assert by_name["chat gpt-4o"]["model"] == "gpt-4o" and by_name["chat gpt-4o"]["n"] == STEPS
    assert sum(g["n"] for g in body["groups"]) == body["spans"]


def test_page_is_windowed_says_so_and_loads_the_rest(client, big):
    html = client.get(f"/traces/{big['loop']}").text
    assert 'data-windowed="/traces/' in html and 'id="big-trace"' in html
    assert f'<dd id="trace-spans">{1 + 6 * STEPS:,}</dd>' in html
    assert html.count('class="srow') == 2 and "×700" in html  # the root and the folded run
    first = re.search(r'data-group="([0-9a-f]{16})"', html).group(1)
    frag = client.get(f"/traces/{big['loop']}/rows", params={"start": first, "opened": first}).text
    assert frag.count('class="srow') == views.WINDOW_ROWS and 'class="more' in frag
    nxt = re.search(r'class="more muted" data-start="([0-9a-f]{16})"', frag).group(1)
    more = client.get(f"/traces/{big['loop']}/rows", params={"start": nxt, "opened": first}).text
    assert 'class="srow' in more and nxt in more


def test_deep_chain_in_the_page_and_the_api(client, big):
    body = client.get(f"/api/traces/{big['chain']}", params={"limit": 50_000}).json()
    assert body["span_count"] == CHAIN and body["spans"][-1]["depth"] == CHAIN - 1
    # Opened at the deepest span: the root, its nearest ancestors, then the span, selected; the
    # page says how many rows above are not shown.
    html = client.get(f"/traces/{big['chain']}", params={"span": big["deepest"]}).text
    rows = re.findall(r'class="srow([^"]*)" data-id="([0-9a-f]{16})"\s+data-depth="(\d+)"', html)
    assert int(rows[0][2]) == 0 and [int(d) for _, _, d in rows[1:]] == list(range(CHAIN - views.PATH_ROWS, CHAIN))
    assert rows[-1][1] == big["deepest"] and "sel" in rows[-1][0]
    above = CHAIN - 1 - len(rows[:-1])
    assert f'{above:,} rows above this span are not shown' in html


def test_find_in_trace_by_status_attribute_and_text(client, big):
    url = f"/api/traces/{big['loop']}/find"
    errors = client.get(url, params={"q": "status:error"}).json()
    assert errors["total"] == 28 == len(errors["matches"]) and errors["complete"] is True  # every 97th of 2,800
    order = [s["span_id"] for s in client.get(f"/api/traces/{big['loop']}", params={"limit": 50_000}).json()["spans"]]
    positions = [order.index(m) for m in errors["matches"]]
    assert positions == sorted(positions)  # in tree order
    assert client.get(url, params={"q": "gen_ai.tool.name=lookup"}).json()["total"] == 4 * STEPS
    assert client.get(url, params={"q": "NOT FOUND order"}).json()["total"] == 28  # status message, any case
    # Words mean what the filter's free text means (issue 23): whole words, prefixes, phrases in order.
    assert client.get(url, params={"q": "oun"}).json()["total"] == 0  # not a substring
    assert client.get(url, params={"q": "foun*"}).json()["total"] == 28
    assert client.get(url, params={"q": '"order not found"'}).json()["total"] == 28
    assert client.get(url, params={"q": '"found not"'}).json()["total"] == 0
    assert client.get(url, params={"q": "lookup_order status:error"}).json()["total"] == 28  # name words, and errors
    assert client.get(url, params={"q": "zzz-nothing"}).json() ["matches"] == []
    assert client.get(url, params={"q": ""}).status_code == 422
    # Revealing a match inside the folded run: its step and the run are opened, it comes first.
    frag = client.get(f"/traces/{big['loop']}/rows", params={"reveal": errors["matches"][3]}).text
    assert 'class="tree-state" hidden' in frag and "data-opened=" in frag
    ids = re.findall(r'data-id="([0-9a-f]{16})"', frag)
    assert ids[2] == errors["matches"][3] and len(ids) == 2 + views.WINDOW_ROWS  # root, its step, then a window


def test_search_marks_spans_in_every_window_of_a_big_trace(client, big):
    """hl=: one query finds the matching spans of the whole trace; the folded run says how many it
    holds, and windows loaded later mark theirs (issue 23)."""
    html = client.get(f"/traces/{big['loop']}", params={"hl": '"not found"'}).text
    assert "28 spans of this trace match" in html and 'data-hl="&#34;not found&#34;"' in html
    first = re.search(r'data-group="([0-9a-f]{16})"', html).group(1)
    assert re.search(r'class="chip hits"[^>]*>28 matches<', html)
    errors = client.get(f"/api/traces/{big['loop']}/find", params={"q": "status:error"}).json()["matches"]
    frag = client.get(f"/traces/{big['loop']}/rows", params={"reveal": errors[5], "hl": '"not found"'}).text
    hits = re.findall(r'class="srow[^"]* hit" data-id="([0-9a-f]{16})"', frag)
    assert hits and hits[0] == errors[5] and set(hits) <= set(errors)
    assert "<mark>" not in frag  # span names hold no search word: nothing else is marked
    plain = client.get(f"/traces/{big['loop']}/rows", params={"reveal": errors[5]}).text
    assert " hit\"" not in plain and "hitmark" not in plain


def test_flame_bounds_bars_by_pixels_and_marks_the_critical_path(client, big):
    url = f"/api/traces/{big['loop']}/flame"
    whole = client.get(url, params={"width": 300, "depths": 3}).json()
    n = len(whole["x0"])
    assert 0 < n <= 300 * 3 and set(whole["depth"]) == {0, 1, 2} and whole["max_depth"] == 2
    cells = list(zip(whole["depth"], whole["x0"]))
    assert len(cells) == len(set(cells))  # one bar per (depth, pixel column)
    assert all(0 <= a < b <= 300 for a, b in zip(whole["x0"], whole["x1"]))
    names = [whole["names"][i] for i in whole["name"]]
    root = names.index("invoke_agent planner")
    assert whole["critical"][root] and whole["x0"][root] == 0 and whole["x1"][root] == 300
    # Every step runs after the one before: all of them are on the critical path.
    steps = [c for c, name, d in zip(whole["critical"], names, whole["depth"]) if name == "agent step"]
    assert steps and all(steps)
    assert 3 in whole["kind"] and 1 in whole["kind"]  # errors and LLM calls are told apart
    # Zoomed into the first 1% of the trace: fewer spans, drawn wider.
    lo, hi = whole["from_ns"], whole["from_ns"] + (whole["to_ns"] - whole["from_ns"]) // 100
    zoom = client.get(url, params={"width": 300, "depths": 3, "from_ns": lo, "to_ns": hi}).json()
    assert zoom["from_ns"] == lo and zoom["to_ns"] == hi and max(b - a for a, b in zip(zoom["x0"][1:], zoom["x1"][1:])) > 2
    deep = client.get(f"/api/traces/{big['chain']}/flame", params={"width": 100, "depth_from": 2990, "depths": 20}).json()
    assert sorted(set(deep["depth"])) == list(range(2990, CHAIN))


def test_a_100k_span_trace_totals_match_sql_and_every_page_is_there(client, known_store):
    """The issue's own size: 100,003 spans (a planner, 16,667 steps of six spans); the header's
    totals equal SQL over the trace, and the API's pages add up to every span exactly once."""
    store, _ = known_store
    reqs, tid = ui_traces.agent_loop_requests(16_667, time.time_ns() - 7200 * ui_traces.S, seed=99)
    ui_traces.insert(store, reqs)
    want = sql_totals(store, tid)
    assert want["spans"] == 100_003
    head = client.get(f"/api/traces/{tid}", params={"limit": 1}).json()
    assert (head["span_count"], head["error_spans"], head["input_tokens"], head["output_tokens"]) == (
        want["spans"], want["errors"], want["i"], want["o"]) and head["cost_usd"] == pytest.approx(want["c"])
    html = client.get(f"/traces/{tid}").text
    assert f'<dd id="trace-spans">{want["spans"] / 1e3:.1f}k</dd>' in html and "×16.7k" in html
    seen, cursor = 0, 0
    while cursor is not None:
        body = client.get(f"/api/traces/{tid}", params={"cursor": cursor, "limit": 50_000}).json()
        seen += len({s["span_id"] for s in body["spans"]})
        cursor = body["next_cursor"]
    assert seen == want["spans"]


def test_small_traces_keep_every_row_in_the_page(client, known):
    html = client.get(f"/traces/{known.genai}").text
    assert "data-windowed" not in html and html.count('class="srow') == 3
