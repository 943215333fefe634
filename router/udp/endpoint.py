"""A UDP entry point: one datagram socket, sessions per client address, each relayed to one backend.

This is Traefik's UDP model (``pkg/udp``): the first datagram from a client address starts a session;
the entry point's router picks a server for it once (:class:`~router.udp.table.UDPTable`), and the
session gets its own connected UDP socket to that server, so the backend sees one source port per
client and its replies come back on that socket only. Replies go to the client from the entry point's
socket. A session idle for ``udp.timeout`` (no datagram either way: Traefik counts the client's reads
and the writes back to it) is forgotten, and its socket closed.

Everything runs on the event loop without blocking: the sockets are non-blocking, a backend socket is
read with ``add_reader`` in bounded batches, and a datagram that cannot be sent at once (a full socket
buffer) is dropped, as the network would drop it, instead of being queued: memory stays bounded, and so
does the number of sessions (:data:`MAX_SESSIONS`, logged once when reached). A backend that refuses
(ICMP port unreachable) ends its session with one warning per server; the client's next datagram starts
a new session on the next server.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from typing import Any

from router.server import parse_address
from router.settings import EntryPoint
from router.udp.table import Target, UDPTable

__all__ = ["MAX_SESSIONS", "UDPEntryPoint"]

log = logging.getLogger("dockroute.udp")

MAX_SESSIONS = 10_000  # per entry point: each holds a socket (a file descriptor)
MAX_DATAGRAM = 65535  # Traefik's maxDatagramSize
READ_BATCH = 64  # datagrams read per wake-up from one socket: others get their turn
MAX_SEND_BUFFER = 1 << 20  # bytes queued on the entry point's socket before replies are dropped
MAX_PENDING = 16  # datagrams held while a backend's host name is resolved
RECEIVE_BUFFER = 4 << 20  # bytes asked for the entry point socket's receive buffer


class _Session:
    """One client's session: its backend socket, and when it last saw a datagram either way."""

    __slots__ = ("ep", "client", "target", "sock", "last", "timer", "pending", "closed")

    def __init__(self, ep: UDPEntryPoint, client: Any, target: Target) -> None:
        self.ep = ep
        self.client = client
        self.target = target
        self.sock: socket.socket | None = None
        self.pending: list[bytes] = []
        self.closed = False
        self.last = ep.loop.time()
        self.timer = ep.loop.call_at(self.last + ep.timeout, self._check_idle)

    def open(self, family: int, address: tuple[Any, ...]) -> None:
        """The backend socket, connected to ``address`` (connecting a UDP socket sends nothing)."""
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.ep.loop.add_reader(sock.fileno(), self._readable)
        pending, self.pending = self.pending, []
        for data in pending:
            self.send(data)

    def send(self, data: bytes) -> None:
        """A client's datagram to the backend."""
        self.last = self.ep.loop.time()
        sock = self.sock
        if sock is None:
            if len(self.pending) < MAX_PENDING:
                self.pending.append(data)
            return
        try:
            sock.send(data)
        except BlockingIOError:
            pass  # the socket's buffer is full: dropped, as the network would
        except OSError as exc:
            self.fail(exc)

    def _readable(self) -> None:
        """The backend's replies, relayed to the client from the entry point's socket."""
        sock = self.sock
        if sock is None:
            return
        for _ in range(READ_BATCH):
            try:
                data = sock.recv(MAX_DATAGRAM)
            except BlockingIOError:
                return
            except OSError as exc:
                self.fail(exc)
                return
            self.last = self.ep.loop.time()
            self.ep.reply(data, self.client, self.target)

    def _check_idle(self) -> None:
        """Forgotten once idle for the timeout; otherwise checked again when it would be."""
        due = self.last + self.ep.timeout
        if self.ep.loop.time() >= due:
            log.debug("UDP session %s → %s idle, closed", self.client, self.target.address)
            self.close()
        else:
            self.timer = self.ep.loop.call_at(due, self._check_idle)

    def fail(self, exc: BaseException) -> None:
        self.ep.backend_failed(self.target, exc)
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.timer.cancel()
        if self.sock is not None:
            self.ep.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        self.pending = []
        self.ep.forget(self)


class UDPEntryPoint(asyncio.DatagramProtocol):
    """One ``/udp`` entry point: its socket, its table (swapped by the app on each reload) and sessions."""

    def __init__(self, entry_point: EntryPoint, max_sessions: int = MAX_SESSIONS) -> None:
        self.entry_point = entry_point
        self.name = entry_point.name
        self.timeout = entry_point.udp_timeout
        self.max_sessions = max_sessions
        self.table: UDPTable | None = None
        self.sessions: dict[Any, _Session] = {}
        self.addresses: list[tuple[str, int]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.accepting = True
        self._said: set[str] = set()  # conditions logged once (until they clear)
        self._failing: set[str] = set()  # servers that refused, warned about once until they answer
        self._emptied: asyncio.Event | None = None
        self._resolving: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the entry point's address (``:53`` is every interface, IPv4 and IPv6 when possible)."""
        self.loop = asyncio.get_running_loop()
        host, port = parse_address(self.entry_point.address)
        if host is None and socket.has_dualstack_ipv6():
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            bind: tuple[str, int] = ("", port)
        else:
            family = socket.AF_INET6 if host and ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            bind = (host or "", port)
        try:
            # One socket takes every client's datagrams: a larger receive buffer absorbs their bursts while
            # the loop is busy (the kernel caps it at net.core.rmem_max; bounded kernel memory).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            sock.bind(bind)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        name = sock.getsockname()
        self.addresses = [(name[0], name[1])]
        await self.loop.create_datagram_endpoint(lambda: self, sock=sock)

    @property
    def port(self) -> int:
        return self.addresses[0][1] if self.addresses else 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a DatagramTransport subclass

    def set_table(self, table: UDPTable | None) -> None:
        """A reload: new sessions use ``table``; existing ones stay while their server is still one the
        entry point's router can pick, and are closed otherwise (their route is gone)."""
        if _shape(table) != _shape(self.table):  # another route: its problems are logged anew
            self._said.discard("no-router")
            self._said.discard("no-server")
        self.table = table
        keep = table.addresses if table is not None else frozenset()
        for session in [s for s in self.sessions.values() if s.target.address not in keep]:
            session.close()

    def stop_accepting(self) -> None:
        """No new sessions; existing ones keep relaying until they go idle (Traefik's Shutdown)."""
        self.accepting = False

    async def shutdown(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the sessions to go idle, then close everything."""
        self.accepting = False
        if self.sessions and grace > 0:
            self._emptied = asyncio.Event()
            try:
                await asyncio.wait_for(self._emptied.wait(), timeout=grace)
            except TimeoutError:
                pass
        self.close()

    def close(self) -> None:
        self.accepting = False
        for task in list(self._resolving):
            task.cancel()
        for session in list(self.sessions.values()):
            session.close()
        if self.transport is not None:
            self.transport.close()

    # -- datagrams -------------------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Any) -> None:
        session = self.sessions.get(addr)
        if session is None:
            session = self._new_session(addr)
            if session is None:
                return
        session.send(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("entry point %s: %s", self.name, exc)

    def reply(self, data: bytes, client: Any, target: Target) -> None:
        """A backend's datagram to its client; dropped when the entry point's socket is backed up."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > MAX_SEND_BUFFER:
            return
        if target.address in self._failing:
            self._failing.discard(target.address)
            log.info("entry point %s: UDP server %s answers again", self.name, target.address)
        transport.sendto(data, client)

    def _new_session(self, client: Any) -> _Session | None:
        table = self.table
        if not self.accepting:
            return None
        if table is None:
            self._once("no-router", "entry point %s: no UDP router; datagrams are dropped", self.name)
            return None
        if len(self.sessions) >= self.max_sessions:
            self._once(
                "full",
                "entry point %s: %d UDP sessions open (the most kept); new clients are dropped until some "
                "go idle",
                self.name,
                self.max_sessions,
            )
            return None
        target = table.pick()
        if target is None:
            msg = "entry point %s: UDP service %s has no server to send to; datagrams are dropped"
            self._once("no-server", msg, self.name, table.service)
            return None
        session = _Session(self, client, target)
        try:
            if target.family is not None:
                session.open(target.family, (target.host, target.port))
            else:
                task = self.loop.create_task(self._resolve(session))
                self._resolving.add(task)
                task.add_done_callback(self._resolving.discard)
        except OSError as exc:
            session.closed = True
            session.timer.cancel()
            if exc.errno in (errno.EMFILE, errno.ENFILE):  # the process's limit, not the server's fault
                self._once(
                    "fds", "entry point %s: no socket for a new UDP session (%s)", self.name, exc.strerror
                )
            else:
                self.backend_failed(target, exc)
            return None
        self.sessions[client] = session
        log.debug("entry point %s: UDP session %s → %s", self.name, client, target.address)
        return session

    async def _resolve(self, session: _Session) -> None:
        """A server given by host name: resolved for each session, as Traefik dials it."""
        target = session.target
        try:
            infos = await self.loop.getaddrinfo(target.host, target.port, type=socket.SOCK_DGRAM)
            if not session.closed:
                family, _, _, _, address = infos[0]
                session.open(family, address)
        except OSError as exc:
            session.fail(exc)

    def backend_failed(self, target: Target, exc: BaseException) -> None:
        """A server refused or could not be reached: one warning until it answers again."""
        if target.address not in self._failing:
            self._failing.add(target.address)
            log.warning(
                "entry point %s: UDP server %s: %s; its sessions are closed",
                self.name,
                target.address,
                exc.strerror if isinstance(exc, OSError) and exc.strerror else exc,
            )

    def forget(self, session: _Session) -> None:
        if self.sessions.get(session.client) is session:
            del self.sessions[session.client]
        if len(self.sessions) < self.max_sessions * 9 // 10:
            self._said.discard("full")
            self._said.discard("fds")
        if not self.sessions and self._emptied is not None:
            self._emptied.set()

    def _once(self, key: str, msg: str, *args: Any) -> None:
        if key not in self._said:
            self._said.add(key)
            log.warning(msg, *args)


def _shape(table: UDPTable | None) -> tuple[str, str, frozenset[str]] | None:
    """What a table routes to: a reload that changes nothing of it keeps the once-logged conditions."""
    return (table.router, table.service, table.addresses) if table is not None else None
