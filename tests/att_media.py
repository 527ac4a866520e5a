"""Real media made on the spot: a valid PNG (zlib + struct) and a valid WAV (wave module)."""
from __future__ import annotations

import io
import math
import random
import struct
import wave
import zlib


def png(width: int = 96, height: int = 64, seed: int = 0) -> bytes:
    """An RGB PNG of noise: stored uncompressed-ish so its size is ~3 * width * height bytes."""
    rng = random.Random(seed)
    rows = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 1))
            + chunk(b"IEND", b""))


def wav(seconds: float = 0.5, rate: int = 8000, freq: float = 440.0) -> bytes:
    """A mono 16-bit sine wave."""
    frames = b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * freq * i / rate)))
                      for i in range(int(seconds * rate)))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return out.getvalue()


SVG_WITH_SCRIPT = (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
                   b'<script>alert(document.cookie)</script><rect width="10" height="10"/>' + b" " * 2048 + b"</svg>")
