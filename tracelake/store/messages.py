"""ClickHouse's error text as a person reads it: what is wrong and where, without the wrapper the
server ran it in (``In scope SELECT formatQuerySingleLine(...)``), the exception class prefix or a
list of every token the parser would have accepted."""
from __future__ import annotations

import re

_PREFIX = re.compile(r"^.*?(?:Code: \d+\. )?DB::Exception: ", re.S)  # clickhouse-connect adds its own line first
_SCOPE = re.compile(r"[:.]?\s*[Ii]n scope .*?(?=\s*\([A-Z][A-Z_]+\)|$)", re.S)
_VERSION = re.compile(r"\s*\(version [^)]*\)\s*$")
_EXPECTED = re.compile(r"Expected one of: ([^:]*?)(?=[:.]?\s*(?:\([A-Z][A-Z_]+\)|$))", re.S)
EXPECTED_SHOWN = 8


def readable(text: str) -> str:
    """One readable sentence from a ClickHouse exception's text (either store's wording)."""
    out = _PREFIX.sub("", text.strip(), count=1)
    out = _VERSION.sub("", out)
    out = _SCOPE.sub("", out)

    def fewer(m: re.Match[str]) -> str:
        options = [o.strip() for o in m.group(1).split(",") if o.strip()]
        more = len(options) - EXPECTED_SHOWN
        return "Expected one of: " + ", ".join(options[:EXPECTED_SHOWN]) + (f" (and {more} more)" if more > 0 else "")

    out = _EXPECTED.sub(fewer, out)
    return re.sub(r"\s+", " ", out).strip()
