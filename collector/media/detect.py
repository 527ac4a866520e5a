"""Cheap detection: could a request body hold media worth extracting at all?

Every extractable payload is a run of base64 characters at least as long as the threshold;
:class:`RunDetector` finds such runs by sampling, so requests without media cost ~0.2 us per KB.
"""
from __future__ import annotations

# Characters of a base64 payload as it can sit in a span: both alphabets, padding, and line
# breaks raw or JSON-escaped (MIME-style wrapping).
_B64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_\\\n\r")
_FLAGS = bytes(49 if c in _B64_CHARS else 48 for c in range(256))  # b"1" for base64, b"0" else
_SAMPLES = 128  # consecutive base64 samples needed: prose (a space every ~7 chars) never has that many


class RunDetector:
    """Does a text hold a run of at least ``min_chars`` base64 characters?

    Every extractable payload is such a run, so a body without one is returned untouched. The
    check samples every ``stride``-th byte in C (an extended slice, then ``translate``) and looks
    for ``min_chars // stride`` consecutive base64 samples: a real run always yields them (so no
    media is ever missed), while prose and JSON break them with spaces and punctuation. It costs
    ~0.2 us per KB where each plain ``marker in body`` scan costs ~0.5 us.
    """

    def __init__(self, min_chars: int) -> None:
        self.min_chars = min_chars
        self.stride = min_chars // _SAMPLES
        self.needle = b"1" * (min_chars // self.stride) if self.stride >= 2 else b""

    def __call__(self, data: bytes | str) -> bool:
        if len(data) < self.min_chars:
            return False
        if not self.needle:  # tiny thresholds: sampling cannot rule anything out
            return True
        sample = data[::self.stride]
        if isinstance(sample, str):
            sample = sample.encode("ascii", "replace")  # non-ASCII becomes '?', which breaks a run
        return self.needle in sample.translate(_FLAGS)


def min_chars(min_bytes: int) -> int:
    """Length of the shortest base64 text that decodes to ``min_bytes``."""
    return max(1, (min_bytes * 4 + 2) // 3)


def might_have_media(body: bytes, min_bytes: int = 1024) -> bool:
    """The hot-path check: False means the body certainly carries nothing to extract."""
    return RunDetector(min_chars(min_bytes))(body)
