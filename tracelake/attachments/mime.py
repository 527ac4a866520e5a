"""Media types: normalize what clients declare, sniff what bytes are, decide how to serve.

A small magic-number table rather than a dependency: it only has to recognise the formats
models accept (images, audio, video containers, PDF) well enough to catch a declared type that
contradicts the bytes. Formats without a reliable signature (SVG, text, PCM) are never judged.
"""
from __future__ import annotations

import re

OCTET_STREAM = "application/octet-stream"

# RFC 6838 restricted names: also what keeps a client's mime type out of our response headers
# in any other shape.
_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")

_ALIASES = {
    "image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png",
    "audio/x-wav": "audio/wav", "audio/wave": "audio/wav", "audio/vnd.wave": "audio/wav",
    "audio/mp3": "audio/mpeg", "audio/mpeg3": "audio/mpeg", "audio/x-mp3": "audio/mpeg",
    "audio/x-mpeg": "audio/mpeg", "audio/x-flac": "audio/flac", "audio/x-m4a": "audio/mp4",
    "audio/m4a": "audio/mp4", "audio/x-aac": "audio/aac", "application/x-pdf": "application/pdf",
}

# Container families: a declared type and the sniffed type agree when their families match.
_FAMILY = {
    "image/png": "png", "image/apng": "png", "image/jpeg": "jpeg", "image/gif": "gif",
    "image/webp": "webp", "image/bmp": "bmp", "image/tiff": "tiff",
    "audio/wav": "wave", "audio/mpeg": "mpeg", "audio/aac": "aac", "audio/flac": "flac",
    "audio/ogg": "ogg", "audio/opus": "ogg", "video/ogg": "ogg", "application/ogg": "ogg",
    "video/webm": "ebml", "audio/webm": "ebml", "video/x-matroska": "ebml", "audio/x-matroska": "ebml",
    "video/mp4": "isobmff", "audio/mp4": "isobmff", "video/quicktime": "isobmff",
    "image/heic": "isobmff", "image/heif": "isobmff", "image/avif": "isobmff",
    "application/pdf": "pdf",
}

# Served inline (rendered by <img>/<audio>/<video> or the PDF viewer); everything else,
# notably SVG, HTML, XML and JavaScript, is served as a download.
INLINE = frozenset({
    "image/png", "image/apng", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp",
    "audio/wav", "audio/mpeg", "audio/ogg", "audio/opus", "audio/flac", "audio/webm", "audio/mp4", "audio/aac",
    "video/mp4", "video/webm", "video/ogg", "application/pdf",
})

_FTYP_BRANDS = {b"M4A ": "audio/mp4", b"M4B ": "audio/mp4", b"avif": "image/avif", b"avis": "image/avif",
                b"heic": "image/heic", b"heix": "image/heic", b"mif1": "image/heif", b"msf1": "image/heif",
                b"qt  ": "video/quicktime"}


def normalize(declared: str | None) -> str | None:
    """Lower-case, parameters dropped, aliases resolved; None when absent or malformed."""
    if not declared:
        return None
    mime = declared.split(";", 1)[0].strip().lower()
    mime = _ALIASES.get(mime, mime)
    return mime if _MIME.fullmatch(mime) else None


def from_audio_format(fmt: str | None) -> str | None:
    """OpenAI ``input_audio.format`` ('wav', 'mp3', ...) as a media type."""
    return normalize(f"audio/{fmt}") if fmt else None


def sniff(data: bytes) -> str | None:
    """The media type the leading bytes prove, or None."""
    head = data[:64]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12], "video/mp4")
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    if len(head) >= 2 and head[0] == 0xFF:
        if head[1] & 0xF6 == 0xF0:  # ADTS: sync, layer 00
            return "audio/aac"
        if head[1] & 0xE0 == 0xE0 and head[1] & 0x06:  # MPEG audio frame sync, layer I-III
            return "audio/mpeg"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if head.startswith(b"BM") and len(data) >= 26:
        return "image/bmp"
    text = data[:512].lstrip().lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "image/svg+xml"
    return None


def has_signature(declared: str | None) -> bool:
    """True when bytes of this (normalized) type can be recognised, so can contradict it."""
    return normalize(declared) in _FAMILY


def contradiction(declared: str | None, data: bytes) -> str:
    """Why the bytes contradict the declared type, or '' when they do not (or cannot be judged)."""
    family = _FAMILY.get(declared or "")
    if family is None:
        return ""
    actual = sniff(data)
    if actual is not None and _FAMILY.get(actual) == family:
        return ""
    seen = f"look like {actual}" if actual else "match no known signature"
    return f"declared {declared} but the bytes {seen}"


def disposition(mime: str) -> str:
    return "inline" if mime in INLINE else "attachment"


def extension(mime: str) -> str:
    """A file extension for download names."""
    sub = mime.split("/", 1)[-1]
    return {"jpeg": "jpg", "mpeg": "mp3", "svg+xml": "svg", "plain": "txt", "octet-stream": "bin",
            "quicktime": "mov"}.get(sub, re.sub(r"[^a-z0-9]", "", sub.split("+")[0])[:8] or "bin")
