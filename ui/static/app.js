// tracelake UI behaviour: keyboard navigation, span tree collapse, span panel loading, the image
// modal, "show all" for truncated values, attribute filtering.
// Span data is only ever put into the page with textContent or as a checked URL; never innerHTML.
(function () {
  "use strict";

  // Changes made by htmx carry the session's CSRF token (tracelake.auth; the meta tag is there when signed in).
  document.addEventListener("htmx:configRequest", function (e) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta && e.detail && e.detail.headers) e.detail.headers["X-CSRF-Token"] = meta.getAttribute("content");
  });

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function typing(e) {
    var t = e.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }
  // URLs we may load or open: our own paths, http(s), raster data: images. Nothing else.
  var SAFE_IMG = /^(\/api\/attachments\/[0-9a-f]{64}|https?:\/\/[^\s"'<>]+|data:image\/(png|jpeg|jpg|gif|webp);base64,[A-Za-z0-9+\/=\s]+)$/i;
  function ownPath(u) { return typeof u === "string" && u.charAt(0) === "/" && u.charAt(1) !== "/"; }

  // ---- trace list: j/k, arrows, Enter; click on a row opens the trace ----------------------
  var listSelected = null;
  function listRows() { return $$("#trace-rows tr.trow, #sessions tr.trow"); }
  function selectListRow(row) {
    $$("tr.trow.sel").forEach(function (r) { r.classList.remove("sel"); });
    if (!row) return;
    row.classList.add("sel");
    listSelected = row.getAttribute("data-id") || row.getAttribute("data-href");
    row.scrollIntoView({ block: "nearest" });
  }
  function moveList(delta) {
    var rows = listRows();
    if (!rows.length) return;
    var i = rows.findIndex(function (r) { return r.classList.contains("sel"); });
    i = i < 0 ? (delta > 0 ? 0 : rows.length - 1) : Math.max(0, Math.min(rows.length - 1, i + delta));
    selectListRow(rows[i]);
  }
  function openRow(row) {
    var href = row && row.getAttribute("data-href");
    if (ownPath(href)) window.location.assign(href);
  }
  document.addEventListener("click", function (e) {
    var row = e.target.closest && e.target.closest("tr.trow");
    if (row && !e.target.closest("a, button, input")) openRow(row);
  });

  // ---- span tree ------------------------------------------------------------------------------
  function srows() { return $$("#span-rows .srow"); }
  function visibleRows() { return srows().filter(function (r) { return !r.classList.contains("hidden"); }); }
  function depth(r) { return parseInt(r.getAttribute("data-depth"), 10) || 0; }
  function setCollapsed(row, collapsed) {
    if (!row || row.getAttribute("data-kids") === "0") return;
    if (windowedUrl()) { setCollapsedWindowed(row, collapsed); return; }
    row.classList.toggle("collapsed", collapsed);
    row.setAttribute("aria-expanded", collapsed ? "false" : "true");
    var tog = $(".tog", row);
    if (tog) tog.setAttribute("aria-label", collapsed ? "expand" : "collapse");
    refreshHidden();
  }
  function refreshHidden() {
    // A row is hidden when any ancestor is collapsed; rows are in depth-first order.
    var hideBelow = Infinity;
    srows().forEach(function (r) {
      var d = depth(r);
      if (d <= hideBelow) hideBelow = Infinity;
      var hidden = d > hideBelow;
      r.classList.toggle("hidden", hidden);
      if (!hidden && r.classList.contains("collapsed")) hideBelow = Math.min(hideBelow, d);
    });
  }
  var panelTimer = null;
  function selectSpan(row, load) {
    if (!row) return;
    $$("#span-rows .srow.sel").forEach(function (r) { r.classList.remove("sel"); r.setAttribute("aria-selected", "false"); });
    row.classList.add("sel");
    row.setAttribute("aria-selected", "true");
    if (typeof drawFlame === "function") drawFlame();
    row.scrollIntoView({ block: "nearest" });
    if (!load) return;
    clearTimeout(panelTimer);
    panelTimer = setTimeout(function () { loadPanel(row); }, 90);
  }
  function loadPanel(row) {
    var a = $(".sname", row);
    var url = a && a.getAttribute("data-panel");
    var page = a && a.getAttribute("href");
    if (!ownPath(url) || !window.htmx) { if (ownPath(page)) window.location.assign(page); return; }
    window.htmx.ajax("GET", url, { target: "#panel", swap: "innerHTML" }).then(function () {
      if (ownPath(page)) history.replaceState(null, "", page);
    });
  }
  function parentRow(row) {
    var rows = srows(), i = rows.indexOf(row), d = depth(row);
    for (var j = i - 1; j >= 0; j--) if (depth(rows[j]) < d) return rows[j];
    return null;
  }
  document.addEventListener("click", function (e) {
    var tog = e.target.closest && e.target.closest(".srow .tog");
    if (tog) { var r = tog.closest(".srow"); setCollapsed(r, !r.classList.contains("collapsed")); e.preventDefault(); return; }
    var row = e.target.closest && e.target.closest(".srow");
    if (row && row.getAttribute("data-group")) { setCollapsed(row, false); e.preventDefault(); return; }
    if (row) {
      if (e.metaKey || e.ctrlKey || e.shiftKey || e.button === 1) return; // let the link open elsewhere
      e.preventDefault();
      selectSpan(row, true);
    }
    if ((e.target.id === "collapse-all" || e.target.id === "expand-all") && windowedUrl()) { resetWindowed(e.target.id === "collapse-all"); return; }
    if (e.target.id === "collapse-all") srows().forEach(function (r) { if (depth(r) >= 1 && r.getAttribute("data-kids") !== "0") { r.classList.add("collapsed"); r.setAttribute("aria-expanded", "false"); } }), refreshHidden();
    if (e.target.id === "expand-all") srows().forEach(function (r) { r.classList.remove("collapsed"); r.setAttribute("aria-expanded", "true"); }), refreshHidden();
  });

  // ---- big traces: the server sends windows of rows (ui/queries/trace_tree.py) -------------------
  // The page holds the first window; more come as the last row nears the view. Collapsing,
  // expanding and opening a folded run ask the server for the rows from that row on, with the
  // viewer's state (span ids), so the whole tree is navigable without ever being in the page.
  var treeState = { collapsed: new Set(), expanded: new Set(), opened: new Set(), all: false };
  function windowedUrl() { var el = $("#span-rows"); var u = el && el.getAttribute("data-windowed"); return ownPath(u) ? u : null; }
  function treeParams(start) {
    var v = { collapsed: Array.from(treeState.collapsed).join(","), expanded: Array.from(treeState.expanded).join(","),
              opened: Array.from(treeState.opened).join(","), all: treeState.all ? "1" : "0" };
    if (start) v.start = start;
    var el = $("#span-rows");
    if (el && /^[0-9]+$/.test(el.getAttribute("data-spans") || "")) v.n = el.getAttribute("data-spans");
    var sel = $("#span-rows .srow.sel");
    if (sel && sel.getAttribute("data-id")) v.selected = sel.getAttribute("data-id");
    if (el && el.getAttribute("data-hl")) v.hl = el.getAttribute("data-hl");  // new rows keep the search's marks
    return v;
  }
  function loadRows(start, from) {
    // ``from`` (a row or the "more" marker) and every row after it give way to the window at ``start``.
    var url = windowedUrl();
    if (!url || !window.htmx || !from) return Promise.resolve();
    for (var n = from.nextElementSibling; n; n = from.nextElementSibling) n.remove();
    from.setAttribute("aria-busy", "true");
    return window.htmx.ajax("GET", url, { target: from, swap: "outerHTML settle:0ms", values: treeParams(start) }).then(observeMore);
  }
  var moreObserver = null;
  var MAX_ROWS_IN_PAGE = 3000;  // past this, rows scrolled far above the view leave the page
  function trimAbove() {
    // The page holds what is near the view, not everything scrolled through: rows well above the
    // view go, and a note at the top says how many and how to get back to them.
    var rows = srows();
    if (rows.length <= MAX_ROWS_IN_PAGE) return;
    var drop = 0, limit = rows.length - MAX_ROWS_IN_PAGE * 2 / 3;
    while (drop < limit && rows[drop].getBoundingClientRect().bottom < -2000) drop++;
    if (!drop) return;
    var box = $("#span-rows"), gap = $("#span-rows .gap.trimmed");
    if (!gap) {
      gap = document.createElement("div");
      gap.className = "gap trimmed muted";
      gap.setAttribute("role", "note");
      gap.setAttribute("data-count", "0");
      box.insertBefore(gap, box.firstChild);
    }
    var before = document.documentElement.scrollHeight;
    for (var i = 0; i < drop; i++) rows[i].remove();
    window.scrollBy(0, document.documentElement.scrollHeight - before);  // keep what the viewer looks at in place
    var count = (parseInt(gap.getAttribute("data-count"), 10) || 0) + drop;
    gap.setAttribute("data-count", String(count));
    gap.textContent = count.toLocaleString() + " rows above are no longer in the page. ";
    var top = document.createElement("a");
    top.href = location.pathname;
    top.textContent = "Show the trace from the top";
    gap.appendChild(top);
  }
  function observeMore() {
    trimAbove();
    var more = $("#span-rows .more");
    if (!more || !window.IntersectionObserver) return;
    if (!moreObserver) moreObserver = new IntersectionObserver(function (entries) {
      entries.forEach(function (en) {
        if (!en.isIntersecting) return;
        moreObserver.unobserve(en.target);
        loadRows(en.target.getAttribute("data-start"), en.target);
      });
    }, { rootMargin: "800px" });
    moreObserver.observe(more);
  }
  function setCollapsedWindowed(row, collapsed) {
    var group = row.getAttribute("data-group");
    if (group) { if (collapsed) return; treeState.opened.add(group); loadRows(group, row); return; }
    var id = row.getAttribute("data-id");
    if (!id || row.classList.contains("collapsed") === collapsed) return;
    if (treeState.all) { if (collapsed) treeState.expanded.delete(id); else treeState.expanded.add(id); }
    else if (collapsed) treeState.collapsed.add(id); else treeState.collapsed.delete(id);
    if (collapsed) {
      // The subtree's rows in the page go at once; only a subtree that runs past the loaded rows
      // needs the server (the next window must start after it).
      var d = depth(row);
      for (var n = row.nextElementSibling; n && n.classList.contains("srow") && depth(n) > d; n = row.nextElementSibling) n.remove();
      row.classList.add("collapsed");
      row.setAttribute("aria-expanded", "false");
      var tog = $(".tog", row);
      if (tog) tog.setAttribute("aria-label", "expand");
      if (!row.nextElementSibling || !row.nextElementSibling.classList.contains("more")) return;
    }
    var wasSelected = row.classList.contains("sel");
    loadRows(id, row).then(function () {
      var again = $('#span-rows .srow[data-id="' + id + '"]');
      if (again && wasSelected) selectSpan(again, false);
    });
  }
  function resetWindowed(collapse) {
    treeState = { collapsed: new Set(), expanded: new Set(), opened: new Set(), all: collapse };
    var first = $("#span-rows .srow, #span-rows .gap");
    if (first) loadRows(null, first);
  }
  document.addEventListener("DOMContentLoaded", observeMore);
  // Rows arrive by htmx swaps: once settled, trim what is far above and watch the new "more" marker.
  document.addEventListener("htmx:afterSettle", function () { if (windowedUrl()) observeMore(); });
  function mergeRevealedState() {
    // A revealed span (find, a deep link) came with what the server opened for it: keep that.
    var st = $("#span-rows .tree-state");
    if (!st) return;
    function ids(name) { return (st.getAttribute(name) || "").split(",").filter(function (x) { return /^[0-9a-f]{16}$/.test(x); }); }
    ids("data-uncollapsed").forEach(function (id) { treeState.collapsed.delete(id); });
    ids("data-expanded").forEach(function (id) { treeState.expanded.add(id); });
    ids("data-opened").forEach(function (id) { treeState.opened.add(id); });
    st.remove();
  }
  document.addEventListener("DOMContentLoaded", mergeRevealedState);

  // ---- find in trace: the server finds (names, attributes, status); n / N walk the matches --------
  var finder = { q: "", ids: [], k: -1 };
  function findCount(text) { var c = $("#find-count"); if (c) c.textContent = text; }
  function runFind(q) {
    var input = $("#find"), url = input && input.getAttribute("data-url");
    if (!ownPath(url)) return;
    finder = { q: q, ids: [], k: -1 };
    if (!q) { findCount(""); return; }
    var params = new URLSearchParams({ q: q });
    var el = $("#span-rows");
    if (el && /^[0-9]+$/.test(el.getAttribute("data-spans") || "")) params.set("n", el.getAttribute("data-spans"));
    findCount("finding…");
    fetch(url + "?" + params.toString(), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (data) {
        if (finder.q !== q) return;
        finder.ids = (data.matches || []).filter(function (x) { return /^[0-9a-f]{16}$/.test(x); });
        if (!finder.ids.length) { findCount("no match"); return; }
        gotoMatch(0, data.total);
      })
      .catch(function (err) { findCount("could not search (" + err.message + ")"); });
  }
  function gotoMatch(k, total) {
    if (!finder.ids.length) return;
    finder.k = (k + finder.ids.length) % finder.ids.length;
    var id = finder.ids[finder.k];
    findCount((finder.k + 1) + " of " + (total || finder.total || finder.ids.length));
    if (total) finder.total = total;
    showSpan(id);
  }
  function showSpan(id) {
    // Select span ``id`` in the tree, revealing it (collapsed ancestors, folds, other windows) first.
    var row = $('#span-rows .srow[data-id="' + id + '"]');
    if (!windowedUrl()) {
      // Every row is in the page: open the collapsed ancestors, then select.
      for (var p = row && parentRow(row); p; p = parentRow(p)) if (p.classList.contains("collapsed")) setCollapsed(p, false);
      if (row) selectSpan(row, true);
      return;
    }
    if (row) { selectSpan(row, true); return; }
    // Not in the page: ask for its path and the rows from it on, then select it.
    var first = $("#span-rows").firstElementChild;
    var values = treeParams(null);
    values.reveal = id;
    for (var n = first && first.nextElementSibling; n; n = first.nextElementSibling) n.remove();
    pendingSelect = id;
    window.htmx.ajax("GET", windowedUrl(), { target: first, swap: "outerHTML settle:0ms", values: values }).then(function () {
      mergeRevealedState();
      observeMore();
      selectPending();
    });
  }
  // The span a reveal asked for is selected once its row is in the page: htmx's promise may settle
  // before the swap, so the swap events try again.
  var pendingSelect = null;
  function selectPending() {
    if (!pendingSelect) return;
    var row = $('#span-rows .srow[data-id="' + pendingSelect + '"]');
    if (row) { pendingSelect = null; selectSpan(row, true); }
  }
  document.addEventListener("htmx:afterSettle", selectPending);
  // ---- timeline: a flame view on a canvas, bars from the server per (depth, pixel column) ---------
  var flame = { lo: null, hi: null, from: null, to: null, depthFrom: 0, data: null, drag: null, busy: false, again: false };
  var ROW_H = 14;
  function flameCanvas() { return $("#flame-canvas"); }
  function loadFlame() {
    var sec = $("#flame"), canvas = flameCanvas(), url = sec && sec.getAttribute("data-url");
    if (!canvas || !ownPath(url)) return;
    if (flame.busy) { flame.again = true; return; }  // one request at a time; the latest view wins
    flame.busy = true;
    var width = Math.max(1, Math.round(canvas.clientWidth));
    var params = new URLSearchParams({ width: String(width), depth_from: String(flame.depthFrom),
                                       depths: String(Math.max(1, Math.floor(canvas.clientHeight / ROW_H))) });
    if (flame.from !== null) { params.set("from_ns", String(Math.round(flame.from))); params.set("to_ns", String(Math.round(flame.to))); }
    var n = sec.getAttribute("data-spans");
    if (/^[0-9]+$/.test(n || "")) params.set("n", n);
    fetch(url + "?" + params.toString(), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (data) {
        flame.data = data;
        if (flame.lo === null) { flame.lo = data.from_ns; flame.hi = data.to_ns; }
        // A shallow trace gets a shallow canvas (CSSOM, which the CSP allows, unlike style attributes).
        canvas.style.height = Math.min(180, (data.max_depth + 1) * ROW_H + 4) + "px";
        drawFlame();
      })
      .catch(function (err) { var r = $("#flame-range"); if (r) r.textContent = "could not load (" + err.message + ")"; })
      .then(function () { flame.busy = false; if (flame.again) { flame.again = false; loadFlame(); } });
  }
  function cssVar(name, fallback) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback; }
  function drawFlame() {
    var canvas = flameCanvas(), d = flame.data;
    if (!canvas || !d) return;
    var dpr = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    var g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    var colors = [cssVar("--bar", "#8aa"), cssVar("--llm", "#85f"), cssVar("--tool", "#e90"), cssVar("--err", "#d33")];
    var crit = $("#flame-critical") && $("#flame-critical").checked, accent = cssVar("--accent", "#36f");
    var sel = $("#span-rows .srow.sel"), selId = sel && sel.getAttribute("data-id");
    g.font = "11px " + cssVar("--sans", "sans-serif");
    g.textBaseline = "middle";
    for (var i = 0; i < d.x0.length; i++) {
      var y = (d.depth[i] - d.depth_from) * ROW_H, x = d.x0[i], bw = Math.max(1, d.x1[i] - d.x0[i]);
      g.fillStyle = colors[d.kind[i]] || colors[0];
      g.globalAlpha = crit && !d.critical[i] ? 0.45 : 1;
      g.fillRect(x, y + 1, bw, ROW_H - 2);
      g.globalAlpha = 1;
      if (crit && d.critical[i]) { g.strokeStyle = accent; g.lineWidth = 1; g.strokeRect(x + 0.5, y + 1.5, bw - 1, ROW_H - 3); }
      if (d.span_id[i] === selId) { g.strokeStyle = cssVar("--fg", "#000"); g.lineWidth = 2; g.strokeRect(x + 1, y + 2, bw - 2, ROW_H - 4); }
      if (bw > 40) {
        g.fillStyle = cssVar("--fg", "#000");
        g.save(); g.beginPath(); g.rect(x, y, bw, ROW_H); g.clip();
        g.fillText(String(d.names[d.name[i]] || ""), x + 3, y + ROW_H / 2);
        g.restore();
      }
    }
    var range = $("#flame-range");
    if (range) range.textContent = "depth " + d.depth_from + "–" + Math.min(d.max_depth, d.depth_from + Math.floor(h / ROW_H) - 1) +
      " of " + d.max_depth + " · " + ((d.to_ns - d.from_ns) / 1e6).toFixed(1) + " ms shown · " + d.x0.length + " bars";
  }
  function flameHit(ev) {
    var canvas = flameCanvas(), d = flame.data;
    if (!canvas || !d) return null;
    var r = canvas.getBoundingClientRect(), x = ev.clientX - r.left, depthAt = Math.floor((ev.clientY - r.top) / ROW_H) + d.depth_from;
    for (var i = 0; i < d.x0.length; i++) if (d.depth[i] === depthAt && x >= d.x0[i] && x < Math.max(d.x1[i], d.x0[i] + 2)) return i;
    return null;
  }
  document.addEventListener("wheel", function (ev) {
    var canvas = flameCanvas();
    if (!canvas || ev.target !== canvas || !flame.data) return;
    ev.preventDefault();
    if (ev.shiftKey) {  // deeper or shallower levels
      flame.depthFrom = Math.max(0, Math.min(flame.data.max_depth, flame.depthFrom + (ev.deltaY > 0 ? 5 : -5)));
      loadFlame();
      return;
    }
    var d = flame.data, r = canvas.getBoundingClientRect(), at = (ev.clientX - r.left) / canvas.clientWidth;
    var span = d.to_ns - d.from_ns, factor = ev.deltaY > 0 ? 1.25 : 0.8;
    var next = Math.max(1000, Math.min(flame.hi - flame.lo, span * factor));
    var center = d.from_ns + at * span;
    flame.from = Math.max(flame.lo, center - at * next);
    flame.to = Math.min(flame.hi, flame.from + next);
    loadFlame();
  }, { passive: false });
  document.addEventListener("pointerdown", function (ev) {
    var canvas = flameCanvas();
    if (canvas && ev.target === canvas && flame.data) flame.drag = { x: ev.clientX, moved: false };
  });
  document.addEventListener("pointermove", function (ev) {
    var canvas = flameCanvas(), d = flame.data;
    if (!flame.drag || !canvas || !d) return;
    var dx = ev.clientX - flame.drag.x;
    if (Math.abs(dx) < 3 && !flame.drag.moved) return;
    flame.drag.moved = true;
    var span = d.to_ns - d.from_ns, shift = -dx / canvas.clientWidth * span;
    flame.from = Math.max(flame.lo, Math.min(flame.hi - span, d.from_ns + shift));
    flame.to = flame.from + span;
    flame.drag.x = ev.clientX;
    loadFlame();
  });
  document.addEventListener("pointerup", function (ev) {
    var drag = flame.drag;
    flame.drag = null;
    if (!drag || drag.moved) return;
    var i = flameHit(ev);
    if (i !== null) showSpan(flame.data.span_id[i]);
  });
  document.addEventListener("click", function (e) {
    if (e.target.id === "flame-reset") { flame.from = flame.to = null; flame.depthFrom = 0; loadFlame(); }
  });
  document.addEventListener("change", function (e) { if (e.target.id === "flame-critical") drawFlame(); });
  document.addEventListener("DOMContentLoaded", loadFlame);
  var flameResize = null;
  window.addEventListener("resize", function () { clearTimeout(flameResize); flameResize = setTimeout(loadFlame, 150); });

  document.addEventListener("keydown", function (e) {
    if (e.target && e.target.id === "find" && e.key === "Enter") {
      e.preventDefault();
      var q = e.target.value.trim();
      if (q === finder.q && finder.ids.length) gotoMatch(finder.k + (e.shiftKey ? -1 : 1)); else runFind(q);
      return;
    }
    if (typing(e) || e.altKey || e.ctrlKey || e.metaKey || !$("#find")) return;
    if (e.key === "f") { $("#find").focus(); $("#find").select(); e.preventDefault(); e.stopImmediatePropagation(); }
    else if ((e.key === "n" || e.key === "N") && (finder.ids.length || $("#find").value.trim())) {
      // The page opened with a search (hl=) fills the find box: the first n runs it.
      var fq = $("#find").value.trim();
      if (fq && fq !== finder.q) runFind(fq); else gotoMatch(finder.k + (e.key === "n" ? 1 : -1));
      e.preventDefault(); e.stopImmediatePropagation();
    }
  });

  // ---- keys -------------------------------------------------------------------------------------
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && typing(e)) { e.target.blur(); return; }
    if (typing(e) || e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.key === "/") { var f = $("#filter"); if (f) { f.focus(); f.select(); e.preventDefault(); } return; }
    if ($("#span-rows")) {
      var vis = visibleRows(), cur = $("#span-rows .srow.sel"), i = vis.indexOf(cur);
      if (e.key === "ArrowDown" || e.key === "j") { selectSpan(vis[Math.min(vis.length - 1, i + 1)] || vis[0], true); e.preventDefault(); }
      else if (e.key === "ArrowUp" || e.key === "k") { selectSpan(vis[Math.max(0, i - 1)] || vis[0], true); e.preventDefault(); }
      else if ((e.key === "ArrowLeft" || e.key === "h") && cur) {
        if (cur.getAttribute("data-kids") !== "0" && !cur.classList.contains("collapsed")) setCollapsed(cur, true);
        else selectSpan(parentRow(cur), true);
        e.preventDefault();
      } else if ((e.key === "ArrowRight" || e.key === "l") && cur) { setCollapsed(cur, false); e.preventDefault(); }
      else if (e.key === "Enter" && cur) { loadPanel(cur); e.preventDefault(); }
      return;
    }
    if (listRows().length) {
      if (e.key === "ArrowDown" || e.key === "j") { moveList(1); e.preventDefault(); }
      else if (e.key === "ArrowUp" || e.key === "k") { moveList(-1); e.preventDefault(); }
      else if (e.key === "Enter" || e.key === "o") { openRow($("tr.trow.sel")); }
    }
  });

  // Live updates replace the rows: keep the keyboard selection on the same trace.
  document.addEventListener("htmx:afterSwap", function (e) {
    if (e.target && e.target.id === "trace-rows" && listSelected) {
      var row = listRows().find(function (r) { return r.getAttribute("data-id") === listSelected; });
      if (row) row.classList.add("sel");
    }
    if (e.target && e.target.id === "panel") applyAttrFilter();
  });

  // ---- image modal ------------------------------------------------------------------------------
  document.addEventListener("click", function (e) {
    var btn = e.target.closest && e.target.closest("button.thumb");
    if (!btn) return;
    var src = btn.getAttribute("data-full") || "";
    if (!SAFE_IMG.test(src)) return;
    var dlg = $("#modal"), img = $("#modal-img");
    img.src = src;
    if (dlg.showModal) dlg.showModal(); else dlg.setAttribute("open", "");
  });
  document.addEventListener("click", function (e) {
    var dlg = $("#modal");
    if (dlg && e.target === dlg) dlg.close();
  });

  // ---- show all: fetch the full value, put it in as text -----------------------------------------
  document.addEventListener("click", function (e) {
    var btn = e.target.closest && e.target.closest("button.show-all");
    if (!btn) return;
    var url = btn.getAttribute("data-full-url");
    var pre = btn.previousElementSibling;
    if (!ownPath(url) || !pre) return;
    btn.disabled = true;
    btn.textContent = "loading…";
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (data) { pre.textContent = String(data.text); btn.remove(); })
      .catch(function (err) { btn.disabled = false; btn.textContent = "could not load (" + err.message + ")"; });
  });

  // ---- attribute filter --------------------------------------------------------------------------
  function applyAttrFilter() {
    var input = $(".attr-filter");
    if (!input) return;
    var q = input.value.trim().toLowerCase();
    $$("table.attrs:not(.small) tr", input.parentNode).forEach(function (tr) {
      var hit = !q || (tr.getAttribute("data-k") || "").toLowerCase().indexOf(q) >= 0 || tr.textContent.toLowerCase().indexOf(q) >= 0;
      tr.classList.toggle("hidden", !hit);
    });
  }
  document.addEventListener("input", function (e) {
    if (e.target.classList && e.target.classList.contains("attr-filter")) applyAttrFilter();
  });
  document.addEventListener("DOMContentLoaded", function () {
    applyAttrFilter();
    var sel = $("#span-rows .srow.sel");
    if (sel) sel.scrollIntoView({ block: "nearest" });
  });
})();
