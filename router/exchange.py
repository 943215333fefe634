"""One request going through a router's middlewares: what they may read and change, and where the answer
goes.

A route without middlewares never builds one of these: its target writes bytes to the client transport
itself (:mod:`router.forward`), and the feature costs it nothing. A route with middlewares builds one
:class:`Exchange` per request and hands it down the chain composed when the configuration was compiled
(:mod:`router.middlewares`). Each middleware may

- answer itself (a redirect, a 401, a 429, a cached page): :func:`answer`, through ``ex.sink``;
- change the request before passing it on: ``ex.path``/``ex.raw_query`` (what the backend is asked for;
  the path escaped as on the request line),
  ``ex.method``, request headers (:meth:`Exchange.set_header`, :meth:`Exchange.remove_header`, read back
  with :meth:`Exchange.header`), the body (``ex.body``, bytes, once buffered);
- see and change the response: wrap ``ex.sink`` with a :class:`PassSink` before calling the next handler.
  The producer of the answer (the proxy, a static file, another middleware) writes the status and headers
  (``start``), then the body (``write``), then ``end``: through every wrapper, innermost first, as Go's
  ``ResponseWriter`` wrappers do in Traefik. A wrapper may change the head, transform the body as it
  streams (compression), hold it back (buffering, error pages) or copy it (cache).

The last sink (:class:`TransportSink`) frames the answer for the client: ``Content-Length`` when the head
has one, chunked otherwise (closing for an HTTP/1.0 client), no body for HEAD, 1xx, 204 and 304.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict

from router.body_pace import paced
from router.rules import RequestInfo

if TYPE_CHECKING:
    from router.proxy import EntryPointHandler

__all__ = [
    "EditSink",
    "Exchange",
    "Handler",
    "Headers",
    "PassSink",
    "Sink",
    "TransportSink",
    "answer",
    "raw_edits",
]

Headers = CIMultiDict  # response headers: case-insensitive, several values per name, order kept
Handler = Callable[["Exchange"], Awaitable[None]]

WRITE_HIGH = 1 << 20  # client write buffer above which a producer waits (the client's pace)
_BODYLESS = frozenset({204, 304})
_FRAMING = frozenset({"transfer-encoding", "connection", "keep-alive"})  # the last sink's to write


class Sink:
    """Where an answer is written. Subclasses: :class:`TransportSink` (the client), :class:`PassSink`
    (a middleware's wrapper)."""

    started: bool = False

    async def start(self, status: int, headers: Headers, reason: str = "") -> None:
        raise NotImplementedError

    async def write(self, data: bytes) -> None:
        raise NotImplementedError

    async def end(self) -> None:
        raise NotImplementedError


class PassSink(Sink):
    """A wrapper that passes everything to ``downstream``: subclass it and override what you change."""

    def __init__(self, downstream: Sink) -> None:
        self.downstream = downstream
        self.started = False

    async def start(self, status: int, headers: Headers, reason: str = "") -> None:
        self.started = True
        await self.downstream.start(status, headers, reason)

    async def write(self, data: bytes) -> None:
        await self.downstream.write(data)

    async def end(self) -> None:
        await self.downstream.end()


class EditSink(PassSink):
    """A wrapper that only sets (a value) or removes (None) headers of the answer, the same whatever the
    answer is (``headers``' custom and security headers). Because it reads nothing of the answer, a
    backend's answer that meets only such wrappers is relayed as raw bytes with the edits applied
    (:func:`raw_edits`): no header objects are built for it."""

    def __init__(self, downstream: Sink, edits: tuple[tuple[str, str | None], ...]) -> None:
        super().__init__(downstream)
        self.edits = edits

    async def start(self, status: int, headers: Headers, reason: str = "") -> None:
        if status >= 200:
            for name, value in self.edits:
                if value is None:
                    headers.popall(name, None)
                else:
                    headers[name] = value
        await super().start(status, headers, reason)


def raw_edits(ex: Exchange) -> list[tuple[tuple[str, str | None], ...]] | None:
    """The header edits between ``ex.sink`` and the client, innermost first, when only
    :class:`EditSink` wrappers lie there (an empty list: none at all); None when another wrapper wants
    to see the answer."""
    out: list[tuple[tuple[str, str | None], ...]] = []
    sink = ex.sink
    client = ex.client_sink
    while sink is not client:
        if type(sink) is not EditSink:
            return None
        out.append(sink.edits)  # type: ignore[attr-defined]  # ex.sink is the innermost wrapper
        sink = sink.downstream  # type: ignore[attr-defined]
    return out


class Exchange:
    """One request in a middleware chain (see the module docstring for what a middleware may do)."""

    __slots__ = (
        "ep",
        "request",
        "transport",
        "msg",
        "info",
        "host_header",
        "close",
        "router",
        "method",
        "path",
        "raw_query",
        "body",
        "sink",
        "client_sink",
        "header_edits",
        "upstream",
        "failed",
        "quiet_failures",
        "reason",
        "values",
    )

    def __init__(
        self,
        ep: EntryPointHandler,
        request: Any,
        transport: Any,
        msg: Any,
        info: RequestInfo,
        host_header: str,
        close: bool,
        router: str,
    ) -> None:
        self.ep = ep
        self.request = request
        self.transport = transport
        self.msg = msg
        self.info = info  # as the client sent it (normalised); middlewares change ``path`` etc. instead
        self.host_header = host_header
        self.close = close  # the client connection closes after this answer
        self.router = router
        self.method: str = info.method
        # the path the service is asked for, as it goes on the request line: normalised (unreserved
        # escapes decoded, dot segments removed) but still escaped (``%2F`` stays), as Go's EscapedPath
        self.path: str = info.path
        self.raw_query: str = info.raw_query
        self.body: bytes | None = None  # the whole request body once a middleware buffered it
        self.client_sink = TransportSink(self)
        self.sink: Sink = self.client_sink
        # lower-case name → (name as written, value; None removes the header): applied to the request
        # the service gets, over the client's own headers.
        self.header_edits: dict[str, tuple[str, str | None]] = {}
        self.upstream: Any = None  # the server that answered, for the access log
        # Set by the proxy when the service could not be reached before any answer was started (the
        # text says why); with ``quiet_failures`` it writes no error page, so that ``retry`` can try
        # again.
        self.failed: str | None = None
        self.quiet_failures = False
        self.reason: str | None = None  # why the answer is what it is, for the access log
        self.values: dict[str, Any] = {}  # per-request data one middleware leaves for another

    # -- request ---------------------------------------------------------------------------------------

    @property
    def headers(self) -> Any:
        """The client's request headers, read-only (edits are in ``header_edits``; see :meth:`header`)."""
        return self.msg.headers

    @property
    def client_ip(self) -> str:
        return self.info.client_ip

    @property
    def scheme(self) -> str:
        return self.ep.scheme

    @property
    def host(self) -> str:
        """The request's host, lower-case, without port (what rules match)."""
        return self.info.host

    def header(self, name: str, default: str | None = None) -> str | None:
        """A request header's value as the service will get it: edits first, then the client's."""
        edit = self.header_edits.get(name.lower())
        if edit is not None:
            return edit[1] if edit[1] is not None else default
        return self.msg.headers.get(name, default)

    def set_header(self, name: str, value: str) -> None:
        """Replace (or add) a request header for the service."""
        self.header_edits[name.lower()] = (name, value)

    def remove_header(self, name: str) -> None:
        """Drop a request header from what the service gets."""
        self.header_edits[name.lower()] = (name, None)

    @property
    def target(self) -> str:
        """``path?query`` as the service will be asked (for redirects and sub-requests)."""
        return f"{self.path}?{self.raw_query}" if self.raw_query else self.path

    async def read_body(self, limit: int | None = None) -> bytes | None:
        """The whole request body (kept in ``body`` for the service), or None when it is longer than
        ``limit`` bytes (the connection then cannot carry another request: ``close`` is set)."""
        if self.body is not None:
            return self.body
        if await self._read_within(limit) is not None:
            self.close = True
            return None
        return self.body

    async def read_body_upto(self, limit: int) -> bool:
        """Buffer the request body in ``body`` if it ends within ``limit`` bytes (True); else put what was
        read back in front of the rest of the client's body, which then streams on to the service (False,
        ``body`` stays None). Memory holds at most ``limit`` bytes and one read, whatever the body's length:
        for a body of unknown length (chunked) that must be buffered only when it is small (``buffering``
        without a maximum, ``mirroring``'s ``maxBodySize``). Read within readTimeout and at
        :mod:`router.body_pace`'s minimum pace."""
        if self.body is not None:
            return len(self.body) <= limit
        parts = await self._read_within(limit)
        if parts is None:
            return True
        self.request = _Request(self.request, _Replay(self.request.content, parts))
        return False

    async def _read_within(self, limit: int | None) -> list[bytes] | None:
        """The one read loop of :meth:`read_body` and :meth:`read_body_upto`: the body into ``body`` if it
        ends within ``limit`` bytes (None: no limit) and None returned; else ``body`` stays None and what was
        read (the limit passed, by one read at most) is returned for the caller to drop or put back. Sends
        ``100 Continue`` first; reads within readTimeout and at :mod:`router.body_pace`'s minimum pace."""
        parts: list[bytes] = []
        size = 0
        content = self.request.content
        self._continue(content)
        with paced(self.ep.read_timeout, content) as pace:
            while True:
                data = await content.readany()
                if not data:
                    self.body = b"".join(parts)
                    return None
                parts.append(data)
                size += len(data)
                pace.received = size
                if limit is not None and size > limit:
                    return parts

    def _continue(self, content: Any) -> None:
        """Send ``100 Continue`` to a client that waits for it before sending its body (Go's server sends
        it on the first read of the body too)."""
        if (
            not content.is_eof()
            and self.msg.version[1] == 1
            and self.msg.headers.get("Expect", "").lower() == "100-continue"
            and not self.transport.is_closing()
        ):
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def release(self) -> None:
        """Drop what makes reference cycles (the sinks hold the exchange) once the request is over: the
        process tunes the cyclic garbage collector down for speed, so an exchange must be freed by
        reference counting, with the request it holds, as soon as its answer is written."""
        self.sink = self.client_sink = None  # type: ignore[assignment]
        self.values = {}

    @property
    def started(self) -> bool:
        """Whether an answer has reached the client (a head was written): too late to answer otherwise."""
        return self.client_sink.started


class _Replay:
    """``request.content`` giving back the bytes already read, then the rest of the client's body."""

    def __init__(self, content: Any, parts: list[bytes]) -> None:
        self._content = content
        self._parts = parts

    async def readany(self) -> bytes:
        if self._parts:
            return self._parts.pop(0)
        return await self._content.readany()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._content, name)


class _Request:
    """The client's request with its body stream replaced by a :class:`_Replay`."""

    def __init__(self, request: Any, content: _Replay) -> None:
        self._request = request
        self.content = content

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


class TransportSink(Sink):
    """The end of every chain: frames the answer and writes it to the client, then logs it."""

    def __init__(self, ex: Exchange) -> None:
        self.ex = ex
        self.status = 0
        self.sent = 0
        self.chunked = False
        self.bodyless = False
        self.started = False
        self.ended = False
        # The head waits for the body's first bytes, so that a whole answer leaves in one write (one
        # system call, as the path without middlewares); if nothing follows within this turn of the
        # event loop (a stream whose body is slow to come), it is sent on its own at the next turn.
        self.head = b""

    async def start(self, status: int, headers: Headers, reason: str = "") -> None:
        ex = self.ex
        if self.started:
            raise RuntimeError("an answer was started twice")
        self.started = True
        self.status = status
        self.bodyless = ex.info.method == "HEAD" or status in _BODYLESS or status < 200
        http10 = ex.msg.version[1] == 0
        if ex.request is not None and not ex.request.content.is_eof():
            # Answered before the request body arrived whole (a 401 to a request waiting for
            # 100 Continue, say): what follows on this connection cannot be told from that body.
            ex.close = True
        phrase = reason or _phrase(status)
        lines = [f"HTTP/1.1 {status} {phrase}\r\n"]
        has_length = "Content-Length" in headers
        for name, value in headers.items():
            if name.lower() in _FRAMING:
                continue
            if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
                # never split a response: a middleware's header (a realm, a URL from the configuration)
                # holding a line break fails the answer (a 500 from the chain) rather than go out
                raise ValueError(f"response header {name!r} holds a line break")
            lines.append(f"{name}: {value}\r\n")
        if not has_length and not self.bodyless:
            if http10:
                ex.close = True
            else:
                self.chunked = True
                lines.append("Transfer-Encoding: chunked\r\n")
        if ex.close:
            lines.append("Connection: close\r\n")
        elif http10:
            lines.append("Connection: keep-alive\r\n")
        lines.append("\r\n")
        self.head = "".join(lines).encode("latin-1", "replace")
        asyncio.get_running_loop().call_soon(self._flush_head)

    def _flush_head(self) -> None:
        if self.head and not self.ex.transport.is_closing():
            self.ex.transport.write(self.head)
        self.head = b""

    async def write(self, data: bytes) -> None:
        if not data or self.bodyless:
            return
        self.sent += len(data)  # the body's bytes only, as Traefik's access log and metrics count
        if self.chunked:
            data = b"%x\r\n" % len(data) + data + b"\r\n"
        await self._put(data)

    async def end(self) -> None:
        if self.ended:
            return
        self.ended = True
        if self.chunked:
            await self._put(b"0\r\n\r\n")
        elif self.head:
            await self._put(b"")
        ex = self.ex
        if ex.ep.observe:
            ex.ep.log(ex.request, ex.info, self.status, self.sent, ex.router, ex.upstream, ex.reason)

    async def _put(self, data: bytes) -> None:
        transport = self.ex.transport
        if transport.is_closing():
            raise ConnectionResetError("client went away")
        if self.head:
            data = self.head + data
            self.head = b""
        transport.write(data)
        if transport.get_write_buffer_size() > WRITE_HIGH:
            async with asyncio.timeout(self.ex.ep.write_timeout):
                await self.ex.request.writer.drain()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


async def answer(
    ex: Exchange,
    status: int,
    body: bytes | str = b"",
    headers: Iterable[tuple[str, str]] | Headers = (),
    content_type: str | None = "text/plain; charset=utf-8",
    reason: str | None = None,
) -> None:
    """Answer the request whole through ``ex.sink`` (so the middlewares before this one still see it).
    ``reason`` goes to the access log."""
    data = body.encode() if isinstance(body, str) else body
    head = Headers(headers)
    if content_type and data and "Content-Type" not in head:
        head["Content-Type"] = content_type
    head["Content-Length"] = str(len(data))
    if reason is not None:
        ex.reason = reason
    await ex.sink.start(status, head)
    await ex.sink.write(data)
    await ex.sink.end()
