"""The TCP relay: two asyncio transports joined, bytes copied as they come, backpressure both ways.

Each side is a plain :class:`asyncio.Protocol`: what one side receives is written to the other at once
(uvloop tries the ``send`` right away; nothing is copied in Python beyond the bytes object the loop hands
over). When a side's write buffer passes its high-water mark the loop calls ``pause_writing`` on it, and
the *other* side stops reading (``pause_reading``) until the buffer drains: a slow reader on either end
holds the fast writer on the other at the kernel's socket buffers, never in our memory.

Half-close as Traefik's ``tcp.Proxy``: a FIN from one end is passed on (``write_eof``) and the other
direction keeps flowing; from then on the other end has ``terminationDelay`` to finish (Traefik sets that
read deadline after one copy ends), after which both sockets are closed. A negative delay waits forever.
A TLS side cannot be half-closed (asyncio's TLS transports have no ``write_eof``): it is told the end when
the delay closes both, its buffered bytes sent first.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl

from router.tcp import splice

log = logging.getLogger("dockroute.tcp")

HIGH_WATER = 256 * 1024  # bytes buffered for a side before the other one stops reading
LOW_WATER = 64 * 1024


class BackendHandshakeError(OSError):
    """The TLS handshake with the server failed: part of the dial, as in Traefik (logged as an error)."""


class Side(asyncio.Protocol):
    """One end of a :class:`Relay`."""

    __slots__ = ("relay", "transport", "peer", "eof", "pending", "tls")

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.transport: asyncio.Transport | None = None
        self.peer: Side | None = None
        self.eof = False
        self.pending: list[bytes] = []  # what arrived before the other end was connected
        self.tls = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] # uvloop's are not asyncio.Transport subclasses
        self.tls = transport.get_extra_info("sslcontext") is not None
        transport.set_write_buffer_limits(HIGH_WATER, LOW_WATER)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
            return
        self.pending.append(data)  # the other end is being connected: hold this side meanwhile
        if self.transport is not None:
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.relay.end_of_input(self)
        return not self.tls  # keep a plain side open: the other direction may still flow (TLS cannot)

    def pause_writing(self) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.eof:
            peer.transport.pause_reading()

    def resume_writing(self) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.eof:
            peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.lost(self)


class Relay:
    """A client connection joined to a backend one; ``done`` is set once both are closed."""

    __slots__ = ("client", "backend", "termination_delay", "_timer", "done", "_closed")

    def __init__(self, termination_delay: float) -> None:
        self.client = Side(self)
        self.backend = Side(self)
        self.client.peer, self.backend.peer = self.backend, self.client
        self.termination_delay = termination_delay
        self._timer: asyncio.TimerHandle | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed = 0

    def start(self) -> None:
        """Both ends are connected: what either sent meanwhile is passed on, and reading starts. A side
        that went while the other was being connected (closed, reset, its terminationDelay over: the relay
        may already be done) takes the other with it, which nothing else would close; a side whose FIN came
        meanwhile has it passed on now."""
        sides = (self.client, self.backend)
        if self.done.done() or any(s.transport is None or s.transport.is_closing() for s in sides):
            self.close()
            return
        for side in sides:
            assert side.transport is not None and side.peer is not None and side.peer.transport is not None
            if side.pending:
                side.peer.transport.write(b"".join(side.pending))
                side.pending.clear()
        for side in sides:
            if side.eof:
                self.end_of_input(side)
            elif side.transport is not None:
                side.transport.resume_reading()

    def end_of_input(self, side: Side) -> None:
        """``side``'s end sent FIN: pass it on, and give the other end ``terminationDelay``."""
        side.eof = True
        peer = side.peer
        assert peer is not None
        if side.pending:  # the other end is not connected yet: nothing to half-close
            return
        if peer.transport is not None and peer.transport.can_write_eof():
            peer.transport.write_eof()
        # A TLS side cannot half-close here: it learns the end when terminationDelay closes both.
        if peer.eof:
            self.close()
        elif self._timer is None and self.termination_delay >= 0:
            self._timer = asyncio.get_running_loop().call_later(self.termination_delay, self.close)

    def lost(self, side: Side) -> None:
        self._closed += 1
        peer = side.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            peer.transport.close()
        if self._closed >= 2 or peer is None or peer.transport is None:
            self._finish()

    def close(self) -> None:
        for side in (self.client, self.backend):
            if side.transport is not None and not side.transport.is_closing():
                side.transport.close()
        if self.backend.transport is None or self.client.transport is None:
            self._finish()

    def abort(self) -> None:
        for side in (self.client, self.backend):
            if side.transport is not None:
                side.transport.abort()
        self._finish()

    def _finish(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.done.done():
            self.done.set_result(None)


def set_keepalive(sock: socket.socket, seconds: float) -> None:
    """Go's ``net.Dialer.KeepAlive``: probes after ``seconds`` idle, then every ``seconds``; < 0 off."""
    if seconds < 0:
        return
    seconds = seconds or 15.0
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name in ("TCP_KEEPIDLE", "TCP_KEEPINTVL"):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, max(1, int(seconds)))


async def dial(
    host: str,
    port: int,
    timeout: float,
    keep_alive: float,
    header: bytes = b"",
) -> socket.socket:
    """A connected non-blocking socket to ``host:port`` within ``timeout`` seconds (0: none), with
    ``header`` (a PROXY protocol header) already sent. Raises OSError or TimeoutError."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout or None):
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        last: Exception = OSError(f"{host}: no address")
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, address)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                set_keepalive(sock, keep_alive)
                if header:
                    await loop.sock_sendall(sock, header)
                return sock
            except OSError as exc:
                sock.close()
                last = exc
            except BaseException:
                sock.close()
                raise
        raise last


async def join(
    conn: socket.socket,
    backend: socket.socket,
    termination_delay: float,
    client_tls: ssl.SSLContext | None = None,
    backend_tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    handshake_timeout: float | None = None,
) -> Relay:
    """Relay ``conn`` (accepted; bytes peeked at are still in it) and ``backend`` (connected). With
    ``backend_tls`` the backend side is wrapped first; with ``client_tls`` the client's TLS is terminated.
    Without TLS on either side the bytes are moved by the kernel (:mod:`router.tcp.splice`). The sockets
    are owned by the relay once this returns; on failure both are closed here."""
    loop = asyncio.get_running_loop()
    if client_tls is None and backend_tls is None and splice.SUPPORTED:
        try:
            spliced = splice.SpliceRelay(conn, backend, termination_delay)
        except OSError:
            conn.close()
            backend.close()
            raise
        spliced.start()
        return spliced  # type: ignore[return-value] # the same surface: done, close(), abort()
    relay = Relay(termination_delay)
    try:
        try:
            await loop.create_connection(
                lambda: relay.backend,
                sock=backend,
                ssl=backend_tls,
                server_hostname=server_hostname if backend_tls is not None else None,
                ssl_handshake_timeout=handshake_timeout if backend_tls is not None else None,
            )
        except OSError as exc:  # ssl.SSLError and TimeoutError too
            raise BackendHandshakeError(f"TLS handshake failed: {exc}") from exc
        backend = None  # type: ignore[assignment]
        assert relay.backend.transport is not None
        relay.backend.transport.pause_reading()
        await loop.connect_accepted_socket(
            lambda: relay.client,
            conn,
            ssl=client_tls,
            ssl_handshake_timeout=handshake_timeout if client_tls is not None else None,
        )
        conn = None  # type: ignore[assignment]
    except BaseException:
        relay.abort()
        for sock in (conn, backend):
            if sock is not None:
                sock.close()
        raise
    relay.start()
    return relay
