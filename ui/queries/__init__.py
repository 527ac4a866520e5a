"""The UI's page SQL, one module per page (the filter compiler is :mod:`tracelake.query`):

* :mod:`.trace_list` — the trace list (windowed newest-first scan, cursor), ``TraceRow``;
* :mod:`.trace` — one trace's spans in tree order, one span's details;
* :mod:`.sessions` — the sessions list and one session's traces and conversation spans;
* :mod:`.dashboard` — time series and per-service / per-model totals;
* :mod:`.attachments` — attachment metadata for a span's blobs.
"""

from tracelake.ui.queries import attachments, dashboard, sessions, trace, trace_list  # noqa: E402

__all__ = ["attachments", "dashboard", "sessions", "trace", "trace_list"]
