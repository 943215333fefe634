"""The HTTP side of a static file: which representation (precompressed sibling by ``Accept-Encoding``),
conditional requests (``If-Match``, ``If-Unmodified-Since`` → 412; ``If-None-Match``,
``If-Modified-Since`` → 304, in RFC 9110's order), ``Range`` (one range → 206, unsatisfiable → 416,
several ranges → the whole file with 200, as RFC 9110 allows), only GET and HEAD (else 405 with
``Allow``). Pure functions of what :mod:`router.static.resolve` found and the request headers: the loop
calls them on every request, they never touch the file system.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from typing import Any

from router.replies import error_body
from router.static.resolve import Bad, File, Found, Listing, Missing, Redirect, Variant

__all__ = ["Reply", "byte_range", "choose", "date_line", "plan"]

ALLOWED = "GET, HEAD"
_PHRASES = {
    200: "OK", 206: "Partial Content", 301: "Moved Permanently", 304: "Not Modified", 400: "Bad Request",
    404: "Not Found", 405: "Method Not Allowed", 412: "Precondition Failed", 416: "Range Not Satisfiable",
}  # fmt: skip
_TEXT = "text/plain; charset=utf-8"


@dataclass(slots=True)
class Reply:
    """What to answer: a status, the file's headers (``variant``) or a body of our own, and which bytes.

    The body is ``body`` when set, else ``length`` bytes of ``variant`` from ``start`` (from its cached
    content when it has one, else read from the file)."""

    status: int
    variant: Variant | None = None
    start: int = 0
    length: int = 0
    body: bytes | None = None
    extra: tuple[tuple[str, str], ...] = ()
    reason: str | None = None

    def pairs(self) -> list[tuple[str, str]]:
        """The response headers (for the middleware path's sink), Content-Length included."""
        v = self.variant
        if v is None:
            out = []
        elif self.status == 304:
            out = [(k, val) for k, val in v.pairs if k in ("ETag", "Last-Modified", "Vary")]
        else:
            out = list(v.pairs)
        out.extend(self.extra)
        if self.status != 304:
            out.append(("Content-Length", str(self.length)))
        return out

    def head(self, close: bool, http10: bool = False) -> bytes:
        """The whole response head (for the fast path, written to the transport); an HTTP/1.0 client
        kept alive is told so."""
        v = self.variant
        parts = [b"HTTP/1.1 %d %s\r\n" % (self.status, _PHRASES[self.status].encode())]
        if v is not None:
            parts.append(v.lines_304 if self.status == 304 else v.lines)
        for k, val in self.extra:
            parts.append(f"{k}: {val}\r\n".encode("latin-1", "replace"))
        if self.status != 304:
            parts.append(b"Content-Length: %d\r\n" % self.length)
        parts.append(date_line())
        if close:
            parts.append(b"Connection: close\r\n\r\n")
        else:
            parts.append(b"Connection: keep-alive\r\n\r\n" if http10 else b"\r\n")
        return b"".join(parts)

    def in_memory(self) -> bytes | None:
        """The body bytes when no file needs reading (own body, cached content), else None."""
        if self.body is not None:
            return self.body
        v = self.variant
        if v is not None and v.content is not None:
            c = v.content
            return (
                c if self.start == 0 and self.length == len(c) else c[self.start : self.start + self.length]
            )
        return None if self.length else b""


_date: list[Any] = [0, b""]


def date_line() -> bytes:
    """``Date: ...\\r\\n``, formatted once per second."""
    now = int(time.time())
    if _date[0] != now:
        _date[0] = now
        _date[1] = b"Date: " + email.utils.formatdate(now, usegmt=True).encode() + b"\r\n"
    return _date[1]


def _own(status: int, text: str, reason: str, extra: tuple[tuple[str, str], ...] = ()) -> Reply:
    body = text.encode()
    return Reply(status, None, 0, len(body), body, (("Content-Type", _TEXT), *extra), reason)


NOT_ALLOWED = _own(405, "405 Method Not Allowed\n", "only GET and HEAD", (("Allow", ALLOWED),))


def accept_encodings(value: str | None) -> dict[str, float]:
    """``Accept-Encoding`` as coding → q (``*`` kept as is); malformed q-values count as 0."""
    out: dict[str, float] = {}
    if not value:
        return out
    for item in value.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        q = 1.0
        params = params.strip().lower()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        out[coding] = q
    return out


def choose(found: File, accept_encoding: str | None) -> Variant:
    """The representation to send: the acceptable sibling with the highest q (br before gzip on a tie),
    else the file itself."""
    variants = found.variants
    if len(variants) == 1 or not accept_encoding:
        return variants[0]
    accepted = accept_encodings(accept_encoding)
    star = accepted.get("*", 0.0)
    best, best_q = variants[0], 0.0
    for v in variants[1:]:
        q = accepted.get(v.encoding or "", star)
        if v.encoding == "gzip" and "x-gzip" in accepted:
            q = max(q, accepted["x-gzip"])
        if q > best_q:
            best, best_q = v, q
    return best


def byte_range(value: str, size: int) -> tuple[int, int] | bool | None:
    """One ``Range: bytes=...`` against ``size``: (start, end inclusive) when satisfiable; False when
    unsatisfiable (416); None when to be ignored (another unit, bad syntax, several ranges: the whole
    file is sent)."""
    unit, eq, spec = value.partition("=")
    if not eq or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not (first or last):
        return None
    for part in (first, last):
        if part and not (part.isascii() and part.isdigit()):
            return None
    if not first:  # the last N bytes
        n = _position(last)
        if n == 0 or size == 0:
            return False
        return max(0, size - n), size - 1
    start = _position(first)
    end = _position(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        return False
    return start, min(end, size - 1)


HUGE = 1 << 63  # any position of more than 18 digits: past every file, and int() is never asked


def _position(digits: str) -> int:
    """A byte position or suffix length from ASCII digits. More than 18 significant digits counts as
    :data:`HUGE` (Python's ``int()`` refuses over 4300 digits, and a long string costs quadratic time):
    a huge first byte is unsatisfiable, a huge last byte or suffix length means the end of the file, as
    RFC 9110 reads any value past it."""
    digits = digits.lstrip("0")
    return HUGE if len(digits) > 18 else int(digits or "0")


def _http_time(value: str) -> int | None:
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    try:
        return int(email.utils.mktime_tz(parsed))
    except (OverflowError, ValueError):
        return None


def _matches(header: str, etag: str, weak: bool) -> bool:
    """Whether ``etag`` is in an ``If-(None-)Match`` list (``*`` matches). Strong comparison refuses
    weak tags; ours are all strong."""
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            if not weak:
                continue
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def _conditional(v: Variant, get: Any) -> Reply | None:
    """412 or 304 when the request's preconditions say so (RFC 9110 section 13.2.2), else None."""
    im = get("If-Match")
    if im is not None:
        if not _matches(im, v.etag, weak=False):
            return _own(412, "412 Precondition Failed\n", "If-Match")
    else:
        ius = get("If-Unmodified-Since")
        if ius is not None:
            t = _http_time(ius)
            if t is not None and v.mtime_s > t:
                return _own(412, "412 Precondition Failed\n", "If-Unmodified-Since")
    inm = get("If-None-Match")
    if inm is not None:
        if _matches(inm, v.etag, weak=True):
            return Reply(304, v, reason="If-None-Match")
        return None
    ims = get("If-Modified-Since")
    if ims is not None:
        t = _http_time(ims)
        if t is not None and v.mtime_s <= t:
            return Reply(304, v, reason="If-Modified-Since")
    return None


def _ranged(v: Variant, get: Any) -> Reply:
    size = v.size
    rng = get("Range")
    if rng is None:
        return Reply(200, v, 0, size)
    if_range = get("If-Range")
    if if_range is not None:
        if_range = if_range.strip()
        fresh = if_range == v.etag if if_range.startswith('"') else if_range == v.last_modified
        if not fresh:
            return Reply(200, v, 0, size, reason="If-Range differs: whole file")
    r = byte_range(rng, size)
    if r is None:
        return Reply(200, v, 0, size, reason="Range ignored (several ranges or unknown form)")
    if r is False:
        return _own(416, "416 Range Not Satisfiable\n", "Range", (("Content-Range", f"bytes */{size}"),))
    start, end = r
    return Reply(206, v, start, end - start + 1, extra=(("Content-Range", f"bytes {start}-{end}/{size}"),))


def plan(found: Found, method: str, get: Any, raw_query: str) -> Reply:
    """The answer to ``method`` for what the path led to; ``get(name)`` reads a request header."""
    if method != "GET" and method != "HEAD":
        return NOT_ALLOWED
    if type(found) is File:
        v = choose(found, get("Accept-Encoding")) if len(found.variants) > 1 else found.variants[0]
        if (
            get("If-None-Match") is None
            and get("If-Modified-Since") is None
            and get("If-Match") is None
            and get("If-Unmodified-Since") is None
        ):
            return _ranged(v, get)
        return _conditional(v, get) or _ranged(v, get)
    if type(found) is Listing:
        return Reply(
            200, None, 0, len(found.html), found.html, (("Content-Type", "text/html; charset=utf-8"),)
        )
    if type(found) is Redirect:
        location = found.location + ("?" + raw_query if raw_query else "")
        return _own(301, "301 Moved Permanently\n", "directory", (("Location", location),))
    if type(found) is Bad:
        return _own(400, error_body(400), found.why)
    assert type(found) is Missing
    return _own(404, error_body(404), found.why)
