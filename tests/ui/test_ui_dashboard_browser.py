"""The dashboard in headless Chromium at every range the page offers (issue 21 item 5).

A real ``tracelake server --retention`` (hot 1 day, archived forever) gets LLM traces through its
collector at ages from 30 seconds to 28 days, with no failure in the last 5 minutes (a real 0 %
error rate), and one archiver run moves those older than a day to the Delta archive. For each range
the page is opened and what it shows is measured in the DOM: every time label inside its SVG's
viewBox, bars at least MIN_BAR_PX wide, no "no data" where the series has data, the bucket as a
caption and not a metric, and tiles, chart totals and tables equal to /api/dashboard. A
screenshot of each range is saved in the test's tmp dir.
"""
from __future__ import annotations

import random
import re
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

import ui_traces
from ui_browser import clean, needs_chromium, post_otlp, run_archiver

pytestmark = needs_chromium

RETENTION = "rules:\n  - name: default\n    hot: 1d\n    archive: forever\n"
MIN_BAR_PX = 4.0
H = 3600
# (age in seconds, failed?) of the traces sent; three services take turns.
AGES = [(30, False), (90, False), (150, False), (8 * 60, True), (12 * 60, False), (40 * 60, False),
        (3 * H, False), (5 * H, True), (12 * H, False), (20 * H, False),
        (3 * 24 * H, False), (5 * 24 * H, True), (10 * 24 * H, False), (20 * 24 * H, False), (28 * 24 * H, True)]
MODELS = ("gpt-4o", "claude-3-5-sonnet", "gpt-4o-mini")
SERVICES = ("checkout", "support", "search")
RANGES = ("5m", "15m", "1h", "6h", "24h", "7d", "30d", "custom")


def _traces(now_ns: int) -> list[bytes]:
    """Each age twice: an agent run with one chat span (tokens, a model), failed or not."""
    rnd = random.Random(2105)
    out = []
    for i, (age, failed) in enumerate(AGES * 2):
        tid, root, chat = ui_traces.hexid(rnd, 16), ui_traces.hexid(rnd, 8), ui_traces.hexid(rnd, 8)
        model = MODELS[i % 3]
        spans = [ui_traces.SpanSpec("agent run", root, "", 0, 900 + 100 * (i % 7), {"gen_ai.operation.name": "invoke_agent"},
                                    error="agent failed" if failed and i < len(AGES) else None),
                 ui_traces.SpanSpec(f"chat {model}", chat, root, 50, 700, {
                     "gen_ai.operation.name": "chat", "gen_ai.request.model": model,
                     "gen_ai.usage.input_tokens": 10 * (i + 1), "gen_ai.usage.output_tokens": i + 1})]
        req = ui_traces.request(tid, spans, now_ns - age * ui_traces.S, SERVICES[i % 3])
        out.append(req.SerializeToString())
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from server_process import start_server

    root = tmp_path_factory.mktemp("ui-dashboard-e2e")
    rules = root / "retention.yaml"
    rules.write_text(RETENTION)
    srv = start_server(root / "data", retention=str(rules))
    try:
        for body in _traces(time.time_ns()):
            post_otlp(srv.otlp_http_url, body)
        srv.wait_loaded()
        events = run_archiver(srv.ui_url)
        assert [run["state"] for run in events[-1]["runs"]] == ["done"]
        assert events[-1]["runs"][0]["traces"] == 10  # ages of 3 days and more, twice each
        yield srv
    finally:
        srv.stop()


def _params(rng: str) -> dict[str, str]:
    if rng != "custom":
        return {"range": rng}
    now = datetime.now(timezone.utc)
    return {"from": (now - timedelta(days=45)).strftime("%Y-%m-%dT%H:%M"), "to": now.strftime("%Y-%m-%dT%H:%M")}


# Measured in the page: each chart's SVG width in its own units, the boxes of its time and value
# labels (getBBox: SVG units), its bars' rendered widths (px), its dots, and any 'no data' text.
GEOMETRY = """() => [...document.querySelectorAll('figure.chart')].map(f => {
  const svg = f.querySelector('svg');
  const box = e => { const b = e.getBBox(); return [b.x, b.x + b.width, e.textContent]; };
  return {title: f.querySelector('.ctitle').textContent, total: (f.querySelector('.total') || {}).textContent || '',
          width: svg.viewBox.baseVal.width, px: svg.getBoundingClientRect().width,
          xlabels: [...svg.querySelectorAll('text.xlab')].map(box), ylabels: [...svg.querySelectorAll('text.ylab')].map(box),
          bars: [...svg.querySelectorAll('rect')].map(r => [r.getBoundingClientRect().width, r.querySelector('title').textContent]),
          dots: svg.querySelectorAll('circle').length, nodata: svg.querySelectorAll('.nodata').length};
})"""


def _value(title: str) -> float:
    """The number a bar's hover title ends with ('2026-12-03 14:00 · ok: 3')."""
    return float(title.rsplit(": ", 1)[1].replace(",", ""))


@pytest.mark.parametrize("rng", RANGES)
def test_dashboard_looks_finished_at_every_range(server, page, rng, tmp_path):
    params = _params(rng)
    api = httpx.get(f"{server.ui_url}/api/dashboard", params=params, timeout=60).json()
    t = api["totals"]
    assert t["requests"] > 0, api  # every range holds traces
    page.goto(f"{server.ui_url}/dashboard?" + "&".join(f"{k}={v}" for k, v in params.items()))
    page.screenshot(path=str(tmp_path / f"dashboard-{rng}.png"), full_page=True, caret="initial")

    charts = page.evaluate(GEOMETRY)
    assert [c["title"] for c in charts] == ["Traces", "Error rate", "Latency", "Tokens", "Cost", "Hot and archived traces"]
    for c in charts:
        assert c["xlabels"], c["title"]
        for lo, hi, text in c["xlabels"] + c["ylabels"]:
            assert 0 <= lo and hi <= c["width"], (rng, c["title"], text, lo, hi, c["width"])
        widths = [w for w, _ in c["bars"]]
        assert all(w >= MIN_BAR_PX for w in widths), (rng, c["title"], min(widths))
        assert c["nodata"] == 0 and (c["bars"] or c["dots"]), (rng, c["title"])  # the series has data
    body = page.inner_text("body")
    assert "no data" not in body and "per bucket" not in body
    # A range without failures draws its 0 % points (a value, not missing data).
    rate = next(c for c in charts if c["title"] == "Error rate")
    assert rate["dots"] >= 1
    if t["errors"] == 0:
        assert rng == "5m" and rate["total"].startswith("0.00%")

    # The page shows what the API says.
    tiles = {m: page.get_attribute(f".tile[data-metric='{m}']", "data-value") for m in ("requests", "input_tokens", "output_tokens")}
    assert tiles == {m: str(t[m]) for m in tiles}
    assert page.inner_text(".tile[data-metric='error_rate'] .tv") == f"{t['error_rate'] * 100:.2f}%"
    traces = charts[0]
    assert traces["total"] == f"{t['requests']:,} traces" and sum(_value(ti) for _, ti in traces["bars"]) == t["requests"]
    tokens = charts[3]
    assert sum(_value(ti) for _, ti in tokens["bars"]) == t["input_tokens"] + t["output_tokens"]
    tiers = charts[5]
    assert sum(_value(ti) for _, ti in tiers["bars"] if "archived:" in ti) == api["tiers"]["archive"]
    assert page.inner_text("#dash-bucket") == f"One bar = {api['bucket']}."
    scope = page.inner_text("#dash-scope")
    if api["tiers"]["archive_read"]:
        assert api["tiers"]["archive"] > 0 and f"{api['tiers']['archive']} archived" in scope
    else:
        assert scope.startswith("Hot traces only:") and rng in ("5m", "15m", "1h", "6h", "24h")
    models = page.locator("#by-model tbody tr")
    assert [models.nth(i).locator("td").nth(1).inner_text() for i in range(models.count())] == \
        [str(m["requests"]) for m in api["by_model"]]
    services = page.locator("#by-service tbody tr td:first-child")
    assert services.all_inner_texts() == [s["key"] for s in api["by_service"]]
    clean(page)


def test_wide_range_covers_both_tiers_and_narrow_viewport_keeps_bars(server, browser, tmp_path):
    """30 days: the archived traces are counted (the list's count over both tiers); on a narrow
    window (one chart per row, or two small ones) bars stay wide enough."""
    listed, cursor = 0, None
    while True:
        body = httpx.get(f"{server.ui_url}/api/traces", params={"range": "30d", "limit": 200, **({"cursor": cursor} if cursor else {})},
                         timeout=60).json()
        listed += len(body["traces"])
        cursor = body["next_cursor"]
        if not cursor:
            break
    api = httpx.get(f"{server.ui_url}/api/dashboard", params={"range": "30d"}, timeout=60).json()
    assert api["totals"]["requests"] == listed == len(AGES) * 2
    assert api["tiers"]["archive"] == 10 and sum(m["archived"] for m in api["by_model"]) == 10
    for width in (1000, 700):
        ctx = browser.new_context(viewport={"width": width, "height": 900})
        pg = ctx.new_page()
        pg.goto(f"{server.ui_url}/dashboard?range=30d")
        bars = pg.evaluate("() => [...document.querySelectorAll('.chart rect')].map(r => r.getBoundingClientRect().width)")
        assert bars and min(bars) >= MIN_BAR_PX, (width, min(bars))
        labels = pg.evaluate("() => [...document.querySelectorAll('.chart svg')].map(s => "
                             "[s.viewBox.baseVal.width, Math.max(...[...s.querySelectorAll('text')].map(t => t.getBBox().x + t.getBBox().width))])")
        assert all(right <= w for w, right in labels), labels
        pg.screenshot(path=str(tmp_path / f"dashboard-30d-{width}px.png"), full_page=True, caret="initial")
        ctx.close()
    assert re.search(r"\b10 archived\b", httpx.get(f"{server.ui_url}/dashboard", params={"range": "30d"}, timeout=60).text)
