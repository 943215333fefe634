"""The media type of a body from its first bytes: the WHATWG MIME-sniffing table as Go's
``http.DetectContentType`` applies it (the ``contentType`` middleware's detection, as Traefik's server
part does it).

At most the first 512 bytes are looked at; every signature is a fixed-size comparison, so a call costs
a few microseconds whatever the body. The answer is always a valid media type:
``application/octet-stream`` when nothing more specific matches.
"""

from __future__ import annotations

__all__ = ["SNIFF_LEN", "detect_content_type"]

SNIFF_LEN = 512
_WS = frozenset(b"\t\n\x0c\r ")
_HTML = "text/html; charset=utf-8"

# Tags whose opening (case-insensitive, after leading whitespace, then a space or '>') means HTML.
_HTML_TAGS = tuple(
    t.encode()
    for t in (
        "<!DOCTYPE HTML",
        "<HTML",
        "<HEAD",
        "<SCRIPT",
        "<IFRAME",
        "<H1",
        "<DIV",
        "<FONT",
        "<TABLE",
        "<A",
        "<STYLE",
        "<TITLE",
        "<B",
        "<BODY",
        "<BR",
        "<P",
        "<!--",
    )
)

_FF4_0_4_FF4 = b"\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff"
# (kind, pattern, mask or None, media type), in the table's order. kind: "exact" (a prefix), "masked"
# (prefix under a mask), "masked_ws" (masked, after leading whitespace), "mp4", "text" (the last).
_SIGNATURES: tuple[tuple[str, bytes, bytes | None, str], ...] = (
    ("masked_ws", b"<?xml", b"\xff" * 5, "text/xml; charset=utf-8"),
    ("exact", b"%PDF-", None, "application/pdf"),
    ("exact", b"%!PS-Adobe-", None, "application/postscript"),
    ("masked", b"\xfe\xff\x00\x00", b"\xff\xff\x00\x00", "text/plain; charset=utf-16be"),
    ("masked", b"\xff\xfe\x00\x00", b"\xff\xff\x00\x00", "text/plain; charset=utf-16le"),
    ("masked", b"\xef\xbb\xbf\x00", b"\xff\xff\xff\x00", "text/plain; charset=utf-8"),
    ("exact", b"\x00\x00\x01\x00", None, "image/x-icon"),
    ("exact", b"\x00\x00\x02\x00", None, "image/x-icon"),
    ("exact", b"BM", None, "image/bmp"),
    ("exact", b"GIF87a", None, "image/gif"),
    ("exact", b"GIF89a", None, "image/gif"),
    ("masked", b"RIFF\x00\x00\x00\x00WEBPVP", _FF4_0_4_FF4 + b"\xff\xff", "image/webp"),
    ("exact", b"\x89PNG\r\n\x1a\n", None, "image/png"),
    ("exact", b"\xff\xd8\xff", None, "image/jpeg"),
    ("masked", b"FORM\x00\x00\x00\x00AIFF", _FF4_0_4_FF4, "audio/aiff"),
    ("masked", b"ID3", b"\xff\xff\xff", "audio/mpeg"),
    ("masked", b"OggS\x00", b"\xff" * 5, "application/ogg"),
    ("masked", b"MThd\x00\x00\x00\x06", b"\xff" * 8, "audio/midi"),
    ("masked", b"RIFF\x00\x00\x00\x00AVI ", _FF4_0_4_FF4, "video/avi"),
    ("masked", b"RIFF\x00\x00\x00\x00WAVE", _FF4_0_4_FF4, "audio/wave"),
    ("mp4", b"", None, "video/mp4"),
    ("exact", b"\x1a\x45\xdf\xa3", None, "video/webm"),
    ("masked", b"\x00" * 34 + b"LP", b"\x00" * 34 + b"\xff\xff", "application/vnd.ms-fontobject"),
    ("exact", b"\x00\x01\x00\x00", None, "font/ttf"),
    ("exact", b"OTTO", None, "font/otf"),
    ("exact", b"ttcf", None, "font/collection"),
    ("exact", b"wOFF", None, "font/woff"),
    ("exact", b"wOF2", None, "font/woff2"),
    ("exact", b"\x1f\x8b\x08", None, "application/x-gzip"),
    ("exact", b"PK\x03\x04", None, "application/zip"),
    ("exact", b"Rar!\x1a\x07\x00", None, "application/x-rar-compressed"),
    ("exact", b"Rar!\x1a\x07\x01\x00", None, "application/x-rar-compressed"),
    ("exact", b"\x00asm", None, "application/wasm"),
)

# Bytes that make a body binary (not text/plain): the control characters other than TAB, LF, FF, CR, ESC.
_BINARY = frozenset([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20)])


def _html(data: bytes) -> bool:
    for tag in _HTML_TAGS:
        n = len(tag)
        if len(data) < n + 1:
            continue
        head = data[:n]
        # letters compared upper-cased (Go clears bit 0x20 only where the signature has a letter)
        if bytes(b & 0xDF if 0x41 <= t <= 0x5A else b for b, t in zip(head, tag, strict=True)) != tag:
            continue
        if data[n] in (0x20, 0x3E):
            return True
    return False


def _masked(data: bytes, pattern: bytes, mask: bytes) -> bool:
    if len(data) < len(pattern):
        return False
    return all(data[i] & m == p for i, (p, m) in enumerate(zip(pattern, mask, strict=True)))


def _mp4(data: bytes) -> bool:
    if len(data) < 12:
        return False
    box = int.from_bytes(data[:4], "big")
    if len(data) < box or box % 4 != 0 or data[4:8] != b"ftyp":
        return False
    return any(data[st : st + 3] == b"mp4" for st in range(8, box, 4) if st != 12)


def detect_content_type(data: bytes) -> str:
    """Go's ``http.DetectContentType(data)``: the media type of a body beginning with ``data``."""
    data = data[:SNIFF_LEN]
    first = 0
    while first < len(data) and data[first] in _WS:
        first += 1
    trimmed = data[first:]
    if _html(trimmed):
        return _HTML
    for kind, pattern, mask, ctype in _SIGNATURES:
        if kind == "exact":
            if data.startswith(pattern):
                return ctype
        elif kind == "masked":
            if _masked(data, pattern, mask):  # type: ignore[arg-type]
                return ctype
        elif kind == "masked_ws":
            if _masked(trimmed, pattern, mask):  # type: ignore[arg-type]
                return ctype
        elif _mp4(data):
            return ctype
    if not any(b in _BINARY for b in trimmed):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"
