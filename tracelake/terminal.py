"""Text for the terminal: what every CLI command (core's, the archiver's) prints of span data."""
from __future__ import annotations

import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe_cell(value: Any) -> str:
    """Span data for the terminal: rich markup escaped, control characters (ANSI escapes, bells)
    shown as \\xNN instead of acting on the terminal."""
    from rich.markup import escape

    return escape(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value)))
