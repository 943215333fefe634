"""Entry points: aiohttp's low-level server, hardened for the open internet, and graceful shutdown.

aiohttp's defaults are made for applications behind a proxy, not for being the proxy:
- the first request's headers may take as long as ``keepalive_timeout`` (an hour by default); here a
  request's head must arrive within ``header_timeout`` seconds of its first byte (or of the connection);
- a malformed request is answered with a page that repeats the request's bytes and logs a traceback; here
  it gets a fixed ``400 Bad Request`` and one debug line;
- bodies are decompressed on the way in; here they pass untouched (``auto_decompress=False``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from router.proxy import EntryPointHandler

log = logging.getLogger("dockroute.server")

_BAD_REQUEST = "400 Bad Request\n"


class _Protocol(RequestHandler):
    """aiohttp's connection handler with a header deadline and quiet, non-echoing errors."""

    _header_handle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        manager = self._manager
        if manager is None:
            return
        timeout = manager.header_timeout  # type: ignore[attr-defined]
        if timeout:
            self._header_handle = self._loop.call_later(timeout, self._header_deadline)

    def _header_deadline(self) -> None:
        self._header_handle = None
        if not self._request_in_progress and not self._messages and self.transport is not None:
            log.debug("closing connection: request headers not received in time")
            self.force_close()
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        before = self._request_count
        super().data_received(data)
        handle = self._header_handle
        if self._request_count != before:
            if handle is not None:
                handle.cancel()
                self._header_handle = None
        elif (
            handle is None
            and not self._request_in_progress
            and not self._upgraded
            and self._payload_parser is None
            and data
        ):
            self._arm_header_deadline()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._header_handle is not None:
            self._header_handle.cancel()
            self._header_handle = None
        super().connection_lost(exc)

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            log.error("internal error while handling a request: %r", exc, exc_info=exc)
            text = "500 Internal Server Error\n" if status == 500 else f"{status}\n"
        else:
            log.debug("bad request from %s: %s", request.remote, message or exc)
            text = _BAD_REQUEST if status == 400 else f"{status}\n"
        resp = web.Response(status=status, text=text)
        resp.force_close()
        return resp


class _Server(web.Server):
    header_timeout: float = 10.0

    def __call__(self) -> RequestHandler:
        return _Protocol(self, loop=self._loop, **self._kwargs)


def parse_address(address: str) -> tuple[str | None, int]:
    """``":80"`` → (None, 80) (all interfaces), ``"127.0.0.1:8080"``, ``"[::1]:80"``."""
    host, _, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return (host or None), int(port)


class EntryPointServer:
    """One listening entry point: its socket(s), its aiohttp server and its request handler."""

    def __init__(self, handler: EntryPointHandler) -> None:
        self.handler = handler
        ep = handler.entry_point
        self.name = ep.name
        self.web_server = _Server(
            handler,
            keepalive_timeout=ep.idle_timeout or 3600.0,
            access_log=None,
            auto_decompress=False,
            handler_cancellation=True,  # a client gone mid-request abandons its backend request too
            lingering_time=2.0,
        )
        # Traefik's readTimeout bounds the whole request read, headers included: a shorter one wins.
        self.web_server.header_timeout = (
            min(t for t in (ep.header_timeout, ep.read_timeout) if t)
            if (ep.header_timeout or ep.read_timeout)
            else 0.0
        )
        self._server: asyncio.base_events.Server | None = None
        self.addresses: list[tuple[str, int]] = []

    async def start(self) -> None:
        host, port = parse_address(self.handler.entry_point.address)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self.web_server, host, port, reuse_address=True, backlog=2048)
        self.addresses = []
        for sock in self._server.sockets:
            name = sock.getsockname()
            self.addresses.append((name[0], name[1]))
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.addresses:
            self.handler.set_port(self.addresses[0][1])

    @property
    def port(self) -> int:
        return self.addresses[0][1] if self.addresses else 0

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    async def shutdown(self, grace: float) -> None:
        """Stop accepting, let in-flight requests finish for up to ``grace`` seconds, close the rest."""
        self.stop_accepting()
        try:
            # aiohttp waits `grace` for handlers and then as long again before cancelling them: bound the
            # whole thing, so a container runtime's own 10 s stop never has to SIGKILL us.
            async with asyncio.timeout(grace):
                await self.web_server.shutdown(grace)
        except TimeoutError:
            for proto in list(self.web_server.connections):
                proto.force_close()
                if proto.transport is not None:
                    proto.transport.abort()  # connection_lost cancels the handler (handler_cancellation)
        if self._server is not None:
            try:
                async with asyncio.timeout(1.0):
                    await self._server.wait_closed()
            except TimeoutError:
                pass
