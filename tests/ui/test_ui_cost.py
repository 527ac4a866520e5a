"""Cost priced when read (issue 24): a price change shows in the list, filters, trace page, sessions,
dashboard, SQL and the archive alike, by its effective date; cached tokens at the cached price;
unpriced models said so; model names as they arrive resolve; a trace's total is its spans' sum.

One store: traces written as the collector writes them, the oldest moved to the Delta archive by a
real archiver run (hot 1 day, archived forever), a TestClient on the app. Each test uses models of
its own, so the price edits of one do not move the figures of another.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from otlp_spans import new_trace_id, request, span

from tracelake.store.prices import Price, write_aliases, write_prices

DAY_NS = 86400 * 10**9
M = 1_000_000


def _llm(model: str, input_tokens: int, output_tokens: int, **more: int) -> dict:
    return {"gen_ai.operation.name": "chat", "gen_ai.request.model": model, "gen_ai.usage.input_tokens": input_tokens,
            "gen_ai.usage.output_tokens": output_tokens, **more}


class Traces:
    """Trace ids (hex) by role, and when the store was seeded."""

    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns
        self.ids: dict[str, str] = {}

    def add(self, store, role: str, start_ns: int, spans: list[tuple[str, dict]], session: str = "") -> str:
        trace = new_trace_id()
        root = span("root", trace, start_ns=start_ns, duration_ns=10 * M,
                    attrs={"session.id": session} if session else {})
        children = [span(name, trace, parent=root["span_id"], start_ns=start_ns + (i + 1) * 1000, attrs=attrs)
                    for i, (name, attrs) in enumerate(spans)]
        from tracelake.store.otlp import length_delimited

        store.insert_otlp("otel_traces", length_delimited([request([root, *children], service="cost-svc").SerializeToString()]))
        self.ids[role] = trace.hex()
        return trace.hex()


@pytest.fixture(scope="module")
def priced(tmp_path_factory):
    from fastapi.testclient import TestClient

    from tracelake.archiver.delta import ArchiveLocation
    from tracelake.archiver.policy import parse_policy
    from tracelake.archiver.service import Archiver
    from tracelake.config import Settings
    from tracelake.store import open_store
    from tracelake.web import create_app

    root = tmp_path_factory.mktemp("ui-cost")
    store = open_store(data_dir=root / "data")
    now = time.time_ns()
    t = Traces(now)
    write_prices(store, [Price(model="repriced-model", input=1, output=2)], "test")
    # Two spans of 1M in + 1M out each, three days ago (archived below) and one an hour ago (hot).
    t.add(store, "old", now - 3 * DAY_NS, [("a", _llm("repriced-model", M, M)), ("b", _llm("repriced-model", M, M))],
          session="cost-session-old")
    t.add(store, "new", now - 3600 * 10**9, [("a", _llm("repriced-model", M, M))], session="cost-session-new")
    policy = parse_policy("rules:\n  - name: default\n    hot: 1d\n    archive: forever\n")
    archiver = Archiver(store, policy, ArchiveLocation.for_url((root / "objects").as_uri()))
    app = create_app(store, Settings())
    app.state.archiver = archiver
    with TestClient(app) as client:
        archiver.run_once()
        yield client, store, t
    archiver.release()
    store.close()


def _trace_in_list(client, trace_id: str, q: str = "") -> dict | None:
    r = client.get("/api/traces", params={"range": "7d", "q": f"trace:{trace_id} {q}".strip()})
    assert r.status_code == 200, r.text
    rows = r.json()["traces"]
    return rows[0] if rows else None


def _figures(client, store, trace_id: str, session: str) -> dict[str, float]:
    """The trace's cost as every view shows it."""
    listed = _trace_in_list(client, trace_id)
    page = client.get(f"/api/traces/{trace_id}").json()
    dash = client.get("/api/dashboard", params={"range": "7d", "q": f"trace:{trace_id}"}).json()
    sessions = {s["session_id"]: s for s in client.get("/api/sessions", params={"range": "7d", "q": session}).json()["sessions"]}
    tier = listed["tier"]
    table = "otel_traces" if tier == "hot" else "otel_traces_archive"
    sql = client.post("/api/sql", json={"q": f"SELECT sum(CostUsd) AS c FROM {table} WHERE TraceId = {{t:String}}",
                                        "param_t": trace_id}).json()
    return {"list": listed["cost_usd"], "trace": page["cost_usd"], "spans": sum(s["cost_usd"] for s in page["spans"]),
            "dashboard": dash["totals"]["cost_usd"], "session": sessions[session]["cost_usd"], "sql": sql["rows"][0][0],
            "dashboard by session": next(r["cost_usd"] for r in dash["by_session"] if r["key"] == session),
            "tier": tier}


def _costs(figures: dict) -> set[float]:
    return {round(v, 6) for k, v in figures.items() if k != "tier"}


def test_a_price_change_reprices_by_its_effective_date_in_every_view(priced):
    client, store, t = priced
    old, new = t.ids["old"], t.ids["new"]
    before_old = _figures(client, store, old, "cost-session-old")
    assert before_old["tier"] == "archive"
    assert _costs(before_old) == {6.0}  # 2 spans x (1M x $1 + 1M x $2)
    assert _costs(_figures(client, store, new, "cost-session-new")) == {3.0}

    # A price rise from yesterday: the hour-old trace is priced by it at once; three days ago is not.
    yesterday = datetime.now(timezone.utc) - timedelta(days=1)
    write_prices(store, [Price(model="repriced-model", input=10, output=20, effective_from=yesterday)], "test")
    assert _costs(_figures(client, store, new, "cost-session-new")) == {30.0}
    assert _costs(_figures(client, store, old, "cost-session-old")) == {6.0}
    assert _trace_in_list(client, new, "cost>25") is not None
    assert _trace_in_list(client, old, "cost>5 cost<7") is not None

    # Ops re-price a range: a price effective from ten days ago re-prices the old trace (archived
    # included), and yesterday's price still wins for the new one.
    ten_days = datetime.now(timezone.utc) - timedelta(days=10)
    write_prices(store, [Price(model="repriced-model", input=5, output=5, effective_from=ten_days)], "test")
    assert _costs(_figures(client, store, old, "cost-session-old")) == {20.0}
    assert _costs(_figures(client, store, new, "cost-session-new")) == {30.0}
    assert _trace_in_list(client, old, "cost>19") is not None


def test_cached_tokens_are_priced_at_the_cached_price(priced):
    client, store, t = priced
    write_prices(store, [Price(model="cache-model", input=10, output=20, cache_read=1, cache_write=12.5)], "test")
    # 1M input of which 600k read from the cache and 100k written to it; 100k output.
    tid = t.add(store, "cached", t.now_ns - 60 * 10**9, [("a", _llm("cache-model", M, 100_000, **{
        "gen_ai.usage.cache_read.input_tokens": 600_000, "gen_ai.usage.cache_write.input_tokens": 100_000}))])
    row = _trace_in_list(client, tid)
    assert row["cost_usd"] == pytest.approx((300_000 * 10 + 600_000 * 1 + 100_000 * 12.5 + 100_000 * 20) / M)
    assert row["cache_read_tokens"] == 600_000 and row["cache_write_tokens"] == 100_000
    # A price without a cached price bills cached tokens as plain input.
    write_prices(store, [Price(model="cache-model-plain", input=10, output=20)], "test")
    tid2 = t.add(store, "cached-plain", t.now_ns - 50 * 10**9, [("a", _llm("cache-model-plain", M, 0, **{
        "gen_ai.usage.cache_read.input_tokens": 600_000}))])
    assert _trace_in_list(client, tid2)["cost_usd"] == pytest.approx(10.0)


def test_an_unpriced_model_shows_as_unpriced_not_as_free(priced):
    client, store, t = priced
    tid = t.add(store, "unpriced", t.now_ns - 40 * 10**9, [("a", _llm("mystery-llm-9", 5000, 100))])
    row = _trace_in_list(client, tid)
    assert row["unpriced_spans"] == 1 and row["cost_usd"] == 0
    assert _trace_in_list(client, tid, "unpriced:true") is not None
    page = client.get(f"/api/traces/{tid}").json()
    assert page["unpriced_spans"] == 1
    assert [s["unpriced"] for s in page["spans"] if s["name"] == "a"] == [True]
    by_model = {m["key"]: m for m in client.get("/api/dashboard", params={"range": "1h"}).json()["by_model"]}
    assert by_model["mystery-llm-9"]["unpriced_spans"] == 1
    # Priced later (from the beginning of time, as a first price is): the same span is priced.
    write_prices(store, [Price(model="mystery-llm-9", input=2, output=0)], "test")
    row = _trace_in_list(client, tid)
    assert row["unpriced_spans"] == 0 and row["cost_usd"] == pytest.approx(0.01)
    assert _trace_in_list(client, tid, "unpriced:true") is None


@pytest.mark.parametrize("name", ["resolve-model-2024-08-06", "openai/resolve-model", "azure/Resolve-Model-20241022",
                                  "resolve-model@20240620", "my-azure-deployment"])
def test_dated_prefixed_and_aliased_names_resolve(priced, name):
    client, store, t = priced
    # The span first (a name never seen before), then the price and alias, as ops would add them.
    tid = t.add(store, f"name-{name}", t.now_ns - 30 * 10**9, [("a", _llm(name, M, 0))])
    write_prices(store, [Price(model="resolve-model", input=3, output=0)], "test")
    write_aliases(store, {"my-azure-deployment": "resolve-model"})
    row = _trace_in_list(client, tid)
    assert (row["cost_usd"], row["unpriced_spans"]) == (pytest.approx(3.0), 0)


def test_an_exact_dated_price_wins_over_the_base_name(priced):
    client, store, t = priced
    tid = t.add(store, "dated", t.now_ns - 20 * 10**9, [("a", _llm("dated-model-2025-01-01", M, 0)),
                                                         ("b", _llm("dated-model-2025-06-01", M, 0))])
    write_prices(store, [Price(model="dated-model", input=1, output=0),
                         Price(model="dated-model-2025-01-01", input=7, output=0)], "test")
    assert _trace_in_list(client, tid)["cost_usd"] == pytest.approx(8.0)


def test_a_project_price_overrides_the_default_for_that_project_only(priced):
    client, store, t = priced
    tid = t.add(store, "default-project", t.now_ns - 15 * 10**9, [("a", _llm("shared-model", M, 0))])
    tid2 = t.add(store, "negotiated", t.now_ns - 14 * 10**9,
                 [("a", {**_llm("shared-model", M, 0), "tracelake.project": "negotiated"})])
    write_prices(store, [Price(model="shared-model", input=4, output=0),
                         Price(model="shared-model", project="negotiated", input=1, output=0)], "test")
    assert _trace_in_list(client, tid)["cost_usd"] == pytest.approx(4.0)
    assert _trace_in_list(client, tid2)["cost_usd"] == pytest.approx(1.0)


def test_trace_totals_equal_the_sum_of_their_spans(priced):
    client, store, t = priced
    write_prices(store, [Price(model="sum-a", input=1, output=3, reasoning=9), Price(model="sum-b", input=0.5, output=1)],
                 "test")
    tid = t.add(store, "sum", t.now_ns - 10 * 10**9, [
        ("a", _llm("sum-a", 12_345, 6_789, **{"gen_ai.usage.reasoning.output_tokens": 1_000})),
        ("b", _llm("sum-b", 777, 55)), ("c", _llm("sum-a", 1, 1)), ("d", {"plain": "span"})])
    page = client.get(f"/api/traces/{tid}").json()
    spans = sum(s["cost_usd"] for s in page["spans"])
    expected = (12_345 * 1 + 5_789 * 3 + 1_000 * 9 + 777 * 0.5 + 55 * 1 + 1 * 1 + 1 * 3) / M
    assert spans == pytest.approx(expected)
    assert page["cost_usd"] == pytest.approx(spans)
    assert _trace_in_list(client, tid)["cost_usd"] == pytest.approx(spans)
    shape = client.get(f"/api/traces/{tid}/shape").json()
    assert sum(r["cost"] for r in shape["groups"]) == pytest.approx(spans)


def test_the_prices_page_lists_unpriced_models_and_an_import_prices_them_at_once(priced):
    client, store, t = priced
    tid = t.add(store, "litellm", t.now_ns - 5 * 10**9, [("a", _llm("vendor/page-model-x", 4000, 1000, **{
        "gen_ai.usage.cache_read.input_tokens": 3000}))])
    page = client.get("/prices")
    assert page.status_code == 200
    unpriced_section = page.text.split('id="unpriced"')[1].split("</table>")[0]
    assert "vendor/page-model-x" in unpriced_section and "4,000" in unpriced_section
    # LiteLLM's format: USD per token, a cached price; its sample spec and non-token entries are skipped.
    litellm = {"sample_spec": {"input_cost_per_token": 0, "mode": "chat"},
               "page-model-x": {"input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06,
                                "cache_read_input_token_cost": 5e-07, "litellm_provider": "openai", "mode": "chat"},
               "dall-e-9": {"output_cost_per_image": 0.04, "mode": "image_generation"}}
    r = client.post("/prices/import", data={"text": __import__("json").dumps(litellm)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    row = _trace_in_list(client, tid)
    assert row["unpriced_spans"] == 0
    assert row["cost_usd"] == pytest.approx((1000 * 2 + 3000 * 0.5 + 1000 * 8) / M)
    assert "vendor/page-model-x" not in client.get("/prices").text.split('id="unpriced"')[1].split("</table>")[0]


def test_a_bad_price_is_refused_with_the_reason_and_nothing_is_written(priced):
    client, store, _ = priced
    before = client.get("/api/prices").json()["history"]
    r = client.post("/prices", data={"model": "bad-model", "input": "1", "output": "-2"})
    assert r.status_code == 400 and "output" in r.text and "greater than or equal to 0" in r.text
    r = client.post("/prices/import", data={"text": '{"prices": [{"model": "bad-model", "input": 1, "output": 1, "colour": 1}]}'})
    assert r.status_code == 400 and "prices[0]" in r.text and "colour" in r.text
    assert client.get("/api/prices").json()["history"] == before
