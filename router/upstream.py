"""A lean HTTP/1.1 client for backends: asyncio protocols, llhttp (``httptools``), a keep-alive pool.

aiohttp's ``ClientSession`` costs ~200 µs of CPU per proxied request on this class of machine (measured
when this client replaced it); most of it is work a proxy does not need (cookie jars, URL objects, header
multidicts, decompression, redirects). This client writes the request head the proxy already built, parses
the response with llhttp into a list of raw ``(name, value)`` byte pairs, and hands body chunks over with
flow control. There is no cookie jar and no decompression: bytes pass through untouched.

An answer llhttp refuses (smuggling shapes, CR/LF/NUL in a header), a status line other than HTTP/1.x, a
head or framing past :data:`MAX_HEAD_BYTES`, or bytes beyond what the framing announced all end the
connection: it is never pooled, so the next request, maybe another client's, cannot read them as its answer.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

import httptools

from router.settings import Transport
from router.transports import DEFAULT, BuiltTransport, Transports, build_transports, refusing_context

# A pool key: scheme, host, port and the serversTransport's qualified name ("" for the static default).
Key = tuple[str, str, int, str]

_HIGH_WATER = 1 << 20  # pause reading the backend when this much body is buffered
_LOW_WATER = 1 << 18
# A response head (interim answers included) larger than this, or with more header lines, is a broken or
# hostile backend: 502, the connection closed. Go's transport stops at 10 MB, nginx at 4-8 KiB, Node at
# 16 KiB and 2,000 lines; 1 MiB is what an entry point accepts from a client by default. The byte bound
# also holds for what comes between body bytes (chunk sizes and extensions, trailers). Checked once per
# packet: at most one packet past it is ever held.
MAX_HEAD_BYTES = 1 << 20
MAX_HEAD_LINES = 2000
_HTTP1 = b"HTTP/1."
_HTTP1_VERSIONS = ("1.1", "1.0")


class UpstreamError(Exception):
    """Talking to a backend failed; ``reason`` goes into the access log."""

    reason = "upstream error"


class ConnectFailed(UpstreamError):
    """No connection could be made (refused, reset, unreachable, dial timeout): nothing was sent."""

    reason = "connect failed"


class UpstreamBroken(UpstreamError):
    """The connection broke or sent garbage after the request was (partly) written."""

    reason = "upstream closed the connection"


class UpstreamTimeout(UpstreamError):
    reason = "upstream timed out"


class TransportUnavailable(ConnectFailed):
    """The service's ``serversTransport`` does not exist or could not be built: nothing is attempted rather
    than connecting through another, possibly less strict, transport."""

    reason = "serversTransport unusable"


class Connection(asyncio.Protocol):
    """One backend connection; carries one request/response at a time."""

    __slots__ = (
        "key",
        "transport",
        "parser",
        "status",
        "reason",
        "headers",
        "headers_done",
        "_interim",
        "body",
        "body_size",
        "complete",
        "closed",
        "error",
        "_waiter",
        "_reading_paused",
        "_write_paused",
        "_drain_waiter",
        "got_bytes",
        "unframed",
        "_check_version",
        "idle_since",
        "tunnel",
        "on_tunnel_pause",
        "upgrade_tail",
        "head_request",
        "keep_alive",
        "origin",
    )

    def __init__(self, key: Key, origin: BuiltTransport | None = None) -> None:
        self.key = key
        self.origin = origin  # the transport it was made through; pooled only while that one is current
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.error: BaseException | None = None
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self.idle_since = 0.0
        self.tunnel: asyncio.BaseTransport | None = None
        self.on_tunnel_pause: Callable[[], None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done: asyncio.Future[None] | None = None
        self._interim = False
        self.body: collections.deque[bytes] = collections.deque()
        self.body_size = 0
        self.complete = False
        self._waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self.got_bytes = False
        self.unframed = 0
        self._check_version = False
        self.upgrade_tail = b""
        self.head_request = False
        self.keep_alive = False

    # -- used by the proxy ---------------------------------------------------------------------------

    def begin(self, head: bytes, head_request: bool, loop: asyncio.AbstractEventLoop) -> None:
        """Write a request head and arm the response state."""
        self._reset()
        self.head_request = head_request
        self.headers_done = loop.create_future()
        assert self.transport is not None
        self.transport.write(head)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait until the backend has taken the request bytes written so far (flow control)."""
        if self.closed:
            raise UpstreamBroken("backend closed the connection while the request body was sent")
        if self._write_paused:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            await self._drain_waiter

    async def read(self) -> bytes:
        """The next piece of the response body; ``b""`` when the response is complete."""
        while True:
            if self.body:
                data = b"".join(self.body) if len(self.body) > 1 else self.body[0]
                self.body.clear()
                self.body_size = 0
                if self._reading_paused and self.transport is not None:
                    self._reading_paused = False
                    self.transport.resume_reading()
                return data
            if self.complete:
                return b""
            if self.closed:
                raise self.error or UpstreamBroken("backend closed the connection in the middle of the body")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def take_body(self) -> bytes:
        """The whole body, when ``complete`` is already true (the fast path for small responses)."""
        data = b"".join(self.body) if len(self.body) != 1 else self.body[0]
        self.body.clear()
        self.body_size = 0
        return data

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and not self.head_request

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # -- asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            if tunnel.is_closing():
                self.close()
                return
            tunnel.write(data)  # type: ignore[attr-defined]
            # Backpressure: a client slower than the backend must not make the proxy buffer without end.
            if tunnel.get_write_buffer_size() > _HIGH_WATER and self.transport:  # type: ignore[attr-defined]
                self.transport.pause_reading()
                if self.on_tunnel_pause is not None:
                    self.on_tunnel_pause()
            return
        if self.status == 101 and self.complete:
            self.upgrade_tail += data  # between the 101 and the tunnel being set up
            if len(self.upgrade_tail) > _HIGH_WATER and self.transport is not None:
                self.transport.pause_reading()  # resumed by the tunnel once it runs
            return
        if self.complete or self.headers_done is None:
            # Bytes after the response ended, or while idle in the pool: the backend is out of step with
            # us. Never let them reach a client; the connection is not reused.
            self.keep_alive = False
            if self.headers_done is None:
                self.close()
            return
        in_head = self.status == 0
        if in_head and not self.got_bytes and not self._first_packet_ok(data):
            return
        # Bytes since the last body byte (``on_body`` zeroes it): a head, chunk sizes and extensions,
        # trailers. Bounded so that no part of an answer but its body can grow or last without end.
        self.unframed += len(data)
        if self.unframed > MAX_HEAD_BYTES or (in_head and len(self.headers) > MAX_HEAD_LINES):
            why = f"more than {MAX_HEAD_BYTES} bytes or {MAX_HEAD_LINES} lines"
            self._broken(f"invalid response from backend: head, chunk framing or trailers of {why}")
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.upgrade_tail = data[exc.args[0] :]
            self.complete = True
            self._wake()
        except httptools.HttpParserError as exc:
            if not self.complete:
                # a check of ours in a callback shows as llhttp's "User callback error": say which one
                self._broken(f"invalid response from backend: {exc.__context__ or exc}")
                return
            self.close()  # not even HTTP after a whole answer: that answer goes out, the connection not
        if in_head and self.status:
            # The head is announced only once the packet that ended it parsed whole: a bad body in the
            # same packet (a bad chunk size) is then a 502 like a bad head, not a 200 cut short.
            fut = self.headers_done
            if fut is not None and not fut.done():
                fut.set_result(None)

    def _first_packet_ok(self, data: bytes) -> bool:
        """The first packet of an answer must start a status line ``HTTP/1.x``: llhttp also takes
        ``HTTP/2.0``, ``HTTP/0.9``, ``RTSP/`` and ``ICE/`` (False: failed and closed)."""
        self.got_bytes = True
        if data.startswith(_HTTP1):
            return True
        if len(data) < 7 and _HTTP1.startswith(data):
            self._check_version = True  # the protocol name was cut: llhttp's version is checked instead
            return True
        self._broken("invalid response from backend: not an HTTP/1.x status line")
        return False

    def _broken(self, why: str) -> None:
        self._fail(UpstreamBroken(why))
        self.close()

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        if self.tunnel is not None:
            self.tunnel.close()
            self.tunnel = None
        fut = self.headers_done
        if fut is not None and not fut.done():
            fut.set_exception(UpstreamBroken("backend closed the connection before responding"))
        elif fut is not None and not self.complete and self.status and not self.headers_have_length():
            # A response without Content-Length or chunking ends when the connection does, cleanly: a
            # reset means the body was cut, and the client must see that too.
            if exc is None:
                self.complete = True
            else:
                self.error = UpstreamBroken(f"backend connection reset: {exc}")
        self._wake()
        w = self._drain_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self.tunnel is not None:  # a tunnel's client sends faster than the backend takes
            self.tunnel.pause_reading()  # type: ignore[attr-defined]

    def resume_writing(self) -> None:
        self._write_paused = False
        if self.tunnel is not None and not self.tunnel.is_closing():
            self.tunnel.resume_reading()  # type: ignore[attr-defined]
        w = self._drain_waiter
        if w is not None and not w.done():
            w.set_result(None)

    # -- llhttp callbacks ---------------------------------------------------------------------------

    def on_status(self, reason: bytes) -> None:
        if self.complete:  # a second message in the same packet: see data_received
            self.keep_alive = False
            return
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.status:  # a trailer (never relayed), or a second message after a whole one
            return
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.complete:
            self.keep_alive = False
            return
        status = self.parser.get_status_code()
        if self._check_version and self.parser.get_http_version() not in _HTTP1_VERSIONS:
            raise ValueError(f"HTTP/{self.parser.get_http_version()} status line")
        if len(self.headers) > MAX_HEAD_LINES:  # one packet; data_received bounds the rest
            raise ValueError(f"response head of more than {MAX_HEAD_LINES} lines")
        if status < 200:
            if status < 100:  # llhttp takes any three digits
                raise ValueError(f"status {status}")
            if status != 101:
                # Interim response (100 Continue, 103 Early Hints): the real one follows, its status
                # line no longer at the start of a packet, so its version is checked here.
                self._interim = self._check_version = True
                self.headers = []
                self.reason = b""
                return
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()
        if self.head_request:
            # llhttp would wait for a HEAD response's announced body; it has none. The connection is
            # not reused (see ``reusable``), so the parser's state no longer matters.
            self.complete = True

    def on_body(self, body: bytes) -> None:
        self.unframed = 0
        if self.head_request or self.complete:
            return
        self.body.append(body)
        self.body_size += len(body)
        if self.body_size > _HIGH_WATER and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if self.complete:
            return
        self.complete = True
        self._wake()

    # -- helpers ---------------------------------------------------------------------------------------

    def headers_have_length(self) -> bool:
        for name, value in self.headers:
            ln = name.lower()
            if ln == b"content-length" or (ln == b"transfer-encoding" and b"chunked" in value.lower()):
                return True
        return False

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        fut = self.headers_done
        if fut is not None and not fut.done():
            fut.set_exception(exc)
        self._wake()


class Pool:
    """Keep-alive connections per backend and transport, most recently used first.

    A key is ``(scheme, host, port, serversTransport)`` (``""``: the static default transport), so two
    services reaching one backend through different transports never share a connection. Each transport
    brings its own TLS context, dial timeout, ``idleConnTimeout`` and ``maxIdleConnsPerHost``. The pool
    holds no cookies and no per-client state: it is shared by every request of every router.
    """

    def __init__(self, transport: Transport, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = transport  # the static default transport
        self._idle: dict[Key, list[Connection]] = {}
        self._clock = clock
        self._sweeper: asyncio.TimerHandle | None = None
        self._pending: dict[Key, set[asyncio.Task[Any]]] = {}
        self._transports = build_transports({}, transport)
        self._by_name: dict[str, BuiltTransport] = {}
        self._sweep_every = 30.0
        self._index()

    # -- transports ------------------------------------------------------------------------------------

    def build_transports(self, named: Mapping[str, Transport]) -> Transports:
        """The transport table for a snapshot's ``http.serversTransports``: reads files and builds TLS
        contexts, so call it in a worker thread; transports equal to the current ones are reused."""
        return build_transports(named, self.settings, self._transports)

    def set_transports(self, transports: Transports) -> None:
        """Swap in a transport table built by :meth:`build_transports` off the loop (this runs on it).
        Idle connections made through a transport that changed or left are closed; unchanged transports
        keep theirs."""
        self._transports = transports
        self._index()
        by_name = self._by_name
        for key in list(self._idle):
            current = by_name.get(key[3])
            keep = []
            for conn in self._idle[key]:
                if conn.origin is current and not conn.closed:
                    keep.append(conn)
                else:
                    conn.close()
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]

    def _index(self) -> None:
        table = self._transports
        by_name = {name: t for name, t in table.named.items()}
        by_name[""] = by_name[DEFAULT] = table.default
        self._by_name = by_name
        timeouts = [t.settings.idle_conn_timeout for t in table.all() if t.settings.idle_conn_timeout > 0]
        self._sweep_every = max(1.0, min(30.0, *timeouts)) if timeouts else 30.0

    def _usable(self, name: str | None) -> BuiltTransport:
        t = self._by_name.get(name or "")
        if t is None:
            raise TransportUnavailable(f"serversTransport {name} does not exist")
        if t.error:
            raise TransportUnavailable(f"serversTransport {t.name} is unusable: {t.error}")
        return t

    def settings_for(self, transport: str | None = None) -> Transport:
        """The settings (timeouts) of the transport a service names; the default's for an unknown name."""
        t = self._by_name.get(transport or "")
        return t.settings if t is not None else self.settings

    def tls_for(self, transport: str | None = None) -> tuple[ssl.SSLContext, str | None]:
        """The TLS context and the server name to send and verify (None: the URL's host) for backends of a
        service using ``transport`` (None: the default). The proxy and the health checks both connect
        through this. For a missing or unusable transport it does not raise: it gives a context that fails
        every handshake with a message naming the transport, so a probe fails rather than trusting less."""
        try:
            t = self._usable(transport)
        except TransportUnavailable as exc:
            return refusing_context(str(exc)), None
        assert t.context is not None
        return t.context, t.server_name

    # -- connections -----------------------------------------------------------------------------------

    async def acquire(self, key: Key) -> tuple[Connection, bool]:
        """A connection to ``key`` and whether it was reused from the pool."""
        idle = self._idle.get(key)
        if idle:
            t = self._by_name.get(key[3])
            limit = t.settings.idle_conn_timeout if t is not None else 0
            now = self._clock()
            while idle:
                conn = idle.pop()
                if conn.closed or conn.origin is not t or (limit and now - conn.idle_since > limit):
                    conn.close()
                    continue
                return conn, True
        return await self.connect(key), False

    async def connect(self, key: Key) -> Connection:
        scheme, host, port, name = key
        t = self._usable(name)
        loop = asyncio.get_running_loop()
        ssl_ctx = t.context if scheme == "https" else None
        address = host.strip("[]")
        timeout = t.settings.dial_timeout or None
        # The attempt runs as its own task so that `retain` can abandon it when the server leaves the
        # configuration: a connect to a stopped container's address can otherwise hang for the whole
        # dial timeout, and the request moves on to another server at once instead.
        attempt = loop.create_task(
            loop.create_connection(
                lambda: Connection(key, t),
                address,
                port,
                ssl=ssl_ctx,
                server_hostname=(t.server_name or address) if ssl_ctx else None,
            )
        )
        pending = self._pending.setdefault(key, set())
        pending.add(attempt)
        try:
            async with asyncio.timeout(timeout):
                _, conn = await attempt
        except TimeoutError as exc:
            raise ConnectFailed(f"dial timeout after {timeout}s") from exc
        except (OSError, ssl.SSLError) as exc:
            raise ConnectFailed(str(exc) or type(exc).__name__) from exc
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if attempt.cancelled() and task is not None and not task.cancelling():
                raise ConnectFailed("server left the configuration while connecting") from None
            attempt.cancel()
            raise
        finally:
            pending.discard(attempt)
            if not pending:
                self._pending.pop(key, None)
        return conn

    def release(self, conn: Connection) -> None:
        """Return a finished connection: kept when reusable and there is room, closed otherwise."""
        t = self._by_name.get(conn.key[3])
        if not conn.reusable or conn.origin is not t or t is None:
            conn.close()  # also when its transport changed since it was made
            return
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) >= t.settings.max_idle_conns_per_host:  # the effective limit: 0 keeps none
            conn.close()
            return
        conn.idle_since = self._clock()
        conn.headers_done = None
        idle.append(conn)
        if self._sweeper is None:
            self._schedule_sweep()

    def _schedule_sweep(self) -> None:
        self._sweeper = asyncio.get_running_loop().call_later(self._sweep_every, self._sweep)

    def _sweep(self) -> None:
        """Close idle connections past their time, so dead backends don't pin sockets forever."""
        self._sweeper = None
        now = self._clock()
        for key in list(self._idle):
            t = self._by_name.get(key[3])
            limit = t.settings.idle_conn_timeout if t is not None else 0
            keep = []
            for conn in self._idle[key]:
                if conn.closed or (limit and now - conn.idle_since > limit):
                    conn.close()
                else:
                    keep.append(conn)
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]
        if self._idle:
            self._schedule_sweep()

    def retain(self, keys: set[Key]) -> None:
        """Close idle connections to backends no longer in the configuration (a removed container's
        address may soon belong to another one)."""
        for key in [k for k in self._idle if k not in keys]:
            for conn in self._idle.pop(key):
                conn.close()
        for key in [k for k in self._pending if k not in keys]:
            for attempt in self._pending[key]:
                attempt.cancel()

    def idle_count(self, key: Key | None = None) -> int:
        if key is not None:
            return len(self._idle.get(key, ()))
        return sum(len(v) for v in self._idle.values())

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
