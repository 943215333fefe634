"""Entry points: aiohttp's low-level server, hardened for the open internet, and graceful shutdown.

aiohttp's defaults are made for applications behind a proxy, not for being the proxy: each connection is a
:class:`router.connection.Protocol` (a header deadline, Go's limit on a request head, fixed error answers),
and bodies pass untouched (``auto_decompress=False``; aiohttp decompresses them on the way in by default).
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import logging
import os
import socket
import ssl
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import http as aiohttp_http
from aiohttp import web, web_protocol
from cachetools import LRUCache

from router.clienthello import MAX_HELLO, ClientHello, Incomplete, bytes_needed, parse_client_hello
from router.connection import Protocol, bad_requests
from router.connection import Server as _Server
from router.headers import TrustedNetworks, underscore_guard
from router.proxy import EntryPointHandler
from router.proxy_protocol import (
    ClientAddress,
    ProxyHeaderError,
    ProxyHeaderTimeout,
    accept_header,
    peer_ip,
)
from router.readiness import peer_done_sending as _peer_done_sending
from router.readiness import readable as _readable
from router.readiness import set_rcvlowat as _set_rcvlowat
from router.tcp.postgres import SSL_REQUEST, STARTTLS_REPLY, opens_with_ssl_request
from router.tcp.relay import Relay
from router.tcp.rules import ConnInfo
from router.tcp.serve import serve
from router.tcp.table import TCPTable
from router.tls import ACME_TLS_1, CertificateStore, CertKeyPair, ChallengeCertificates, challenge_context
from router.tls_options import OPTIONS_ATTR, options_for_host, uses_other_options

log = logging.getLogger("dockroute.server")
# accept() errors that pause accepting for a while instead of retrying at once (Go's temporary errors)
_ACCEPT_PAUSE = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))

# A client that stops reading (its receive window stays shut) or vanishes (nothing is acknowledged) is
# dropped by the kernel once data sent to it has waited this long: nginx's send_timeout default (the time
# between two successful writes), since Traefik's writeTimeout is 0 (none) by default and backpressure
# alone would hold the connection, and the backend's, forever. TCP_USER_TIMEOUT (Linux; RFC 5482) also
# ends zero-window probing; it costs one setsockopt per connection and nothing per request.
SEND_STALL_MS = 60_000
_USER_TIMEOUT: int | None = getattr(socket, "TCP_USER_TIMEOUT", None)

# The aiohttp releases this module is tested with (CI runs the floor and the newest). Everything else it
# needs from aiohttp is public API, except what :func:`aiohttp_problem` checks once at start.
AIOHTTP_TESTED = "3.14.3 and later 3.14"
# Fields of aiohttp's parsed request head (``request._message``) the request path reads: one attribute
# fetch per request instead of a property each (the request path is hot).
_MESSAGE_FIELDS = (
    "method", "path", "version", "headers", "raw_headers", "should_close", "upgrade", "chunked",
)  # fmt: skip


def aiohttp_problem() -> str | None:
    """What the installed aiohttp lacks of the few internals the request path relies on, or None.

    The proxy reads the parsed request head from ``BaseRequest._message`` and hands a WebSocket tunnel's
    bytes to ``RequestHandler.set_parser``; both have been there, unchanged, through every release from
    3.9 to 3.14, but neither is a promise. A release that drops one must stop dockroute at start with one
    clear line, not answer every request with a 500 (an AttributeError on the request path)."""
    version = getattr(aiohttp, "__version__", "?")
    missing: list[str] = []
    if "_message" not in getattr(web.BaseRequest, "ATTRS", ()):
        missing.append("BaseRequest._message")
    message_cls = getattr(aiohttp_http, "RawRequestMessage", None)
    missing += [f"RawRequestMessage.{f}" for f in _MESSAGE_FIELDS if not hasattr(message_cls, f)]
    if not callable(getattr(web.RequestHandler, "set_parser", None)):
        missing.append("RequestHandler.set_parser")
    if "_messages" not in getattr(web.RequestHandler, "__slots__", ()):
        missing.append("RequestHandler._messages")  # router.connection: has a head been parsed
    params = inspect.signature(web.Server.__init__).parameters
    missing += [f"Server({p}=...)" for p in ("request_factory", "handler_cancellation") if p not in params]
    if not missing:
        return None
    return (
        f"aiohttp {version} is not supported (it lacks {', '.join(missing)}); "
        f"dockroute works with aiohttp {AIOHTTP_TESTED}"
    )


def parser_problem() -> str | None:
    """Why the HTTP request parser aiohttp's server uses is not its C one (llhttp), or None.

    aiohttp's pure-Python parser is what runs when ``AIOHTTP_NO_EXTENSIONS`` is set or the C extension
    did not build, and it is the one most of aiohttp's request smuggling advisories were about
    (GHSA-gfw2-4jvh-wgfg / CVE-2023-47627, GHSA-8495-4g3g-x7pr / CVE-2024-52304 chunk extensions,
    GHSA-9548-qrrj-x5pj / CVE-2025-53643 trailers, GHSA-pqxq-w44r-73xw). The parsing guarantees dockroute
    makes (a smuggling shape gets 400 and never reaches a backend) are tested with llhttp only, so a proxy
    on the open internet must not silently serve with the other parser."""
    parser = getattr(web_protocol, "HttpRequestParser", None)
    module = getattr(parser, "__module__", "")
    if module == "aiohttp._http_parser":
        return None
    why = (
        "AIOHTTP_NO_EXTENSIONS is set"
        if os.environ.get("AIOHTTP_NO_EXTENSIONS")
        else "its C extension is not installed (a build without it, or an unsupported platform)"
    )
    return (
        f"aiohttp's C HTTP parser is not in use ({why}): dockroute refuses to serve with the "
        "pure-Python parser (unset AIOHTTP_NO_EXTENSIONS or install an aiohttp wheel with its extensions)"
    )


def check_aiohttp() -> None:
    """Stop the process with :func:`aiohttp_problem`'s or :func:`parser_problem`'s line if the installed
    aiohttp cannot serve."""
    problem = aiohttp_problem() or parser_problem()
    if problem is not None:
        raise SystemExit(f"dockroute: {problem}")


class _ChallengeProtocol(asyncio.Protocol):
    """A TLS-ALPN-01 validator only looks at the certificate: nothing is served, the connection is closed
    when the validator sends anything or after a few seconds."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._timer = asyncio.get_running_loop().call_later(5.0, transport.close)

    def data_received(self, data: bytes) -> None:
        self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.cancel()


def _normalize_sni(name: str | None) -> str:
    return name.strip().rstrip(".").lower() if name else ""


def parse_address(address: str) -> tuple[str | None, int]:
    """``":80"`` → (None, 80) (all interfaces), ``"127.0.0.1:8080"``, ``"[::1]:80"``."""
    host, _, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return (host or None), int(port)


def _with_client(server: _Server, ip: str, port: int | None) -> Callable[[], Protocol]:
    """A protocol factory for ``server`` whose connection is from ``ip``/``port``: the entry point's own
    answer (accept()'s peer, or a trusted PROXY header's source), set before ``connection_made``
    (router.connection.Protocol), so the connection never works it out a second time."""

    def factory() -> Protocol:
        proto = server()
        proto.client_ip, proto.client_port = ip, port
        return proto

    return factory


class EntryPointServer:
    """One listening entry point: HTTP and HTTPS on the same port, as in Traefik.

    Each accepted connection is peeked at (``MSG_PEEK``, nothing consumed): a TLS handshake record (first
    byte 0x16) goes to the HTTPS side, whose certificate is chosen by SNI from the current
    :class:`~router.tls.CertificateStore`; anything else goes to the plain HTTP side. Each side has its own
    handler and routing table (routers with ``tls`` serve HTTPS only, the others HTTP only).
    """

    def __init__(self, handler: EntryPointHandler, tls_handler: EntryPointHandler | None = None) -> None:
        check_aiohttp()
        self.handler = handler
        self.tls_handler = tls_handler
        ep = handler.entry_point
        self.name = ep.name
        # Traefik's readTimeout bounds the whole request read, headers included: a shorter one wins.
        self.header_timeout = (
            min(t for t in (ep.header_timeout, ep.read_timeout) if t)
            if (ep.header_timeout or ep.read_timeout)
            else 0.0
        )
        self.web_server = self._web_server(handler)
        self.tls_web_server = self._web_server(tls_handler) if tls_handler is not None else None
        self.tls_store: CertificateStore | None = None
        self.alpn_challenges: ChallengeCertificates | None = None
        self.host_options: Mapping[str, str] = {}
        self._peek_for_options = False  # some host uses other options than default: pick them by SNI
        # proxyProtocol: whose PROXY header gives the client address (None: headers are not read here)
        pp = ep.proxy_protocol
        self.proxy_trust = TrustedNetworks(pp.trusted_ips, pp.insecure) if pp is not None else None
        self._challenge_contexts: LRUCache[CertKeyPair, ssl.SSLContext] = LRUCache(maxsize=32)
        self._sockets: list[socket.socket] = []
        self._dispatching: set[asyncio.Task[None]] = set()
        self._accept_backoff = 0.0  # seconds accepting pauses after running out of descriptors (0: not)
        self.addresses: list[tuple[str, int]] = []
        self.tcp_table: TCPTable | None = None  # this entry point's TCP routers (None: it has none)
        self.tcp_relays: set[Relay] = set()  # TCP connections being relayed, closed at shutdown

    def _web_server(self, handler: EntryPointHandler) -> _Server:
        ep = handler.entry_point
        return _Server(
            underscore_guard(handler),  # Traefik's underscoreHeadersStrategy, before routing
            header_timeout=self.header_timeout,
            handler_cancellation=True,  # a client gone mid-request abandons its backend request too
            max_header_bytes=ep.max_header_bytes,
            keepalive_timeout=ep.idle_timeout or 3600.0,
            access_log=None,
            auto_decompress=False,
            lingering_time=2.0,
        )

    def set_tls_options(self, host_options: Mapping[str, str]) -> None:
        """The TLS options of this entry point's hosts (lower-case host or ``*.domain`` → options name;
        absent hosts use ``default``), set by the app on every apply, with the matching store."""
        self.host_options = host_options
        self._peek_for_options = uses_other_options(host_options)

    async def start(self) -> None:
        host, port = parse_address(self.handler.entry_point.address)
        if host is None:
            if socket.has_dualstack_ipv6():
                sock = socket.create_server(
                    ("", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=2048
                )
            else:
                sock = socket.create_server(("", port), backlog=2048)
        else:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.create_server((host, port), family=family, backlog=2048)
        sock.setblocking(False)
        self._sockets = [sock]
        name = sock.getsockname()
        self.addresses = [(name[0], name[1])]
        for h in (self.handler, self.tls_handler):
            if h is not None:
                h.set_port(name[1], host)
        loop = asyncio.get_running_loop()
        for s in self._sockets:
            loop.add_reader(s.fileno(), self._on_acceptable, s, loop)

    def _on_acceptable(self, lsock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        """Accept every pending connection in one wake-up; most clients have already sent their first
        bytes by then, so the peek answers at once and no waiting is needed."""
        for _ in range(128):
            try:
                conn, peer = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _ACCEPT_PAUSE:
                    self._pause_accepting(lsock, loop, exc)
                else:
                    log.warning("entrypoint %s: accept failed: %s", self.name, exc)
                return
            if self._accept_backoff:
                self._accept_backoff = 0.0
                log.info("entrypoint %s: accepting connections again", self.name)
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if _USER_TIMEOUT is not None:
                conn.setsockopt(socket.IPPROTO_TCP, _USER_TIMEOUT, SEND_STALL_MS)
            try:
                first: bytes | None = conn.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                first = None
            except OSError:
                conn.close()
                continue
            task = loop.create_task(self._dispatch(conn, first, peer))
            self._dispatching.add(task)
            task.add_done_callback(self._dispatching.discard)

    def _pause_accepting(self, lsock: socket.socket, loop: asyncio.AbstractEventLoop, exc: OSError) -> None:
        """Out of descriptors (or kernel memory): the pending connection keeps the listener readable, so
        it is left alone for a while, 5 ms doubling up to 1 s as Go's net/http does, instead of failing
        again at once in a busy loop. Logged once until a connection is accepted again."""
        if not self._accept_backoff:
            log.error("entrypoint %s: accept failed: %s; retrying until it works", self.name, exc)
        self._accept_backoff = min(1.0, self._accept_backoff * 2 or 0.005)
        loop.remove_reader(lsock.fileno())
        loop.call_later(self._accept_backoff, self._resume_accepting, lsock, loop)

    def _resume_accepting(self, lsock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        if lsock in self._sockets:  # not closed by a shutdown meanwhile
            loop.add_reader(lsock.fileno(), self._on_acceptable, lsock, loop)

    async def _dispatch(self, conn: socket.socket, first: bytes | None, peer: tuple[Any, ...]) -> None:
        """Hand ``conn`` to the HTTP, HTTPS or TLS-ALPN-01 side. Until a transport owns it, the socket is
        ours to close: on any failure, on cancellation (shutdown) and when there is nothing to serve.

        ``peer`` is accept()'s address; with ``proxyProtocol`` a PROXY header is read first (before any
        peek), and ``ip``/``port`` are who the connection is from for everything after
        (router.proxy_protocol). ``client`` (a :class:`ClientAddress`) is only built where it is wanted: a
        PROXY header's trust check, TCP routers. One header deadline covers the PROXY header and the first
        byte after it."""
        loop = asyncio.get_running_loop()
        ip, port = peer_ip(peer), peer[1]
        deadline = loop.time() + self.header_timeout if self.header_timeout else None
        client: ClientAddress | None = None
        try:
            if self.proxy_trust is not None:
                server_first = self.tcp_table is not None and self.tcp_table.server_first
                client, taken = await accept_header(
                    conn,
                    first,
                    ClientAddress(ip, port),
                    self.proxy_trust,
                    loop,
                    self.header_timeout,
                    server_first,
                )
                first = None if taken else first  # a header was taken: peek at what follows it
                ip, port = client.ip, client.port
            tcp = self.tcp_table  # TCP routers (None: none here, nothing to pay)
            if tcp is not None:
                client = client or ClientAddress(ip, port)
                if (conn := await self._tcp(conn, tcp, None, client, None, early=True)) is None:
                    return
            if first is None:
                first = await self._peek(conn, loop, deadline)
            if not first:
                return
            if first[0] == 0x16 and self.tls_web_server is not None:
                conn = await self._https(conn, tcp, client, ip, port)  # returned: to close
                return
            # the store as this connection found it (a PostgreSQL STARTTLS is terminated after awaits)
            plain_store = self.tls_store
            if tcp and client and (conn := await self._tcp(conn, tcp, None, client, plain_store)) is None:
                return
            await loop.connect_accepted_socket(_with_client(self.web_server, ip, port), conn)
            conn = None  # a transport owns it now
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            log.debug("entrypoint %s: connection dropped before HTTP: %s", self.name, exc)
        except ProxyHeaderTimeout as exc:  # silent or closed: as a missed header deadline, not an attack
            log.debug("entrypoint %s: connection from %s dropped: %s", self.name, ip, exc)
        except ProxyHeaderError as exc:  # malformed: one rate-limited line naming the peer
            bad_requests.note(ip, f"entry point {self.name}: {exc}")
        except Exception:  # a bug: one line with the traceback, and this connection only is lost
            log.exception("entrypoint %s: unexpected error while accepting a connection", self.name)
        finally:
            if conn is not None:
                conn.close()

    async def _https(
        self,
        conn: socket.socket,
        tcp: TCPTable | None,
        client: ClientAddress | None,
        ip: str,
        port: int | None,
    ) -> socket.socket | None:
        """The TLS side of :meth:`_dispatch` (ALPN challenge, TLS TCP router, HTTPS): None once owned."""
        loop = asyncio.get_running_loop()
        # The store and this entry point's host map are taken together, before any await: a reload
        # meanwhile must not pair one configuration's store with the other's map.
        store, host_options, by_options = self.tls_store, self.host_options, self._peek_for_options
        if store is None:
            return conn
        challenges = self.alpn_challenges
        pending = challenges is not None and challenges.pending()
        ctx: ssl.SSLContext | None = store.default_context
        hello = None
        if pending or by_options or tcp is not None:
            # One peek serves all: the TLS-ALPN-01 check, TCP routing and TLS options by SNI.
            hello = await self._peek_hello(conn, loop)
        if pending and hello is not None:
            assert challenges is not None
            challenge = await self._challenge_context(hello, loop, challenges)
            if challenge is not None:
                await loop.connect_accepted_socket(
                    _ChallengeProtocol, conn, ssl=challenge, ssl_handshake_timeout=10.0
                )
                return None
        if tcp and client and hello and (conn := await self._tcp(conn, tcp, hello, client, store)) is None:
            return None
        if by_options:
            ctx = self._options_context(store, host_options, hello)
            if ctx is None:
                return conn
        assert self.tls_web_server is not None  # the caller's condition
        await loop.connect_accepted_socket(
            _with_client(self.tls_web_server, ip, port),
            conn,
            ssl=ctx,
            ssl_handshake_timeout=self.header_timeout or None,
        )
        return None

    async def _tcp(
        self,
        conn: socket.socket,
        tcp: TCPTable,
        hello: ClientHello | None,
        client: ClientAddress,
        store: CertificateStore | None,
        early: bool = False,
    ) -> socket.socket | None:
        """A TCP router's turn (Traefik's order: :mod:`router.tcp.table`): None when one took ``conn`` (it is
        relayed, or closed by its middlewares), else ``conn`` for HTTP(S). ``hello`` None: not TLS;
        ``early``: before the client sent anything, only where the entry point serves nothing else.
        ``store``: the certificates as the connection found them, taken before any await (as the HTTPS
        side takes them), so that a reload meanwhile cannot mix two configurations."""
        if early and not tcp.server_first:
            return conn
        if hello is None and not early and await opens_with_ssl_request(conn):
            conn.recv(len(SSL_REQUEST))  # PostgreSQL's STARTTLS: answered here, then routed by its SNI
            conn.send(STARTTLS_REPLY)
            hello = await self._peek_hello(conn, asyncio.get_running_loop())
            route = (
                tcp.match_tls(ConnInfo(hello.server_name or "", hello.alpn, client.ip, True))
                if hello
                else None
            )
            if route is None:
                conn.close()  # Traefik: a STARTTLS no TLS TCP router takes is closed
                return None
            await serve(route, conn, client, store, self.tcp_relays, self.header_timeout, postgres=True)
            return None
        if hello is None:
            route = tcp.match_plain(ConnInfo("", (), client.ip, False))
        else:
            route = tcp.match_tls(ConnInfo(hello.server_name or "", hello.alpn, client.ip, True))
        if route is None:
            return conn
        await serve(route, conn, client, store, self.tcp_relays, self.header_timeout)
        return None

    def _options_context(
        self, store: CertificateStore, host_options: Mapping[str, str], hello: ClientHello | None
    ) -> ssl.SSLContext | None:
        """The listening context of the TLS options the ClientHello's SNI maps to on this entry point
        (exact host, then ``*.parent``, else ``default``); None to refuse the connection (those options do
        not exist or could not be built). A hello that could not be read gets the default options in a
        context whose SNI callback refuses the names of other options."""
        if hello is None:
            return store.guarded_default_context
        name = options_for_host(host_options, _normalize_sni(hello.server_name))
        try:
            return store.listening_context(name)
        except KeyError:
            log.debug("entrypoint %s: TLS options %s unusable: connection refused", self.name, name)
            return None

    async def _challenge_context(
        self, hello: ClientHello, loop: asyncio.AbstractEventLoop, challenges: ChallengeCertificates
    ) -> ssl.SSLContext | None:
        """The TLS-ALPN-01 context when this ClientHello offers exactly ``acme-tls/1`` for a name with a
        pending challenge; None for every other client (browsers included), who get the normal one."""
        if hello.alpn != (ACME_TLS_1,) or not hello.server_name:
            return None
        pair = challenges.alpn_challenge(hello.server_name)
        if pair is None:
            log.debug("entrypoint %s: acme-tls/1 for %s, no challenge pending", self.name, hello.server_name)
            return None
        ctx = self._challenge_contexts.get(pair)
        if ctx is None:
            # Loading a chain goes through a temporary file: keep that off the event loop.
            ctx = await loop.run_in_executor(None, challenge_context, pair)
            self._challenge_contexts[pair] = ctx
        log.debug("entrypoint %s: answering the TLS-ALPN-01 challenge for %s", self.name, hello.server_name)
        return ctx

    async def _peek_hello(self, conn: socket.socket, loop: asyncio.AbstractEventLoop) -> ClientHello | None:
        """The ClientHello, peeked (left in the socket), waiting at most 2 s for the rest of a hello split
        over TCP segments (a validator sends its hello at once; a slower client simply gets the normal
        handshake, with its own deadline).

        Peeked bytes keep the socket readable, so readiness alone would spin, and re-peeking on a timer
        costs a parse per tick for every stalled client (tens per connection over the 2 s). Instead
        ``SO_RCVLOWAT`` is raised to the size the first record needs (a record longer than TLS allows is
        never waited for: :func:`parse_client_hello` refuses it at once), so the socket turns readable
        once, when all of it is there; the reader is removed and the mark put back to 1 before the
        socket is handed on, since the transport that takes it over must see ordinary readiness.

        Readable with nothing new means the peer has stopped sending (FIN or reset: the hello can never
        complete, so None at once) or the kernel woke us early (memory pressure). Then, and where the
        low-water mark cannot be set at all, the bytes are re-peeked on a timer backing off from 2 to
        50 ms, as before: bounded, never a busy loop. Bytes already found incomplete are not parsed
        again."""
        deadline = loop.time() + min(self.header_timeout or 2.0, 2.0)
        fd = conn.fileno()
        in_kernel = True  # waiting on SO_RCVLOWAT; False once the system refuses it
        raised = False  # the mark was set above 1 and must be put back
        seen = 0  # bytes peeked and found incomplete
        delay = 0.002
        try:
            while True:
                try:
                    data = conn.recv(MAX_HELLO, socket.MSG_PEEK)
                except BlockingIOError:
                    data = b"\x16"  # nothing more yet
                if not data:
                    return None  # closed
                fresh = len(data) > seen
                if fresh:
                    try:
                        return parse_client_hello(data)
                    except Incomplete:
                        seen = len(data)
                elif _peer_done_sending(fd):
                    return None  # the rest of the hello will never come
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                if fresh and in_kernel:
                    in_kernel = _set_rcvlowat(conn, bytes_needed(data))
                    raised = raised or in_kernel
                    if in_kernel:
                        if not await _readable(loop, fd, remaining):
                            return None
                        continue
                await asyncio.sleep(min(delay, remaining))
                delay = min(delay * 2, 0.05)
        finally:
            # Unguarded on purpose: should this fail, the OSError makes _dispatch close the connection
            # rather than hand on a socket that would look idle until the low-water mark is reached.
            if raised:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)

    async def _peek(
        self, conn: socket.socket, loop: asyncio.AbstractEventLoop, deadline: float | None
    ) -> bytes:
        """The first byte the client sent, left in the socket; b"" if it closed or stayed silent past
        ``deadline`` (loop time; None: none): the connection's header deadline, a PROXY header's time
        counted in."""
        try:
            return conn.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            pass
        if not await _readable(loop, conn.fileno(), None if deadline is None else deadline - loop.time()):
            return b""
        return conn.recv(1, socket.MSG_PEEK)

    @property
    def port(self) -> int:
        return self.addresses[0][1] if self.addresses else 0

    def close_retired_connections(self) -> int:
        """Close the HTTPS connections made under TLS options a reload changed or removed (their stamp was
        retired): a kept-alive connection must not keep what the new options refuse (a client certificate
        now required, an older TLS version). Idle ones at once; one handling a request once it is answered.
        Returns how many."""
        server = self.tls_web_server
        closed = 0
        for proto in list(server.connections) if server is not None else ():
            transport = proto.transport
            sslobj = transport.get_extra_info("ssl_object") if transport is not None else None
            stamp = getattr(sslobj.context, OPTIONS_ATTR, None) if sslobj is not None else None
            if stamp is None or stamp.current:
                continue
            closed += 1
            if proto.busy:
                proto.close()  # after the request being handled; a next one is answered 421 (proxy.py)
            else:
                proto.force_close()  # idle between requests: now (as the header deadline does)
                transport.close()
        return closed

    def stop_accepting(self) -> None:
        """Close the listeners, and the connections not yet handed to HTTP (still being peeked at): once
        shutdown has begun they would be served outside its grace period."""
        for task in list(self._dispatching):
            task.cancel()
        if self._sockets:
            loop = asyncio.get_running_loop()
            for s in self._sockets:
                loop.remove_reader(s.fileno())
        for s in self._sockets:
            s.close()
        self._sockets = []

    async def shutdown(self, grace: float) -> None:
        """Stop accepting, let in-flight requests finish for up to ``grace`` seconds, close the rest."""
        self.stop_accepting()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        servers = [s for s in (self.web_server, self.tls_web_server) if s is not None]
        try:
            # aiohttp waits `grace` for handlers and then as long again before cancelling them: bound the
            # whole thing, so a container runtime's own 10 s stop never has to SIGKILL us.
            async with asyncio.timeout(grace):
                await asyncio.gather(*(s.shutdown(grace) for s in servers))
        except TimeoutError:
            for server in servers:
                for proto in list(server.connections):
                    proto.force_close()
                    if proto.transport is not None:
                        proto.transport.abort()  # connection_lost cancels the handler (handler_cancellation)
        if self.tcp_relays and (left := deadline - loop.time()) > 0:  # Traefik's tracker.Shutdown, Close
            await asyncio.wait([relay.done for relay in self.tcp_relays], timeout=left)
        for relay in list(self.tcp_relays):
            relay.close()
