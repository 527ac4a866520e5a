"""Query limits the engine enforces: on untrusted SQL (``/api/sql``), on the UI's queries for a
caller limited to projects, and on the embedded engine as a whole (docs/security.md "Resource limits").

They are ClickHouse settings, set on the connection (chdb) or sent with each query (a ClickHouse
server) *before* ``readonly=1``, so SQL cannot raise them with a SETTINGS clause.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ENGINE_MEMORY_RATIO = 0.6  # of the RAM (or cgroup limit) ClickHouse sees, when no byte cap is set
UI_MAX_EXECUTION_S = 30  # the UI's own queries (unchanged from before these settings existed)
UI_MAX_RESULT_ROWS = 100_000


@dataclass(frozen=True)
class QueryLimits:
    """The values of the Settings fields of the same names (tracelake.config)."""

    sql_max_memory_bytes: int
    sql_max_execution_s: float
    sql_max_result_rows: int
    sql_max_result_bytes: int
    sql_max_rows_to_read: int
    ui_max_memory_bytes: int
    engine_max_memory_bytes: int | None

    @classmethod
    def from_settings(cls, settings: Any = None) -> QueryLimits:
        """From ``settings``; without them, from Settings' defaults and ``TRACELAKE_*`` variables."""
        if settings is None:
            from tracelake.config import Settings

            settings = Settings()
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})

    def untrusted(self) -> dict[str, int | float | str]:
        """Settings of ``/api/sql`` queries. Results past a size limit are cut, not refused
        (``break``); ``/api/sql`` says so in its answer."""
        return {"max_memory_usage": self.sql_max_memory_bytes, "max_execution_time": self.sql_max_execution_s,
                "max_result_rows": self.sql_max_result_rows, "max_result_bytes": self.sql_max_result_bytes,
                "result_overflow_mode": "break", "max_rows_to_read": self.sql_max_rows_to_read}

    def ui(self) -> dict[str, int | float | str]:
        """Settings of the UI's own queries on a scoped connection (a caller limited to projects)."""
        return {"max_memory_usage": self.ui_max_memory_bytes, "max_execution_time": UI_MAX_EXECUTION_S,
                "max_result_rows": UI_MAX_RESULT_ROWS, "result_overflow_mode": "break"}

    def engine(self) -> dict[str, int | float]:
        """Server settings of the embedded engine, given when its first connection opens."""
        if self.engine_max_memory_bytes:
            return {"max_server_memory_usage": self.engine_max_memory_bytes}
        return {"max_server_memory_usage_to_ram_ratio": ENGINE_MEMORY_RATIO}


def connect_options(settings: dict[str, Any]) -> str:
    """``settings`` as chdb connection-string parameters (``a=1&b=x``)."""
    return "&".join(f"{name}={value}" for name, value in settings.items())
