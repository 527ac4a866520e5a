// Scores: the trace page's score forms (which target: the trace or the selected span) and review
// mode's keys (one key per label, s skips, c writes a comment). Nothing here writes page HTML.
(function () {
  "use strict";

  function $(sel, root) { return (root || document).querySelector(sel); }

  // A score form says "the selected span": send the span id the span panel shows.
  document.addEventListener("htmx:configRequest", function (e) {
    var params = e.detail && e.detail.parameters;
    if (!params || params.target === undefined) return;
    var target = params.target;
    if (typeof params.delete === "function") params.delete("target"); else delete params.target;
    if (target !== "span") return;
    var panel = $("#panel .span-panel");
    var sid = panel ? panel.getAttribute("data-span") || "" : "";
    if (!/^[0-9a-f]{16}$/.test(sid)) { e.preventDefault(); return; }
    if (typeof params.set === "function") params.set("span_id", sid); else params.span_id = sid;
  });

  // Review mode: a label's key sends it (and the next trace comes in its place).
  document.addEventListener("keydown", function (e) {
    var review = $("#review");
    if (!review || e.altKey || e.ctrlKey || e.metaKey) return;
    var t = e.target;
    var typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT");
    if (typing) {
      if (e.key === "Escape" || (e.key === "Enter" && t.id === "review-comment")) { t.blur(); e.preventDefault(); }
      return;
    }
    if (review.getAttribute("aria-busy") === "true") return;  // one label at a time
    var btn = null;
    if (e.key === "c") { var c = $("#review-comment"); if (c) { c.focus(); e.preventDefault(); } return; }
    if (e.key === "s") btn = $("#review-skip");
    else btn = review.querySelector('button.label[data-key="' + (/^[0-9]$/.test(e.key) ? e.key : "x") + '"]');
    if (!btn) return;
    e.preventDefault();
    var form = $("#review-form");
    if (!form || !window.htmx) return;
    review.setAttribute("aria-busy", "true");
    // Sent through htmx.ajax, not a click: the form of a trace that just came in may not be
    // processed by htmx yet, and a click would then submit it natively.
    var values = {};
    values[btn.getAttribute("name")] = btn.getAttribute("value");
    window.htmx.ajax("POST", "/review", { source: form, target: "#review", swap: "outerHTML", values: values });
  });
  function idle() { var review = $("#review"); if (review) review.removeAttribute("aria-busy"); }
  document.addEventListener("htmx:afterSwap", idle);
  document.addEventListener("htmx:afterRequest", idle);
})();
