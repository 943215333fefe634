"""After a 101 Switching Protocols (WebSocket): raw bytes both ways until either side closes.

The backend's bytes go to the client transport from the upstream connection itself (``conn.tunnel``);
the client's bytes reach the backend through :class:`TunnelFeeder`, which aiohttp's connection handler
feeds in place of an HTTP payload parser. A client that reads slower than the backend sends pauses the
backend's reading until its buffer drains.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from router.framing import WRITE_HIGH
from router.replies import SENT_CLOSE, Sent
from router.rules import RequestInfo
from router.upstream import Connection

if TYPE_CHECKING:
    from router.proxy import EntryPointHandler
    from router.targets import ServiceTarget


class TunnelFeeder:
    """Installed as aiohttp's payload parser after a 101: client bytes go straight to the backend."""

    __slots__ = ("conn", "done")

    def __init__(self, conn: Connection, done: asyncio.Future[None]) -> None:
        self.conn = conn
        self.done = done

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.conn.write(data)
        return False, b""

    def feed_eof(self) -> None:
        self.conn.close()
        if not self.done.done():
            self.done.set_result(None)


async def tunnel(
    ep: EntryPointHandler,
    request: Any,
    transport: Any,
    conn: Connection,
    info: RequestInfo,
    target: ServiceTarget,
    up: Any,
) -> Sent:
    """Relay the 101 and then the raw bytes, both ways, until either side closes."""
    out = [b"HTTP/1.1 101 %s\r\n" % (conn.reason or b"Switching Protocols")]
    for name, value in conn.headers:
        out.append(name + b": " + value + b"\r\n")
    out.append(b"\r\n")
    if transport.is_closing():
        conn.close()
        if ep.observe:
            ep.log(request, info, 499, 0, target.router, up, "client went away before the 101")
        return SENT_CLOSE
    transport.write(b"".join(out))
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    if conn.upgrade_tail:
        transport.write(conn.upgrade_tail)
        conn.upgrade_tail = b""
    paused = asyncio.Event()
    if conn.transport is not None and not conn.closed:
        conn.transport.resume_reading()  # in case the tail filled up before the tunnel existed
    if conn.closed:
        transport.close()
        done.set_result(None)
    else:
        conn.tunnel = transport
        conn.on_tunnel_pause = paused.set
        request.protocol.set_parser(TunnelFeeder(conn, done))
    try:
        await _relay(request, transport, conn, done, paused)
    finally:
        conn.close()
        # Here, not after: when the client leaves, aiohttp cancels the handler in ``_relay`` (its
        # handler_cancellation), and the session is logged and counted all the same.
        if ep.observe:
            ep.log(request, info, 101, 0, target.router, up, None)
    return SENT_CLOSE


async def _relay(
    request: Any, transport: Any, conn: Connection, done: asyncio.Future[None], paused: asyncio.Event
) -> None:
    """Wait for the end of the tunnel, resuming the backend each time the client's buffer has drained."""
    loop = asyncio.get_running_loop()
    while not done.done():
        waiter = loop.create_task(paused.wait())
        await asyncio.wait((done, waiter), return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if paused.is_set() and not done.done():
            # The client reads slower than the backend sends: resume once its buffer drained.
            paused.clear()
            while not done.done() and transport.get_write_buffer_size() > WRITE_HIGH // 4:
                await request.writer.drain()
                if transport.get_write_buffer_size() > WRITE_HIGH // 4:
                    await asyncio.sleep(0.005)  # aiohttp's protocol may not report the pause
            if conn.transport is not None and not conn.closed:
                conn.transport.resume_reading()
