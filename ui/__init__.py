"""tracelake.ui: the trace browser (FastAPI + Jinja2 + htmx)."""
