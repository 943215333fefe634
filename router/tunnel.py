"""After a 101 Switching Protocols (WebSocket): raw bytes both ways until either side closes.

The backend's bytes go to the client transport from the upstream connection itself (``conn.tunnel``);
the client's bytes reach the backend through :class:`TunnelFeeder`, which aiohttp's connection handler
feeds in place of an HTTP payload parser. A client that reads slower than the backend sends pauses the
backend's reading until its buffer drains.

A tunnel is opened only for a 101 that completes the WebSocket handshake the client asked for: ``Upgrade:
websocket`` and the ``Sec-WebSocket-Accept`` that answers the client's one ``Sec-WebSocket-Key`` (RFC 6455
4.2.2). Anything else is a 502 and a closed connection: a backend that can be made to say "101" (an SSRF
to a status code, a health check echoing one) would otherwise open a raw tunnel through which the client
reaches the backend's other paths unseen by the proxy ("WebSocket smuggling").
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import TYPE_CHECKING, Any

from router.framing import WRITE_HIGH
from router.replies import SENT_CLOSE, Sent
from router.rules import RequestInfo
from router.upstream import Connection

if TYPE_CHECKING:
    from router.proxy import EntryPointHandler
    from router.targets import ServiceTarget


_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3


def handshake_error(request_headers: Any, response: list[tuple[bytes, bytes]]) -> str | None:
    """Why a backend's 101 does not complete the client's WebSocket handshake, or None when it does:
    one ``Sec-WebSocket-Key`` in the request, ``Upgrade: websocket`` and exactly the ``Sec-WebSocket-Accept``
    that key asks for in the answer (RFC 6455 4.1 and 4.2.2; Go's proxy checks the Upgrade alone)."""
    keys = request_headers.getall("Sec-WebSocket-Key", ())
    if len(keys) != 1:
        return f"101 to an upgrade with {len(keys)} Sec-WebSocket-Key headers"
    upgrade: bytes | None = None
    accepts: list[bytes] = []
    for name, value in response:
        lname = name.lower()
        if lname == b"upgrade":
            upgrade = value
        elif lname == b"sec-websocket-accept":
            accepts.append(value.strip())
    if upgrade is None or upgrade.strip().lower() != b"websocket":
        return "101 switching to another protocol than the websocket asked for"
    key = keys[0].strip().encode("utf-8", "surrogateescape")
    if accepts != [base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())]:
        return "101 without the Sec-WebSocket-Accept the client's key asks for (RFC 6455 4.2.2)"
    return None


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
    """Relay the 101 and then the raw bytes, both ways, until either side closes; a 101 that is not the
    handshake the client asked for is answered 502 instead (see the module docstring)."""
    why = handshake_error(request.headers, conn.headers)
    if why is not None:
        conn.close()
        return ep.reply(request, transport, 502, True, info, f"{up.url}: {why}", target, up)
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
