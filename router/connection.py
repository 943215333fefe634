"""One client connection: aiohttp's request handler with a header deadline, a limit on the size of a request
head, and quiet, non-echoing errors.

aiohttp's defaults are made for applications behind a proxy, not for being the proxy:
- the first request's headers may take as long as ``keepalive_timeout`` (an hour by default); here a
  request's head must arrive within ``header_timeout`` seconds of its first byte (or of the connection);
- its parser limits each line (8190 bytes) and the number of headers (128), never the head as a whole, and
  answers 400; here the head is limited as Go limits it for Traefik (``maxHeaderBytes``: request line and
  headers together, 1 MiB by default), with Go's ``431 Request Header Fields Too Large``;
- a malformed request is answered with a page that repeats the request's bytes and logs a traceback; here
  it gets a fixed ``400 Bad Request`` and one rate-limited line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import http_exceptions, web

from router.bad_requests import BadRequestLog
from router.forwarded_view import is_websocket_upgrade
from router.proxy_protocol import peer_ip
from router.replies import CANNED, SENT_CLOSE, simple
from router.settings import DEFAULT_MAX_HEADER_BYTES

log = logging.getLogger("dockroute.server")

TOO_LARGE = "431 Request Header Fields Too Large"
# Go's answer to a head over MaxHeaderBytes, byte for byte (net/http conn.serve, errTooLarge): no length,
# the end of the body is the close.
_GO_431 = (
    b"HTTP/1.1 " + TOO_LARGE.encode() + b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\n" + TOO_LARGE.encode()
)
# Go reads a head through a reader limited to MaxHeaderBytes + 4096 ("bufio slop"): a head Go takes, so does
# dockroute.
HEAD_SLOP = 4096
# Go has no count of headers (its byte limit bounds them); each header is a few Python objects here, so
# their number is bounded too: far above what browsers and proxies send (HAProxy refuses more than 101,
# Apache more than 100), far below what 1 MiB of tiny headers would make (some 200,000).
MAX_HEADERS = 1000
# Go's rstAvoidanceDelay: after a refusal, how long the client is given to read it before the close (a
# close with its unread bytes still queued makes the kernel send a reset, which can destroy the answer).
_LINGER_REFUSED = 0.5


class _Tunnel:
    """The ``content`` of an upgrade request: bytes that follow it are tunnel data, never a head."""

    @staticmethod
    def is_eof() -> bool:
        return False


_TUNNEL = _Tunnel()


class Protocol(web.RequestHandler):
    """aiohttp's connection handler with a header deadline, a head size limit and quiet errors.

    Both are kept with the connection's own state (no parser internals, which aiohttp renames between
    releases), but for one question asked of aiohttp only past the limit: whether a parsed head waits in
    its queue (``_messages``, checked at start by :func:`router.server.aiohttp_problem`).

    ``head_since`` is when the pending request head began: the connection's opening, or the first bytes
    that arrive while no request is being handled; it is cleared when a request's head is complete
    (:meth:`Server.new_request`). ``busy`` is set from then until its handler is done, a WebSocket tunnel
    included: bytes arriving then are a body or tunnel data, never a new head.

    ``head_bytes`` counts what arrives towards a head: everything while no request is being handled, and
    while one is, what arrives once its body is complete (``content`` at its end: a pipelined request).
    Past the limit, a head still incomplete is refused with Go's 431. The count is one addition per read
    (not per header); the parser's own limits (one line, the number of headers) are set to the same size.

    One timer per connection does the deadline checking and is re-armed for what is left of a newer head,
    rather than one timer per request: on a busy keep-alive connection a request then costs no timer."""

    def __init__(self, manager: Server, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.event_loop: asyncio.AbstractEventLoop = kwargs["loop"]
        self.header_timeout = manager.header_timeout
        self.max_head = manager.max_header_bytes + HEAD_SLOP
        self.header_handle: asyncio.TimerHandle | None = None
        self.head_since: float | None = None
        self.busy = False
        self.head_bytes = 0
        self.content: Any = None  # the body stream of the request being handled
        self.refused = False  # a head was over the limit: nothing more is read or handled
        self.refuse_pending = False  # ...and its 431 waits for the answer being written
        self.held = False  # reading paused until the queued request is taken (see _head_too_large)
        # The client: set by the entry point before connection_made (accept()'s peer, or a trusted PROXY
        # header's source: router.server), looked up here only for a server used without one. Read once
        # per request (rules, X-Forwarded-For, logs, limits).
        self.client_ip: str | None = None
        self.client_port: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.client_ip is None:
            peer = transport.get_extra_info("peername")
            self.client_ip, self.client_port = peer_ip(peer), (peer[1] if peer else None)
        if self.header_timeout:
            self._head_started()

    def _head_started(self) -> None:
        self.head_since = self.event_loop.time()
        if self.header_handle is None:
            self.header_handle = self.event_loop.call_later(self.header_timeout, self._header_deadline)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return  # answered 431: what the client still sends is dropped until the close
        content = self.content
        if content is None or content.is_eof():
            self.head_bytes += len(data)
            if self.head_bytes > self.max_head and data:
                self._past_limit(data)  # rare: decides, and feeds the parser or not
                return
        super().data_received(data)
        if data and self.head_since is None and not self.busy and self.header_timeout:
            # The first bytes of the next request on a kept-alive connection (inlined: once per request).
            self.head_since = self.event_loop.time()
            if self.header_handle is None:
                self.header_handle = self.event_loop.call_later(self.header_timeout, self._header_deadline)

    def _past_limit(self, data: bytes) -> None:
        """More bytes than a head may take arrived since the last head was taken. If a parsed head waits in
        aiohttp's queue, they follow it (its body, or more requests: read on, or held while another request
        is being handled, as Go reads one request at a time). Otherwise they are the pending head's: fed to
        the parser if the head ends within the limit (the rest is its body), else refused with Go's 431."""
        if self._messages:
            if self.busy and not self.held and self.transport is not None:
                self.held = True  # taken up again by Server.new_request
                self.transport.pause_reading()
            super().data_received(data)
            return
        room = self.max_head - (self.head_bytes - len(data))  # what of ``data`` the head may still take
        # The head ends in time (and an end split across two reads, beginning "\n" or "\r\n", is let in: if
        # it was not one, the next read comes back here).
        if room > 0 and (data.find(b"\r\n\r\n", 0, room) >= 0 or data[:1] == b"\n" or data[:2] == b"\r\n"):
            super().data_received(data)
            return
        self.refused = True
        if self.busy:  # a pipelined head: refused once the answer being written is done
            self.refuse_pending = True
            if self.transport is not None:
                self.transport.pause_reading()
            return
        self.refuse_head()

    def refuse_head(self) -> None:
        """Go's 431, the end of the writing side, and the close a moment later (Go's closeWriteAndWait)."""
        self.refused = True
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        bad_requests.note(self.client_ip, "request head over maxHeaderBytes")
        transport.write(_GO_431)
        if transport.can_write_eof():
            transport.write_eof()
        self.event_loop.call_later(_LINGER_REFUSED, self._close_refused)

    def _close_refused(self) -> None:
        transport = self.transport
        self.force_close()
        if transport is not None:
            transport.close()

    def _header_deadline(self) -> None:
        self.header_handle = None
        since = self.head_since
        if since is None or self.busy:
            return  # no head pending: the next one re-arms
        left = since + self.header_timeout - self.event_loop.time()
        if left > 0:  # a later head than the one this timer was set for
            self.header_handle = self.event_loop.call_later(left, self._header_deadline)
            return
        # The transport is captured first: force_close() drops the protocol's reference to it, and the
        # connection may have closed already (the timer can fire in the same loop turn as the loss).
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        log.debug("closing connection: request headers not received in time")
        self.force_close()
        transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.header_handle is not None:
            self.header_handle.cancel()
            self.header_handle = None
        self.content = None
        super().connection_lost(exc)

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> Any:
        """The answer to a request aiohttp could not parse (or a handler that raised): fixed bytes written
        here, as every other answer of the proxy is, and the connection closed after it. aiohttp's own
        response would say ``HTTP/1.0`` and ``Server: Python/3.x aiohttp/3.y`` (the exact versions, for
        anyone probing for a known parser bug) and repeat the parser's message, which quotes the request."""
        if status >= 500:
            log.error("internal error while handling a request: %r", exc, exc_info=exc)
            data = CANNED.get((status, True)) or simple(status, f"{status}\n", True)
        else:
            reason = str(message or exc or status)
            bad_requests.note(self.client_ip, reason)
            if isinstance(exc, http_exceptions.LineTooLong) or "Too many headers" in reason:
                data = _GO_431  # a line or the count over the limit: Go's answer
            else:
                data = CANNED.get((status, True)) or simple(status, f"{status}\n", True)
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)
        return SENT_CLOSE  # not kept alive: aiohttp closes the connection once the exchange is over


bad_requests = BadRequestLog()


class Server(web.Server):
    """aiohttp's low-level server making :class:`Protocol` connections around ``handler``.

    ``protocol_kwargs`` are the connection settings (timeouts, decompression), kept here rather than read
    back from aiohttp's private copy; the parser's limits are derived from ``max_header_bytes``."""

    def __init__(
        self,
        handler: Callable[[Any], Awaitable[Any]],
        *,
        header_timeout: float,
        handler_cancellation: bool,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        **protocol_kwargs: Any,
    ) -> None:
        async def handle(request: Any) -> Any:
            try:
                if request.protocol.refused:  # its head was over the limit (router.connection.Protocol)
                    return SENT_CLOSE
                return await handler(request)
            finally:
                protocol = request.protocol
                protocol.busy = False
                protocol.content = None
                if protocol.head_bytes and protocol.header_timeout and protocol.head_since is None:
                    # Bytes of the next head came while this request was handled: its deadline starts now,
                    # where Go's ReadHeaderTimeout starts (data_received starts none while busy).
                    protocol._head_started()
                if protocol.refuse_pending:  # a head pipelined behind this request was over the limit
                    protocol.refuse_pending = False
                    protocol.refuse_head()

        super().__init__(
            handle,
            handler_cancellation=handler_cancellation,
            request_factory=self.new_request,
            **protocol_kwargs,
        )
        self.header_timeout = header_timeout
        self.max_header_bytes = max_header_bytes
        line = max_header_bytes + HEAD_SLOP  # one line may take the whole head, as in Go
        self.protocol_kwargs = {
            "max_line_size": line,
            "max_field_size": line,
            "max_headers": MAX_HEADERS,
            **protocol_kwargs,
        }

    def new_request(
        self, message: Any, payload: Any, protocol: Any, writer: Any, task: Any
    ) -> web.BaseRequest:
        """aiohttp's request for a complete head, called the moment aiohttp takes it from its queue: the
        head is done, so until the handler is over the bytes that arrive are this request's body."""
        protocol.busy = True
        protocol.head_since = None
        protocol.head_bytes = 0
        # After a WebSocket upgrade (or a CONNECT) aiohttp reads raw bytes: tunnel data, never a head. Any
        # other Upgrade is a plain request (llhttp flags every one), and what follows it is a head to count.
        if message.upgrade and (is_websocket_upgrade(message.headers, True) or message.method == "CONNECT"):
            protocol.content = _TUNNEL
        else:
            protocol.content = payload
        if protocol.held:
            protocol.held = False
            transport = protocol.transport
            # aiohttp's own holds (its queue of parsed requests, a full body buffer) keep theirs
            paused = getattr(protocol, "_buffer_paused", False) or getattr(protocol, "_reading_paused", False)
            if transport is not None and not paused:
                transport.resume_reading()
        return web.BaseRequest(message, payload, protocol, writer, task, protocol.event_loop)

    def __call__(self) -> web.RequestHandler:
        return Protocol(self, loop=asyncio.get_running_loop(), **self.protocol_kwargs)
