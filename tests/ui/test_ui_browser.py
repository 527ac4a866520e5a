"""End to end in headless Chromium: traces ingested through the collector of a real
``tracelake server`` subprocess (raw OTLP/HTTP POSTs and the OpenTelemetry SDK's exporter), then the
pages driven like a person would. Screenshots go to tests/artifacts/ui/.

Needs Debian's ``chromium`` (/usr/bin/chromium) and Python Playwright; no browser download.
"""
from __future__ import annotations

import time

import httpx
import pytest

import ui_traces
from ui_browser import ARTIFACTS, clean, needs_chromium, post_otlp, shot, wait_js

pytestmark = needs_chromium


def _sdk_trace(otlp_http_url: str) -> None:
    """One trace through the OpenTelemetry SDK and its OTLP/HTTP exporter."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-svc"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp_http_url}/v1/traces")))
    tracer = provider.get_tracer("tests.ui.browser")
    with tracer.start_as_current_span("sdk workflow", attributes={"session.id": "sess-sdk"}):
        with tracer.start_as_current_span("chat gpt-4.1", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4.1",
                "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5,
                "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "hello from the sdk"}]}]'}):
            pass
    provider.force_flush()
    provider.shutdown()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from server_process import start_server

    root = tmp_path_factory.mktemp("ui-e2e")
    srv = start_server(root / "data")
    try:
        known = ui_traces.known_traces(time.time_ns(), seed=43, extracted=False)
        for body in known.requests:
            post_otlp(srv.otlp_http_url, body)
        _sdk_trace(srv.otlp_http_url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            n = len(httpx.get(f"{srv.ui_url}/api/traces", params={"range": "1h"}, timeout=120).json()["traces"])
            if n >= 6:
                break
            time.sleep(0.3)
        assert n == 6, "".join(srv.output[-30:])
        srv.known = known  # type: ignore[attr-defined]
        yield srv
    finally:
        srv.stop()


def test_trace_list_filter_and_keyboard(server, page):
    k = server.known
    page.goto(f"{server.ui_url}/traces?range=1h")
    rows = page.locator("#trace-rows tr.trow")
    assert rows.count() == 6
    shot(page, "traces")
    # Click a value: it becomes a filter, in the URL.
    page.locator("#trace-rows tr", has_text="weather.workflow").locator("a.chip", has_text="ollm-svc").click()
    page.wait_for_url("**q=service%3Aollm-svc**")
    assert rows.count() == 1 and page.input_value("#filter") == "service:ollm-svc"
    # Type a filter.
    page.fill("#filter", "status:error")
    page.press("#filter", "Enter")
    page.wait_for_url("**q=status%3Aerror**")
    assert rows.count() == 1 and k.error in rows.first.get_attribute("data-id")
    # A bad one: inline message with the position, still a page.
    page.fill("#filter", "service:checkout duration>2x")
    page.press("#filter", "Enter")
    err = page.locator(".filter-error")
    err.wait_for()
    assert "expected a duration" in err.inner_text() and "character 27" in err.inner_text()
    assert page.locator(".filter-error mark").inner_text() == "2x"
    shot(page, "traces-filter-error")
    # Keyboard: / focuses the filter; j moves, Enter opens.
    page.goto(f"{server.ui_url}/traces?range=1h&q=service:checkout")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "filter"
    page.keyboard.press("Escape")
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert page.locator("tr.trow.sel").count() == 1
    sel = page.locator("tr.trow.sel").get_attribute("data-id")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/traces/{sel}")
    clean(page)


def test_pagination_and_shared_url(server, page):
    page.goto(f"{server.ui_url}/traces?range=1h&limit=4")
    assert page.locator("#trace-rows tr.trow").count() == 4
    page.click("#next-page")
    page.wait_for_url("**cursor=**")
    assert page.locator("#trace-rows tr.trow").count() == 2
    url = page.url
    page.goto("about:blank")
    page.goto(url)  # the whole view lives in the URL
    assert page.locator("#trace-rows tr.trow").count() == 2
    clean(page)


def test_live_update_shows_new_traces(server, page):
    page.goto(f"{server.ui_url}/traces?range=1h&q=service:live-svc")
    assert page.locator("#trace-rows tr.trow").count() == 0
    tid = "%032x" % int(time.time_ns())
    req = ui_traces.request(tid, [ui_traces.SpanSpec("live one", "00000000000000aa", "", 0, 5)], time.time_ns() - 10**9, "live-svc")
    post_otlp(server.otlp_http_url, req.SerializeToString())
    page.locator("#trace-rows tr.trow", has_text="live one").wait_for(timeout=20_000)
    clean(page)


def test_trace_tree_panel_collapse_and_conversation(server, page):
    k = server.known
    page.goto(f"{server.ui_url}/traces/{k.genai}")
    tree = page.locator("#span-rows .srow")
    assert tree.count() == 3
    assert tree.nth(1).locator(".chip.model").inner_text() == "gpt-4o"
    assert "1,200→300" in tree.nth(1).inner_text()
    # Expand a span: its panel shows the conversation.
    page.locator(".srow", has_text="chat gpt-4o").locator(".sname").click()
    page.locator(".span-panel[data-span='%s']" % k.genai_chat).wait_for()
    panel = page.locator("#panel")
    assert panel.locator(".msg.r-system").count() == 1
    assert panel.locator(".msg.r-user").first.locator("pre.text").first.inner_text() == "What is in this picture? Also listen to this."
    assert panel.locator(".tool-call .fn").inner_text() == "lookup_order"
    assert '"status": "shipped"' in panel.locator(".tool-result pre").inner_text()
    assert page.url.endswith(f"?span={k.genai_chat}")
    # Media the collector extracted: the thumbnail and the audio player load from the attachments endpoint.
    img_sel = f"#panel button.thumb img[src='/api/attachments/{ui_traces.SHA_IMG}']"
    assert page.locator(img_sel).count() == 1
    wait_js(page, f"(() => {{ const i = document.querySelector(\"{img_sel}\"); return i.complete && i.naturalWidth === 96; }})()")
    audio = panel.locator("audio[controls]")
    assert audio.count() == 1 and audio.get_attribute("src") == f"/api/attachments/{ui_traces.SHA_AUDIO}"
    wait_js(page, "document.querySelector('#panel audio').readyState >= 1")
    assert abs(page.evaluate("document.querySelector('#panel audio').duration") - 0.5) < 0.05
    assert panel.locator("a.file[download]", has_text="application/pdf").count() == 1
    # Filter attributes.
    page.fill(".attr-filter", "usage")
    assert page.locator("table.attrs:not(.small) tr:not(.hidden)").count() == 2
    shot(page, "trace")
    # Keyboard (Escape leaves the filter box): up to the root, collapse it, expand it.
    page.keyboard.press("Escape")
    page.keyboard.press("ArrowUp")
    page.locator(".span-panel h2", has_text="agent run").wait_for()
    page.keyboard.press("ArrowLeft")
    assert tree.nth(1).is_hidden() and tree.nth(2).is_hidden()
    page.keyboard.press("ArrowRight")
    assert tree.nth(1).is_visible()
    tree.first.locator(".tog").click()
    assert tree.nth(2).is_hidden()
    page.click("#expand-all")
    assert tree.nth(2).is_visible()
    clean(page)


def test_image_modal(server, page):
    k = server.known
    page.goto(f"{server.ui_url}/traces/{k.openinference}?span={k.oi_llm}")
    thumb = page.locator("#panel button.thumb").first
    thumb.wait_for()
    src = thumb.get_attribute("data-full")
    thumb.click()
    modal = page.locator("dialog#modal")
    modal.wait_for(state="visible")
    assert page.locator("#modal-img").get_attribute("src") == src
    wait_js(page, "document.getElementById('modal-img').complete")
    assert page.evaluate("document.getElementById('modal-img').naturalWidth") >= 1
    shot(page, "image-modal")
    page.keyboard.press("Escape")
    modal.wait_for(state="hidden")
    # OpenInference documents render as a list.
    page.goto(f"{server.ui_url}/traces/{k.openinference}?span={k.oi_retriever}")
    assert page.locator("ol.docs li").count() == 2
    clean(page)


def test_error_trace_marks_and_exception(server, page):
    k = server.known
    page.goto(f"{server.ui_url}/traces/{k.error}?span={k.error_span}")
    assert page.locator("#span-rows .srow.err").count() == 2
    assert page.locator("#span-rows .errmark").count() == 2
    exc = page.locator(".exception")
    assert "openai.RateLimitError" in exc.inner_text()
    clean(page)


def test_hostile_payloads_stay_inert(server, page):
    k = server.known
    pages = [f"/traces/{k.xss}?span={k.xss_span}", f"/traces/{k.xss}", "/traces?range=1h", "/sessions?range=1h",
             "/dashboard?range=1h", f"/api/traces/{k.xss}/spans/{k.xss_span}"]
    for url in pages:
        page.goto(server.ui_url + url)
        page.wait_for_timeout(300)
        assert page.locator("img[src='x']").count() == 0
        assert page.locator("a[href^='javascript' i], img[src^='javascript' i], [src^='data:image/svg' i], [src^='data:text' i]").count() == 0
        assert page.locator("script:not([src])").count() == 0
        clean(page)
    page.goto(f"{server.ui_url}/traces/{k.xss}?span={k.xss_span}")
    # The payloads are shown, as text.
    assert ui_traces.XSS_SCRIPT in page.locator("#panel").inner_text()
    key = page.locator("table.attrs th.k", has_text="onmouseover").first
    key.hover()
    assert page.locator("table.attrs b").count() == 0
    assert page.locator("[hx-get='/traces'][hx-trigger='load']").count() == 0 or page.locator("#panel [hx-get]").count() == 0
    # An enormous value is cut; "show all" fetches it whole, as text.
    row = page.locator("table.attrs tr[data-k='huge.value']")
    assert len(row.locator("pre").inner_text()) < 10_000
    row.locator("button.show-all").click()
    wait_js(page, "document.querySelector(\"tr[data-k='huge.value'] pre\").textContent.endsWith('THE-END')")
    shot(page, "hostile-span")
    clean(page)


def test_search_opens_the_trace_at_the_match_highlighted(server, page):
    """Issue 23: the list says which span matched; opening it shows that span, the words marked
    (escaped: the hostile text around them stays text), and the search follows to other spans."""
    k = server.known
    page.goto(f"{server.ui_url}/traces?range=1h&q=quokka")
    row = page.locator("#trace-rows tr.trow")
    assert row.count() == 1 and row.locator("td.matched").inner_text().endswith("1 span")
    row.locator("a.mspan").click()
    page.wait_for_url("**hl=quokka**")
    wait_js(page, "document.querySelectorAll('#panel pre mark').length >= 4")
    marks = page.locator("#panel pre.text mark").all_inner_texts()  # the output value: not "quokkas"
    assert [m.lower() for m in marks] == ["quokka"] * 4
    assert page.locator("#span-rows .srow.hit").count() == 1 and page.locator("#span-rows .srow.sel.hit").count() == 1
    assert page.locator("#panel img[src='x'], #panel mark img, #panel mark script").count() == 0
    shot(page, "search-highlight")
    clean(page)
    # The error trace: both spans hold "refund"; n walks them with find (same words, same meaning).
    page.goto(f"{server.ui_url}/traces?range=1h&q=refund")
    shot(page, "search-list")
    page.locator("#trace-rows tr.trow a.mspan").click()
    page.wait_for_url("**hl=refund**")
    assert page.locator("#span-rows .srow.hit").count() == 2 and page.input_value("#find") == "refund"
    page.keyboard.press("n")
    wait_js(page, "(document.querySelector('#find-count') || {}).textContent === '1 of 2'")
    page.keyboard.press("n")
    wait_js(page, f"(document.querySelector('#panel .span-panel') || {{}}).getAttribute && "
                  f"document.querySelector('#panel .span-panel').getAttribute('data-span') === '{k.error_span}'")
    wait_js(page, "Array.from(document.querySelectorAll('#panel pre mark')).some(m => m.textContent === 'refund')")
    shot(page, "search-trace")
    clean(page)


def test_sessions_and_dashboard(server, page):
    page.goto(f"{server.ui_url}/sessions?range=1h")
    assert page.locator("#sessions tr.trow").count() >= 3
    shot(page, "sessions")
    page.locator("#sessions a.open", has_text="sess-1").click()
    page.wait_for_url("**/sessions/sess-1")
    assert page.locator(".turn").count() == 2
    assert "where is my order?" in page.locator(".turn").first.inner_text()
    shot(page, "session")
    page.goto(f"{server.ui_url}/dashboard?range=1h")
    assert page.locator(".chart svg").count() == 6
    assert page.locator(".tile .tv").first.inner_text() == "7" or page.locator(".tile .tv").first.inner_text() == "6"
    shot(page, "dashboard")
    clean(page)


def test_dark_mode_screens(server, browser):
    ctx = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme="dark")
    pg = ctx.new_page()
    k = server.known
    pg.goto(f"{server.ui_url}/traces?range=1h")
    bg = pg.evaluate("getComputedStyle(document.body).backgroundColor")
    assert bg == "rgb(17, 19, 24)"
    pg.screenshot(path=str(ARTIFACTS / "traces-dark.png"))
    pg.goto(f"{server.ui_url}/traces/{k.genai}?span={k.genai_chat}")
    pg.screenshot(path=str(ARTIFACTS / "trace-dark.png"))
    ctx.close()


def test_big_trace_windows_folds_and_a_deep_span(server, page):
    """A 4,201-span agent loop and a 5,001-deep chain (issue 20), two hours old so the lists above
    (range=1h) do not see them: the page shows the root and the folded run, opens the run, appends
    windows as it scrolls, collapses a step through the server, and opens at the deepest span."""
    start = time.time_ns() - 2 * 3600 * ui_traces.S
    loop, loop_id = ui_traces.agent_loop_requests(700, start, per_request=1_000)
    chain, chain_id, deepest = ui_traces.chain_requests(5_001, start)
    for body in loop + chain:
        post_otlp(server.otlp_http_url, body)
    for tid, n in ((loop_id, 4_201), (chain_id, 5_001)):
        deadline = time.monotonic() + 60
        while httpx.get(f"{server.ui_url}/api/traces/{tid}", params={"limit": 1}, timeout=60).json().get("span_count") != n:
            assert time.monotonic() < deadline, f"trace {tid} never reached {n} spans"
            time.sleep(0.2)
    page.goto(f"{server.ui_url}/traces/{loop_id}")
    rows = page.locator("#span-rows .srow")
    assert rows.count() == 2 and page.locator("#trace-spans").inner_text() == "4,201"
    group = page.locator("#span-rows .srow.grp")
    assert "×700" in group.inner_text() and "28 errors" in group.inner_text()  # 2,800 tool calls, every 97th fails
    wait_js(page, "document.querySelector('#trace-shape table') !== null")  # the shape view
    # The timeline: drawn on the canvas; a click on a step's bar (depth 1) reveals it in the tree.
    wait_js(page, "(document.querySelector('#flame-range') || {}).textContent.indexOf('bars') > 0")
    page.locator("#flame-canvas").click(position={"x": 3, "y": 14 + 7})
    wait_js(page, "!!document.querySelector('#span-rows .srow.sel') && "
                  "document.querySelector('#span-rows .srow.sel').textContent.indexOf('agent step') >= 0")
    page.goto(f"{server.ui_url}/traces/{loop_id}")  # folded again
    group.click()
    wait_js(page, "document.querySelectorAll('#span-rows .srow').length > 50")
    loaded = rows.count()
    assert page.locator("#span-rows .srow.grp").count() == 0
    page.locator("#span-rows .more").scroll_into_view_if_needed()
    wait_js(page, f"document.querySelectorAll('#span-rows .srow').length > {loaded}")
    # Scroll to the end: every window arrives, and rows far above the view leave the page (it holds
    # at most 3,000); the note at the top counts them, so the page still accounts for all 4,201.
    for _ in range(40):
        if page.locator("#span-rows .more").count() == 0:
            break
        n = rows.count()
        page.locator("#span-rows .more").scroll_into_view_if_needed()
        wait_js(page, f"!document.querySelector('#span-rows .more[data-start]') || "
                      f"document.querySelectorAll('#span-rows .srow').length != {n}")
    assert page.locator("#span-rows .more").count() == 0
    gap = page.locator("#span-rows .gap.trimmed")
    assert rows.count() <= 3000 and int(gap.get_attribute("data-count")) + rows.count() == 4_201
    assert "Show the trace from the top" in gap.inner_text()
    page.goto(f"{server.ui_url}/traces/{loop_id}")
    group.click()
    wait_js(page, "document.querySelectorAll('#span-rows .srow').length > 50")
    # Collapse the first step: its five children leave, the next step follows it.
    step = page.locator("#span-rows .srow", has_text="agent step").first
    step_id = step.get_attribute("data-id")
    step.locator(".tog").click()
    wait_js(page, f"document.querySelector('#span-rows .srow[data-id=\"{step_id}\"]').classList.contains('collapsed')")
    after = page.locator(f"#span-rows .srow[data-id='{step_id}'] + .srow")
    assert "agent step" in after.inner_text()
    shot(page, "big-trace")
    # Find in trace: the errors are inside the folded run (closed again by a reload); the first one
    # is revealed and selected, n goes to the next.
    page.goto(f"{server.ui_url}/traces/{loop_id}")
    page.fill("#find", "status:error")
    page.press("#find", "Enter")
    wait_js(page, "(document.querySelector('#find-count') || {}).textContent === '1 of 28'")
    wait_js(page, "!!document.querySelector('#span-rows .srow.sel.err')")
    first_err = page.locator("#span-rows .srow.sel").get_attribute("data-id")
    page.locator("#span-rows .srow.sel").click()  # leave the box; keys go to the tree
    page.keyboard.press("n")
    wait_js(page, "(document.querySelector('#find-count') || {}).textContent === '2 of 28'")
    wait_js(page, f"document.querySelector('#span-rows .srow.sel.err') && document.querySelector('#span-rows .srow.sel').dataset.id !== '{first_err}'")
    # The deepest span of the chain: its row is there and selected, the gap says what is above.
    page.goto(f"{server.ui_url}/traces/{chain_id}?span={deepest}")
    sel = page.locator("#span-rows .srow.sel")
    assert sel.get_attribute("data-id") == deepest and sel.get_attribute("data-depth") == "5000"
    assert "rows above this span are not shown" in page.locator("#span-rows .gap").inner_text()
    # Finding a span 5,000 deep from the top of the page: its path is opened and it is selected.
    page.goto(f"{server.ui_url}/traces/{chain_id}")
    page.fill("#find", "hop 5000")
    page.press("#find", "Enter")
    wait_js(page, "document.querySelector('#span-rows .srow.sel') && document.querySelector('#span-rows .srow.sel').dataset.depth === '5000'")
    assert page.locator("#find-count").inner_text() == "1 of 1"
    clean(page)


def test_api_docs_render_offline(server, page):
    """Swagger UI's files come from the package, not a CDN (issue 21, item 4): any request that
    leaves 127.0.0.1 is aborted and counted, and the operations are still listed."""
    outside: list[str] = []

    def only_local(route):
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "data:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(f"{server.ui_url}/api/docs")
    page.locator(".swagger-ui .opblock-summary-path", has_text="skeleton").first.wait_for()
    assert outside == [] and page.locator(".swagger-ui .opblock").count() > 10
    shot(page, "api-docs")
