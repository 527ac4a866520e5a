// The Retention page's rule editor: put the caret on the line a preview error names (the message
// and the numbered excerpt are rendered by the server; this only selects the line in the textarea).
// Nothing from the YAML is ever put into the page here.
(function () {
  "use strict";
  function selectErrorLine() {
    var section = document.getElementById("rules-editor");
    var ta = document.getElementById("rules-yaml");
    if (!section || !ta) return;
    var line = parseInt(section.getAttribute("data-error-line") || "", 10);
    if (!(line > 0)) return;
    var lines = ta.value.split("\n");
    if (line > lines.length) line = lines.length;
    var start = 0;
    for (var i = 0; i < line - 1; i++) start += lines[i].length + 1;
    ta.focus();
    ta.setSelectionRange(start, start + lines[line - 1].length);
    var lh = parseFloat(window.getComputedStyle(ta).lineHeight) || 18;
    ta.scrollTop = Math.max(0, (line - 3) * lh);
  }
  if (!window.__tracelakeRulesEditor) {
    window.__tracelakeRulesEditor = true;
    document.addEventListener("DOMContentLoaded", selectErrorLine);
    document.addEventListener("htmx:afterSettle", selectErrorLine);
  }
  if (document.readyState !== "loading") selectErrorLine();
})();
