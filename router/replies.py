"""The answers the proxy writes itself, and how it tells aiohttp an exchange is over.

The request path never builds aiohttp response objects: it writes bytes to the client transport and
returns a tiny stand-in (:class:`Sent`) whose only job is to say whether the connection stays open. Error
answers are fixed strings, prepared once: they never echo request bytes.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


class Sent:
    """Tells aiohttp the response was already written to the transport by the proxy itself."""

    __slots__ = ("keep_alive",)

    def __init__(self, keep_alive: bool) -> None:
        self.keep_alive = keep_alive

    async def prepare(self, request: Any) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


SENT_KEEP = Sent(True)
SENT_CLOSE = Sent(False)


def simple(status: int, body: str, close: bool, extra: bytes = b"") -> bytes:
    """A whole plain-text response: head (with ``extra`` header lines) and body."""
    data = body.encode()
    phrase = HTTPStatus(status).phrase
    return (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\n".encode()
        + extra
        + (b"Connection: close\r\n" if close else b"")
        + b"\r\n"
        + data
    )


_BODIES = {
    400: "400 Bad Request\n",
    404: "404 page not found\n",
    408: "408 Request Timeout\n",
    500: "500 Internal Server Error\n",
    501: "501 Not Implemented\n",
    502: "502 Bad Gateway\n",
    503: "503 Service Unavailable\n",
    504: "504 Gateway Timeout\n",
}


def error_body(status: int) -> str:
    """The text of the proxy's own error page for ``status`` (the same words as :data:`CANNED`)."""
    return _BODIES.get(status) or f"{status} {HTTPStatus(status).phrase}\n"


# (status, close) → the bytes, built once: an error answer costs one dict lookup and one write.
CANNED: dict[tuple[int, bool], bytes] = {
    (status, close): simple(status, body, close)
    for status, body in _BODIES.items()
    for close in (False, True)
}
