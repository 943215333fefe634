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
does the number of sessions: each holds a socket (a file descriptor), so every UDP entry point of the
process shares one cap (:class:`SessionBudget`), at most :data:`MAX_SESSIONS` and at most half of the
descriptors the process may open beyond a reserve for HTTP/TCP connections. When the cap is reached, the
oldest session whose client has sent a single datagram makes room (a flood from spoofed source addresses
sends one each; real clients that keep talking are not the ones dropped). A backend that refuses (ICMP
port unreachable) ends its session with one warning per server; the client's next datagram starts a new
session on the next server.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import resource
import socket
from collections import OrderedDict
from typing import Any

from router.server import parse_address
from router.settings import EntryPoint
from router.udp.lookup import HostLookups, Resolved
from router.udp.table import Target, UDPTable

__all__ = ["MAX_SESSIONS", "SessionBudget", "UDPEntryPoint", "session_limit"]

log = logging.getLogger("dockroute.udp")

MAX_SESSIONS = 10_000  # for the whole process: each holds a socket (a file descriptor)
FD_RESERVE = 256  # descriptors left to HTTP/TCP connections, listeners, files before UDP sessions count
MAX_DATAGRAM = 65535  # Traefik's maxDatagramSize
READ_BATCH = 64  # datagrams read per wake-up from one socket: others get their turn
MAX_SEND_BUFFER = 1 << 20  # bytes queued on the entry point's socket before replies are dropped
MAX_PENDING_BYTES = 64 << 10  # bytes held per session while a backend's host name is resolved
MAX_PENDING_TOTAL = 4 << 20  # bytes held so across one entry point's sessions
RECEIVE_BUFFER = 4 << 20  # bytes asked for the entry point socket's receive buffer
REPEAT_EVERY = 60.0  # seconds between two warnings of a condition that lasts (no socket left)
_NO_FD = (errno.EMFILE, errno.ENFILE)  # the process's or the system's descriptor limit


def session_limit(max_sessions: int = MAX_SESSIONS) -> int:
    """The process's cap on UDP sessions: ``max_sessions``, lowered to half of the open-file limit left
    after :data:`FD_RESERVE` (the other half for HTTP/TCP, which take two descriptors per proxied
    connection), so that a UDP flood cannot starve the HTTP entry points of sockets."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_sessions
    reserve = min(FD_RESERVE, soft // 2)
    return max(1, min(max_sessions, (soft - reserve) // 2))


class SessionBudget:
    """The sessions of every UDP entry point of the process, counted together against one ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.endpoints: list[UDPEntryPoint] = []

    def make_room(self, first: UDPEntryPoint) -> bool:
        """Close the oldest session that has seen one datagram from its client, of ``first`` if it has
        one, else of another entry point; False when every session has seen more."""
        for ep in (first, *(e for e in self.endpoints if e is not first)):
            if ep.single:
                next(iter(ep.single.values())).close()
                return True
        return False


class _Session:
    """One client's session: its backend socket, and when it last saw a datagram either way."""

    __slots__ = ("ep", "client", "target", "sock", "last", "timer", "pending", "held", "single", "closed")

    def __init__(self, ep: UDPEntryPoint, client: Any, target: Target) -> None:
        self.ep = ep
        self.client = client
        self.target = target
        self.sock: socket.socket | None = None
        self.pending: list[bytes] = []
        self.held = 0  # bytes in pending
        self.single = True  # its client has sent one datagram so far (in ep.single)
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
        self.ep.held -= self.held
        self.held = 0
        for data in pending:
            self.send(data)

    def resolved(self, result: Resolved) -> None:
        """The server's host name looked up (:class:`~router.udp.lookup.HostLookups`): the socket is
        opened and the datagrams held meanwhile are sent; a failed lookup fails the session."""
        if self.closed:
            return
        if isinstance(result, BaseException):
            self.fail(result)
            return
        family, _, _, _, address = result[0]
        try:
            self.open(family, address)
        except OSError as exc:
            self.ep.no_socket(self.target, exc)
            self.close()

    def send(self, data: bytes) -> None:
        """A client's datagram to the backend."""
        self.last = self.ep.loop.time()
        sock = self.sock
        if sock is None:  # the host name is being looked up: held, within both byte budgets
            if self.closed:
                return
            size = len(data)
            if self.held + size <= MAX_PENDING_BYTES and self.ep.held + size <= MAX_PENDING_TOTAL:
                self.pending.append(data)
                self.held += size
                self.ep.held += size
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
        self.ep.held -= self.held
        self.held = 0
        self.ep.forget(self)


class UDPEntryPoint(asyncio.DatagramProtocol):
    """One ``/udp`` entry point: its socket, its table (swapped by the app on each reload) and sessions."""

    def __init__(
        self,
        entry_point: EntryPoint,
        max_sessions: int = MAX_SESSIONS,
        budget: SessionBudget | None = None,
        lookups: HostLookups | None = None,
    ) -> None:
        """``budget`` and ``lookups`` are shared by the process's UDP entry points (their group); alone,
        the entry point has its own, capped at ``max_sessions``."""
        self.entry_point = entry_point
        self.name = entry_point.name
        self.timeout = entry_point.udp_timeout
        self.budget = budget if budget is not None else SessionBudget(max_sessions)
        self.budget.endpoints.append(self)
        self.lookups = lookups if lookups is not None else HostLookups()
        self._own_lookups = lookups is None  # closed with the entry point (else by the group)
        self.table: UDPTable | None = None
        self.sessions: dict[Any, _Session] = {}
        self.single: OrderedDict[Any, _Session] = OrderedDict()  # sessions of one datagram, oldest first
        self.held = 0  # bytes held by sessions waiting for a host name's lookup
        self.looping: frozenset[str] = frozenset()  # servers that are this entry point's own address
        self.addresses: list[tuple[str, int]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.accepting = True
        self._said: set[str] = set()  # conditions logged once (until they clear)
        self._said_at: dict[str, float] = {}  # conditions logged at most every REPEAT_EVERY seconds
        self._failing: set[str] = set()  # servers that refused, warned about once until they answer
        self._emptied: asyncio.Event | None = None

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
            if table is None:
                log.info("entry point %s: no UDP router", self.name)
            else:
                log.info(
                    "entry point %s: UDP router %s → service %s (%d servers)",
                    self.name,
                    table.router,
                    table.service,
                    len(table.addresses),
                )
            self.looping = frozenset(a for a in _looping(table, self.addresses))
            for address in sorted(self.looping):
                log.warning(
                    "entry point %s: UDP server %s is this entry point's own address (each datagram would "
                    "come back as a new session); left out",
                    self.name,
                    address,
                )
        self.table = table
        keep = (table.addresses - self.looping) if table is not None else frozenset()
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
        if self._own_lookups:
            self.lookups.close()
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
        elif session.single:  # a second datagram: no longer among the first to make room
            session.single = False
            del self.single[addr]
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
        budget = self.budget
        if budget.used >= budget.limit and budget.make_room(self):
            msg = "entry point %s: %d UDP sessions open (the most kept); the oldest of one datagram make room"
            self._once("room", msg, self.name, budget.limit)
        elif budget.used >= budget.limit:
            self._once(
                "full",
                "entry point %s: %d UDP sessions open (the most kept for all UDP entry points, each holds "
                "a socket); new clients are dropped until some go idle",
                self.name,
                budget.limit,
            )
            return None
        target = self._pick(table)
        if target is None:
            msg = "entry point %s: UDP service %s has no server to send to; datagrams are dropped"
            self._once("no-server", msg, self.name, table.service)
            return None
        session = _Session(self, client, target)
        if target.family is not None:
            try:
                session.open(target.family, (target.host, target.port))
            except OSError as exc:
                session.closed = True
                session.timer.cancel()
                self.no_socket(target, exc)
                return None
        self.sessions[client] = session
        self.single[client] = session
        budget.used += 1
        if target.family is None:  # after it is counted: a cached answer opens (or fails) it at once
            self.lookups.resolve(self.loop, target.host, target.port, session.resolved)
        log.debug("entry point %s: UDP session %s → %s", self.name, client, target.address)
        return session

    def _pick(self, table: UDPTable) -> Target | None:
        """The table's next server, passing over those that are this entry point's own address."""
        if not self.looping:
            return table.pick()
        for _ in range(len(table.addresses) + 1):
            target = table.pick()
            if target is None or target.address not in self.looping:
                return target
        return None

    def no_socket(self, target: Target, exc: OSError) -> None:
        """A session's socket could not be opened: the descriptor limit (the process's, not the server's
        fault: warned at most once a minute while it lasts), else the server's address."""
        if exc.errno in _NO_FD:
            now = self.loop.time()
            if now >= self._said_at.get("fds", -REPEAT_EVERY) + REPEAT_EVERY:
                self._said_at["fds"] = now
                log.warning("entry point %s: no socket for a new UDP session (%s)", self.name, exc.strerror)
        else:
            self.backend_failed(target, exc)

    def backend_failed(self, target: Target, exc: BaseException) -> None:
        """A server refused or could not be reached (or its name could not be looked up): one warning
        until it answers again."""
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
            self.budget.used -= 1
            if session.single:
                del self.single[session.client]
        if self.budget.used < self.budget.limit * 9 // 10:
            self._said.discard("full")
            self._said.discard("room")
        if not self.sessions and self._emptied is not None:
            self._emptied.set()

    def _once(self, key: str, msg: str, *args: Any) -> None:
        if key not in self._said:
            self._said.add(key)
            log.warning(msg, *args)


def _looping(table: UDPTable | None, bound: list[tuple[str, int]]) -> set[str]:
    """The servers of ``table`` that are the entry point's own socket (``bound``): its port, on its
    address, or on a loopback/unspecified address when it listens on loopback or every interface."""
    if table is None or not bound:
        return set()
    host, port = bound[0]
    own = ipaddress.ip_address(host.partition("%")[0])
    local = own.is_loopback or own.is_unspecified
    out = set()
    for target in table.picker.targets():
        if target.port != port:
            continue
        if target.host.lower() == "localhost":
            same = local
        else:
            try:
                ip = ipaddress.ip_address(target.host.partition("%")[0])
            except ValueError:
                continue
            same = ip == own or (local and (ip.is_loopback or ip.is_unspecified))
        if same:
            out.add(target.address)
    return out


def _shape(table: UDPTable | None) -> tuple[str, str, frozenset[str]] | None:
    """What a table routes to: a reload that changes nothing of it keeps the once-logged conditions."""
    return (table.router, table.service, table.addresses) if table is not None else None
