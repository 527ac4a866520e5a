"""JSON API and pages over an embedded store seeded with the known traces."""
from __future__ import annotations

import re

import pytest

import ui_traces


def ids(client, q: str, **extra) -> set[str]:
    r = client.get("/api/traces", params={"q": q, "range": "1h", **extra})
    assert r.status_code == 200, r.text
    return {t["trace_id"] for t in r.json()["traces"]}


@pytest.fixture(scope="module")
def every(known):
    return {known.genai, known.openinference, known.openllmetry, known.error, known.xss}


def test_list_is_newest_first_with_llm_columns(client, known, every):
    r = client.get("/api/traces", params={"range": "1h"}).json()
    traces = r["traces"]
    assert {t["trace_id"] for t in traces} == every
    starts = [t["start_ns"] for t in traces]
    assert starts == sorted(starts, reverse=True)
    genai = next(t for t in traces if t["trace_id"] == known.genai)
    assert genai["name"] == "agent run" and genai["models"] == ["gpt-4o"]
    assert (genai["input_tokens"], genai["output_tokens"], genai["spans"]) == (1200, 300, 3)
    assert genai["session_id"] == "sess-1" and genai["user_id"] == "u1" and genai["status"] == "ok"
    assert genai["cost_usd"] > 0
    assert 2400 <= genai["duration_ms"] <= 2600


@pytest.mark.parametrize("q,expect", [
    ("service:checkout", {"genai", "error"}),
    ("service:oi-*", {"openinference"}),
    ("-service:checkout", {"openinference", "openllmetry", "xss"}),
    ("service!=checkout", {"openinference", "openllmetry", "xss"}),
    ("model:gpt-4o", {"genai", "error"}),
    ("model:claude*", {"openinference"}),
    ("status:error", {"error"}),
    ("status:ok service:checkout", {"genai"}),
    ("-status:error service:checkout", {"genai"}),
    ("duration>2s", {"genai", "error"}),
    ("duration>=3s", {"error"}),
    ("duration<1s", {"openllmetry", "xss"}),
    ("duration<=900ms", {"openllmetry", "xss"}),
    ("duration=900ms", {"openllmetry"}),
    ("tokens>1000", {"genai"}),
    ("tokens:70", {"openllmetry"}),
    ("input_tokens>=800", {"genai", "openinference"}),
    ("output_tokens<100 output_tokens>0", {"openllmetry"}),
    ("cost>0.005", {"genai"}),
    ("spans=3", {"genai", "openinference"}),
    ("session:sess-1", {"genai", "error"}),
    ("user:u1 status:error", {"error"}),
    ('name:"agent run"', {"genai", "error"}),
    ("name:RAG*", {"openinference"}),
    ('"refund"', {"error"}),
    ("REFUND", {"error"}),
    ('"Sales rose"', {"openinference"}),
    ("attr.gen_ai.request.model:gpt-4o-mini", {"openllmetry"}),
    ("attr.gen_ai.usage.input_tokens>1000", {"genai"}),
    ("attr.retrieval.documents.1.document.id:*", {"openinference"}),
    ("resource.service.name:ollm-svc", {"openllmetry"}),
    ("span:retrieve", {"openinference"}),
    ("span!=retrieve service:oi-svc", set()),
    ("kind:client service:checkout", {"genai", "error"}),
    ("operation:execute_tool", {"genai"}),
    ("provider:anthropic", {"openinference"}),
    ("event:exception", {"error"}),
    ("service:oi-svc OR service:ollm-svc", {"openinference", "openllmetry"}),
    ("(service:oi-svc OR service:ollm-svc) -span:retrieve", {"openllmetry"}),
    ("project:default service:ollm-svc", {"openllmetry"}),
    ('attr.path:"C:\\\\dir\\\\new\tfile"', {"openllmetry"}),
    ('session:"s\\\\1"', {"openllmetry"}),
    ("attr.path:C:*", {"openllmetry"}),
    ("service:\"x' OR 1=1 --\"", set()),
    ("attr.a']OR'1'='1:x", set()),
])
def test_filters(client, known, q, expect):
    want = {getattr(known, name) for name in expect}
    assert ids(client, q) == want


def test_trace_id_prefix(client, known):
    assert ids(client, f"trace:{known.genai[:10]}") == {known.genai}


def test_filter_error_is_400_with_position(client):
    r = client.get("/api/traces", params={"q": "service:a duration>2x", "range": "1h"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["position"] == 19 and err["end"] == 21 and "duration" in err["message"]
    r = client.get("/api/filter/parse", params={"q": 'name:"open'})
    assert r.status_code == 400 and r.json()["error"]["position"] == 5


def test_filter_error_page_is_200_with_inline_message(client):
    r = client.get("/traces", params={"q": "tokens>lots"})
    assert r.status_code == 200
    assert "Filter error" in r.text and "expected a number" in r.text and "character 8" in r.text
    assert "<mark>lots</mark>" in r.text


def test_bad_time_range_is_a_message(client):
    r = client.get("/traces", params={"from": "yesterday-ish"})
    assert r.status_code == 200 and "bad time range" in r.text
    assert client.get("/api/traces", params={"from": "nope"}).status_code == 400
    assert client.get("/api/traces", params={"cursor": "!!!"}).status_code == 400


def test_filter_parse_and_fields(client):
    ast = client.get("/api/filter/parse", params={"q": "service:a -status:error"}).json()["ast"]
    assert ast["and"][0]["field"] == "service" and ast["and"][1]["not"]["field"] == "status"
    fields = client.get("/api/filter/fields").json()
    assert {"service", "duration", "attr.<key>"} <= {f["name"] for f in fields["fields"]}


def test_cursor_pagination_covers_everything_once(client, every):
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"range": "1h", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = client.get("/api/traces", params=params).json()
        seen += [t["trace_id"] for t in body["traces"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == len(every) and set(seen) == every


def test_html_pagination_link(client):
    r = client.get("/traces", params={"range": "1h", "limit": 2})
    m = re.search(r'href="(/traces\?[^"]*cursor=[^"]+)"', r.text)
    assert m, "no next-page link"
    nxt = client.get(m.group(1).replace("&amp;", "&"))
    assert nxt.status_code == 200 and "← Newest" in nxt.text


def test_trace_api_tree(client, known):
    body = client.get(f"/api/traces/{known.genai}").json()
    spans = body["spans"]
    assert [s["depth"] for s in spans] == [0, 1, 1]
    assert spans[0]["name"] == "agent run" and spans[0]["children"] == 2
    chat = next(s for s in spans if s["span_id"] == known.genai_chat)
    assert chat["model"] == "gpt-4o" and chat["input_tokens"] == 1200
    assert client.get("/api/traces/ffffffffffffffffffffffffffffffff").status_code == 404
    assert client.get("/api/traces/not-hex").status_code == 404


def test_span_api_normalized_io(client, known):
    body = client.get(f"/api/traces/{known.openinference}/spans/{known.oi_llm}").json()
    assert body["span"]["model"] == "claude-3-5-sonnet"
    io = body["io"]
    assert [m["role"] for m in io["input"]] == ["user", "assistant", "tool"]
    assert io["output"][0]["parts"][0]["text"] == "Sales rose 12% in Q3."
    docs = client.get(f"/api/traces/{known.openinference}/spans/{known.oi_retriever}").json()["io"]["documents"]
    assert [d["id"] for d in docs] == ["doc-a", "doc-b"]
    err = client.get(f"/api/traces/{known.error}/spans/{known.error_span}").json()
    assert err["span"]["status"] == "error" and err["events"][0]["name"] == "exception"


def test_trace_page_renders_conventions(client, known):
    page = client.get(f"/traces/{known.genai}", params={"span": known.genai_chat}).text
    assert "lookup_order" in page and "tool call" in page and "tool result" in page
    assert f'src="/api/attachments/{ui_traces.SHA_IMG}"' in page
    assert f'<audio controls preload="metadata" src="/api/attachments/{ui_traces.SHA_AUDIO}">' in page
    assert f'href="/api/attachments/{ui_traces.SHA_PDF}" download' in page
    oi = client.get(f"/traces/{known.openinference}", params={"span": known.oi_retriever}).text
    assert "Q3 sales grew by twelve percent." in oi and "score 0.910" in oi
    ol = client.get(f"/traces/{known.openllmetry}", params={"span": known.ollm_llm}).text
    assert "get_weather" in ol and "Weather in Oslo?" in ol


def test_span_panel_fragment_and_redirect(client, known):
    r = client.get(f"/traces/{known.genai}/spans/{known.genai_chat}", headers={"HX-Request": "true"})
    assert r.status_code == 200 and "<html" not in r.text and "span-panel" in r.text
    r = client.get(f"/traces/{known.genai}/spans/{known.genai_chat}", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == f"/traces/{known.genai}?span={known.genai_chat}"


def test_hostile_content_is_escaped(client, known):
    for url in ["/traces?range=1h", f"/traces/{known.xss}?span={known.xss_span}", "/sessions?range=1h", "/dashboard?range=1h"]:
        r = client.get(url)
        assert r.status_code == 200
        html = r.text
        assert "<script>window.__xss" not in html and "<img src=x" not in html
        assert 'onmouseover="window' not in html and "<b onmouseover" not in html
        assert "evil<script>" not in html
        assert not re.search(r'href="\s*javascript:', html, re.I) and not re.search(r'src="\s*(javascript:|data:image/svg|data:text)', html, re.I)
        scripts = re.findall(r"<script[^>]*>", html)
        assert scripts == ['<script src="/ui/static/htmx.min.js" defer>', '<script src="/ui/static/app.js" defer>',
                           '<script src="/ui/static/scores.js" defer>']
    page = client.get(f"/traces/{known.xss}", params={"span": known.xss_span}).text
    assert "&lt;script&gt;window.__xss=1;alert(1)&lt;/script&gt;" in page
    assert "&lt;b onmouseover=&#34;window.__xss=8&#34;&gt;key&lt;/b&gt;" in page
    assert "hx-disable" in page


def test_enormous_values_are_truncated_with_show_all(client, known):
    page = client.get(f"/traces/{known.xss}", params={"span": known.xss_span}).text
    assert len(page) < 100_000
    assert "THE-END" not in page and "show all (300,007 characters)" in page
    m = re.search(r'data-full-url="([^"]*path=attr%3Ahuge.value)"', page)
    assert m
    full = client.get(m.group(1).replace("&amp;", "&")).json()["text"]
    assert len(full) == ui_traces.HUGE_LEN + 7 and full.endswith("THE-END")


def test_csp_and_security_headers(client, known):
    for url in ["/traces", f"/traces/{known.genai}", "/api/traces", "/dashboard", "/sessions"]:
        h = client.get(url).headers
        csp = h["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp and h["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in client.get("/healthz").headers


def test_sessions(client, known):
    rows = client.get("/api/sessions", params={"range": "1h"}).json()["sessions"]
    s1 = next(r for r in rows if r["session_id"] == "sess-1")
    assert s1["traces"] == 2 and s1["user_id"] == "u1" and s1["error_spans"] == 2
    assert s1["failed_traces"] == 1  # the sessions page counts failed traces next to traces, not error spans
    listing = client.get("/sessions", params={"range": "1h"}).text
    row = re.search(r'<tr[^>]*data-href="/sessions/sess-1".*?</tr>', listing, re.S).group(0)
    assert ">1 of 2<" in row and "Failed traces" in listing
    body = client.get("/api/sessions/sess-1").json()
    assert [t["trace"]["trace_id"] for t in body["turns"]] == [known.genai, known.error]
    assert body["turns"][0]["user"] == "where is my order?"
    assert body["turns"][0]["assistant"] == "Your order 42 has shipped."
    page = client.get("/sessions/sess-1").text
    assert "where is my order?" in page and "I want a refund" in page
    assert client.get("/sessions/nope").status_code == 404
    assert client.get("/api/sessions/nope").status_code == 404


def test_dashboard(client):
    d = client.get("/api/dashboard", params={"range": "1h"}).json()
    assert d["totals"]["requests"] == 5 and d["totals"]["errors"] == 1
    assert {m["key"] for m in d["by_model"]} >= {"gpt-4o", "claude-3-5-sonnet", "gpt-4o-mini"}
    assert {s["key"] for s in d["by_service"]} >= {"checkout", "oi-svc"}
    assert sum(b["requests"] for b in d["series"]) == 5
    d2 = client.get("/api/dashboard", params={"range": "1h", "q": "service:checkout"}).json()
    assert d2["totals"]["requests"] == 2
    assert client.get("/api/dashboard", params={"q": "(("}).status_code == 400
    page = client.get("/dashboard", params={"range": "1h"}).text
    assert page.count("<svg") >= 5 and "By model" in page


def test_dashboard_filter_applies_to_every_part(client, known):
    """The filter narrows the series, by service and by model alike (by model read every LLM span
    of the range before), and the page's tiles hold the JSON's numbers."""
    d = client.get("/api/dashboard", params={"range": "1h", "q": "service:oi-svc"}).json()
    assert d["totals"]["requests"] == 1 and [s["key"] for s in d["by_service"]] == ["oi-svc"]
    assert [(m["key"], m["requests"]) for m in d["by_model"]] == [("claude-3-5-sonnet", 1)]
    assert d["tiers"] == {"hot": 1, "archive": 0, "archive_read": False, "newest_archived_ns": None}
    page = client.get("/dashboard", params={"range": "1h", "q": "service:oi-svc"}).text
    for key in ("requests", "input_tokens", "output_tokens"):
        assert f'data-metric="{key}" data-value="{d["totals"][key]}"' in page
    assert "Hot traces:</strong> nothing has been archived." in page and "One bar = 2 min." in page


def test_dashboard_zero_errors_is_a_value_not_missing_data(client):
    """Traces without failures: the error rate is drawn at 0 %, and no chart says 'no data'."""
    from tracelake.ui.charts import dashboard_charts

    d = client.get("/api/dashboard", params={"range": "1h", "q": "-status:error"}).json()
    assert d["totals"]["requests"] == 4 and d["totals"]["errors"] == 0
    rate = next(c for c in dashboard_charts(d) if c.title == "Error rate")
    assert not rate.empty and {y for line in rate.lines for _, y, _ in line.dots} == {rate.plot[3]}  # all on the 0 line
    page = client.get("/dashboard", params={"range": "1h", "q": "-status:error"}).text
    assert "no data" not in page and "nodata" not in page and "per bucket" not in page
    empty = client.get("/dashboard", params={"range": "1h", "q": "service:nobody"}).text
    assert 'id="dash-empty"' in empty and "<svg" not in empty


@pytest.mark.parametrize("rng", ["5m", "15m", "1h", "6h", "24h", "7d", "30d"])
def test_dashboard_buckets_and_chart_geometry_at_every_range(client, rng):
    """At most ~40 bars per range, each at least MIN_BAR wide, and the time labels (their width
    estimated generously) inside the chart: what the Chromium test measures, without a browser."""
    from tracelake.ui.charts import CHAR_W, MIN_BAR, dashboard_charts
    from tracelake.ui.queries.dashboard import MAX_BUCKETS, bucket_label

    d = client.get("/api/dashboard", params={"range": rng}).json()
    assert len(d["series"]) <= MAX_BUCKETS + 1 and d["bucket"] == bucket_label(d["bucket_seconds"])
    for c in dashboard_charts(d):
        assert all(r.w >= MIN_BAR for r in c.rects), (rng, c.title)
        assert c.x_ticks and all(x + len(label) * CHAR_W / 2 <= c.width for x, label in c.x_ticks), (rng, c.title)
        labels = [label for _, label in c.x_ticks]
        assert len(set(labels)) == len(labels), labels  # no label twice (e.g. minutes under 10 s bars)


def test_retention_without_a_policy_says_how_to_enable_it(client):
    r = client.get("/api/retention").json()
    assert r["configured"] is False and r["rules"] == [] and r["plan"] is None and r["runs"] == []
    assert {t["tier"] for t in r["tiers"]} == {"hot"}
    html = client.get("/retention").text
    assert 'id="not-configured"' in html and "--retention" in html and 'id="plan"' not in html


def test_openapi_lists_the_ui_api(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    for p in ["/api/traces", "/api/traces/{trace_id}", "/api/traces/{trace_id}/spans/{span_id}", "/api/sessions",
              "/api/sessions/{session_id}", "/api/dashboard", "/api/filter/fields", "/api/filter/parse", "/api/retention",
              "/api/traces/{trace_id}/skeleton", "/api/traces/{trace_id}/shape", "/api/traces/{trace_id}/find",
              "/api/traces/{trace_id}/flame"]:
        assert p in paths


def test_live_rows_fragment(client, known):
    r = client.get("/traces", params={"range": "1h", "fragment": "rows"}, headers={"HX-Request": "true"})
    assert r.status_code == 200 and "<html" not in r.text
    assert r.text.count('class="trow') == 5 and known.genai in r.text


def test_a_pasted_trace_id_opens_the_trace(client, known):
    r = client.get("/traces", params={"q": f"  {known.genai.upper()} "}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/traces/{known.genai}"
    unknown = client.get("/traces", params={"q": "f" * 32}, follow_redirects=False)
    assert unknown.status_code == 200  # no such trace: the list, searching for it as text
    assert client.get("/traces", params={"q": known.genai[:16]}, follow_redirects=False).status_code == 200
