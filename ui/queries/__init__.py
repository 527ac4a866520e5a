"""The UI's page SQL, one module per page (the filter compiler is :mod:`tracelake.query`):

* :mod:`.trace_list` — the trace list (windowed newest-first scan, cursor), ``TraceRow``;
* :mod:`.trace` — one span's details, spans of a located trace (where a trace is, and which tiers a
  read covers: :mod:`tracelake.store.tiers`, shared with the archiver);
* :mod:`.trace_tree` — a trace of any size: totals, tree order, windows, folded runs, its shape;
* :mod:`.sessions` — the sessions list and one session's traces and conversation spans;
* :mod:`.dashboard` — time series and per-service / per-model totals;
* :mod:`.attachments` — attachment metadata for a span's blobs;
* :mod:`.archive_list` — the trace list's archive half;
* :mod:`.matched` — which span of a listed trace matched the filter's free text;
* :mod:`.retention` — the Retention page (rules, plan, runs, tier sizes) from the archiver's API;
* :mod:`.keep` — the Retention page's pins and holds (tracelake.archiver.keep).
"""

from tracelake.ui.queries import (archive_list, attachments, dashboard, matched, retention, sessions,  # noqa: E402
                                  trace, trace_list, trace_tree)

__all__ = ["archive_list", "attachments", "dashboard", "matched", "retention", "sessions", "trace", "trace_list",
           "trace_tree"]
