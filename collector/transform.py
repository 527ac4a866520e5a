"""Moved to :mod:`tracelake.store.otlp` (the store owns its INSERT); kept as an alias for old imports."""
from tracelake.store.otlp import *  # noqa: F401,F403
from tracelake.store.otlp import length_delimited, udf_statements  # noqa: F401
