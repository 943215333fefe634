"""The request path: route, pick a backend, stream the exchange both ways.

This is aiohttp's low-level server handler for one entry point. It does not build aiohttp response objects:
the response head is assembled once from the backend's raw header pairs and written to the client
transport together with the body when the body is already complete (one write, one syscall), or followed
by the body chunks as they arrive, with flow control in both directions. aiohttp is told the exchange is
done through a tiny stand-in response (:class:`_Sent`).

Failure policy (Traefik's): a connection that fails before anything was sent is retried on the next
server, which is taken out for a while (passive health); nothing reachable → 502, a timeout → 504, no
server available at all → 503. Error bodies are fixed strings and never echo request bytes.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.cookies import SimpleCookie
from typing import Any

from router.accesslog import AccessLog, AccessRecord
from router.balancer import ServiceBalancer, WeightedBalancer
from router.headers import FORWARDED, REQUEST_DROP, RESPONSE_DROP, TrustedNetworks, connection_tokens
from router.paths import BadTarget, normalize_host, normalize_path, split_target
from router.rules import RequestInfo
from router.settings import EntryPoint
from router.table import RoutingTable
from router.upstream import ConnectFailed, Connection, Pool, UpstreamError

log = logging.getLogger("dockroute.proxy")

_HOSTNAME = socket.gethostname().encode()
_WRITE_HIGH = 1 << 20
_REPLAYABLE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_IDEMPOTENCY_HEADERS = ("Idempotency-Key", "X-Idempotency-Key")


@dataclass(frozen=True, slots=True)
class ServiceTarget:
    """A router's compiled destination: the service's balancer."""

    router: str
    service: str
    balancer: ServiceBalancer | WeightedBalancer


@dataclass(frozen=True, slots=True)
class ChallengeTarget:
    """ACME HTTP-01: ``/.well-known/acme-challenge/<token>`` answered from the resolvers' tokens, above every
    other router and before any redirect, so a redirect to HTTPS never breaks validation."""

    router: str
    lookup: Any  # Callable[[str], str | None]: token → key authorization


CHALLENGE_PREFIX = "/.well-known/acme-challenge/"


@dataclass(frozen=True, slots=True)
class RedirectTarget:
    """An entry point's ``http.redirections``: answer every request with a redirect."""

    router: str
    scheme: str
    port: str | None  # None: the default port of the scheme
    permanent: bool


class _Sent:
    """Tells aiohttp the response was already written to the transport by the proxy itself."""

    __slots__ = ("keep_alive",)

    def __init__(self, keep_alive: bool) -> None:
        self.keep_alive = keep_alive

    async def prepare(self, request: Any) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


_SENT_KEEP = _Sent(True)
_SENT_CLOSE = _Sent(False)


def _simple(status: int, body: str, close: bool, extra: bytes = b"") -> bytes:
    data = body.encode()
    phrase = HTTPStatus(status).phrase
    return (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\n".encode()
        + extra
        + (b"Connection: close\r\n" if close else b"")
        + b"\r\n"
        + data
    )


_CANNED: dict[tuple[int, bool], bytes] = {}
_BODIES = {
    400: "400 Bad Request\n",
    404: "404 page not found\n",
    502: "502 Bad Gateway\n",
    503: "503 Service Unavailable\n",
    504: "504 Gateway Timeout\n",
}
for _status, _body in _BODIES.items():
    for _close in (False, True):
        _CANNED[(_status, _close)] = _simple(_status, _body, _close)


def _parse_cookies(headers: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in headers.getall("Cookie", ()):
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(value)
        except Exception:
            continue
        for k, morsel in jar.items():
            out.setdefault(k, morsel.value)
    return out


class _TunnelFeeder:
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


class EntryPointHandler:
    """The request handler of one entry point; ``table`` is swapped whole when the config changes."""

    def __init__(
        self,
        entry_point: EntryPoint,
        pool: Pool,
        access_log: AccessLog | None = None,
        scheme: str = "http",
    ) -> None:
        self.entry_point = entry_point
        self.pool = pool
        self.access_log = access_log
        self.scheme = scheme
        self.scheme_b = scheme.encode()
        self.port_b = b""
        self.table = RoutingTable(())
        self.trusted = TrustedNetworks(entry_point.trusted_ips, entry_point.forwarded_insecure)
        self.read_timeout = entry_point.read_timeout or None
        self.write_timeout = entry_point.write_timeout or None

    def set_port(self, port: int) -> None:
        self.port_b = str(port).encode()

    # -- entry ----------------------------------------------------------------------------------------

    async def __call__(self, request: Any) -> _Sent:
        msg = request._message
        transport = request.transport
        if transport is None:
            return _SENT_CLOSE
        if self.access_log is not None:
            request._cache["dockroute_t0"] = time.monotonic()
        close = msg.should_close
        try:
            authority, raw_path, query = split_target(msg.path)
            path = normalize_path(raw_path)
        except BadTarget as exc:
            return self._reply(request, transport, 400, True, None, f"bad request target: {exc}")
        headers = msg.headers
        host_header = authority if authority is not None else headers.get("Host", "")
        peer = transport.get_extra_info("peername")
        client_ip = peer[0] if peer else ""
        info = RequestInfo(msg.method, normalize_host(host_header), path, query, headers, client_ip)
        route = self.table.lookup(info)
        if route is None:
            return self._reply(request, transport, 404, close, info, "no router matched")
        target = route.target
        if type(target) is RedirectTarget:
            return self._redirect(request, transport, info, target, close)
        if type(target) is ChallengeTarget:
            return self._challenge(request, transport, info, target, close)
        return await self._forward(request, transport, msg, info, target, host_header, close)

    # -- simple answers -------------------------------------------------------------------------------

    def _reply(
        self,
        request: Any,
        transport: Any,
        status: int,
        close: bool,
        info: RequestInfo | None,
        why: str,
        target: ServiceTarget | None = None,
        up: Any = None,
    ) -> _Sent:
        data = _CANNED[(status, close)]
        if not transport.is_closing():
            transport.write(data)
        if self.access_log is not None:
            self._log(request, info, status, len(data), target.router if target else None, up, why)
        return _SENT_CLOSE if close else _SENT_KEEP

    def _challenge(
        self, request: Any, transport: Any, info: RequestInfo, target: ChallengeTarget, close: bool
    ) -> _Sent:
        answer = target.lookup(info.path[len(CHALLENGE_PREFIX) :])
        if answer is None:
            return self._reply(request, transport, 404, close, info, "unknown ACME challenge token")
        body = answer.encode()
        transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        return _SENT_CLOSE if close else _SENT_KEEP

    def _redirect(
        self, request: Any, transport: Any, info: RequestInfo, target: RedirectTarget, close: bool
    ) -> _Sent:
        host = info.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        port = f":{target.port}" if target.port else ""
        location = f"{target.scheme}://{host}{port}{info.path}" + (
            f"?{info.raw_query}" if info.raw_query else ""
        )
        if target.permanent:
            status = 301 if info.method in ("GET", "HEAD") else 308
        else:
            status = 302 if info.method in ("GET", "HEAD") else 307
        body = HTTPStatus(status).phrase + "\n"
        loc = location.encode("utf-8", "surrogateescape")
        data = _simple(status, body, close, b"Location: " + loc + b"\r\n")
        if not transport.is_closing():
            transport.write(data)
        if self.access_log is not None:
            self._log(request, info, status, len(data), target.router, None, None)
        return _SENT_CLOSE if close else _SENT_KEEP

    # -- proxying -------------------------------------------------------------------------------------

    async def _forward(
        self,
        request: Any,
        transport: Any,
        msg: Any,
        info: RequestInfo,
        target: ServiceTarget,
        host_header: str,
        close: bool,
    ) -> _Sent:
        headers = msg.headers
        balancer = target.balancer
        set_cookies: list[str] | None = None
        cookies: dict[str, str] | None = None
        while type(balancer) is WeightedBalancer:
            if balancer.sticky is not None and cookies is None:
                cookies = _parse_cookies(headers)
            child = balancer.pick_child(cookies)
            if child is None:
                return self._reply(request, transport, 503, close, info, "no available server")
            sc = balancer.set_cookie_header(child)
            if sc:
                (set_cookies := set_cookies or []).append(sc)
            balancer = child
        if balancer.sticky is not None and cookies is None:
            cookies = _parse_cookies(headers)
        up = balancer.pick(cookies)
        if up is None:
            return self._reply(
                request, transport, 503, close, info, f"service {target.service}: no available server"
            )

        # The request head, everything but the request line's Host, built once for every attempt.
        raw = msg.raw_headers
        tokens = connection_tokens(raw) if "Connection" in headers else frozenset()
        trusted = self.trusted.trusts(info.client_ip) if self.trusted else False
        lines: list[bytes] = []
        append = lines.append
        for name, value in raw:
            ln = name.lower()
            if ln in REQUEST_DROP or ln in FORWARDED or (tokens and ln in tokens):
                continue
            append(name + b": " + value + b"\r\n")
        # Only WebSocket is tunnelled: aiohttp's parser switches to raw mode for it alone (for other
        # protocols, h2c say, it would drop the bytes that follow), so any other Upgrade is proxied as a
        # plain request without its hop-by-hop Upgrade header.
        upgrade = msg.upgrade and headers.get("Upgrade", "").lower() == "websocket"
        if upgrade:
            append(b"Connection: Upgrade\r\nUpgrade: websocket\r\n")
        has_body = False
        chunked = msg.chunked
        if chunked:
            has_body = True
            append(b"Transfer-Encoding: chunked\r\n")
        else:
            cl = headers.get("Content-Length")
            if cl is not None:
                append(b"Content-Length: " + cl.encode() + b"\r\n")
                has_body = cl != "0"
        append(self._forwarded(headers, info.client_ip, host_header, trusted))
        path = info.path
        if info.raw_query:
            path = path + "?" + info.raw_query
        request_line = (
            msg.method.encode() + b" " + path.encode("utf-8", "surrogateescape") + b" HTTP/1.1\r\nHost: "
        )
        tail = b"".join(lines) + b"\r\n"
        pass_host = balancer.pass_host_header
        orig_host = host_header.encode("latin-1", "replace")
        expect_continue = headers.get("Expect", "").lower() == "100-continue"

        loop = asyncio.get_running_loop()
        tried: set[Any] | None = None
        fresh = False
        head_request = msg.method == "HEAD"
        # Go's isReplayable, as Traefik: only a request that is safe to send twice is retried when a
        # reused keep-alive connection turns out dead (the backend may have acted on it already).
        replayable = msg.method in _REPLAYABLE or any(h in headers for h in _IDEMPOTENCY_HEADERS)
        while True:
            try:
                if fresh:
                    conn, reused = await self.pool.connect(up.key), False
                else:
                    conn, reused = await self.pool.acquire(up.key)
            except ConnectFailed as exc:
                balancer.mark_failed(up)
                if tried is None:
                    tried = set()
                tried.add(up)
                nxt = balancer.pick(cookies, exclude=tried)
                if nxt is None:
                    return self._reply(request, transport, 502, close, info, f"{up.url}: {exc}", target, up)
                up = nxt
                continue
            conn.begin(
                request_line + (orig_host if pass_host else up.host_header_b) + b"\r\n" + tail,
                head_request,
                loop,
            )
            body_task = None
            if has_body:
                if expect_continue and not transport.is_closing():
                    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    expect_continue = False
                body_task = loop.create_task(self._send_body(request, conn, chunked))
            try:
                rht = self.pool.settings_for(up.key[3]).response_header_timeout
                if rht:
                    async with asyncio.timeout(rht):
                        await conn.headers_done  # type: ignore[misc]
                else:
                    await conn.headers_done  # type: ignore[misc]
            except TimeoutError:
                conn.close()
                _cancel(body_task)
                return self._reply(
                    request,
                    transport,
                    504,
                    True,
                    info,
                    f"{up.url}: no response headers in {rht}s",
                    target,
                    up,
                )
            except asyncio.CancelledError:
                # The client went away (aiohttp cancels the handler) or shutdown's grace ran out: the
                # backend request is abandoned with it, not left holding a socket until it answers.
                conn.close()
                _cancel(body_task)
                raise
            except UpstreamError as exc:
                conn.close()
                _cancel(body_task)
                if reused and not conn.got_bytes and not has_body and replayable:
                    fresh = True  # the backend closed an idle keep-alive connection: not its failure
                    continue
                return self._reply(request, transport, 502, True, info, f"{up.url}: {exc}", target, up)
            break
        balancer.mark_ok(up)
        if balancer.sticky is not None and (cookies or {}).get(balancer.cookie_name or "") != up.cookie_value:
            sc = balancer.set_cookie_header(up)
            if sc:
                (set_cookies := set_cookies or []).append(sc)

        if conn.status == 101:
            if upgrade:
                return await self._tunnel(request, transport, conn, info, target, up)
            conn.close()  # switched protocols without being asked to: nothing sane to relay
            _cancel(body_task)
            return self._reply(request, transport, 502, True, info, f"{up.url}: unrequested 101", target, up)
        return await self._respond(
            request, transport, msg, conn, info, target, up, close, set_cookies, body_task
        )

    def _forwarded(self, headers: Any, client_ip: str, host_header: str, trusted: bool) -> bytes:
        xff = client_ip
        xfh = host_header
        xfproto = self.scheme
        xfport = ""
        real = client_ip
        if trusted:
            prior = ", ".join(headers.getall("X-Forwarded-For", ()))
            if prior:
                xff = prior + ", " + client_ip
            xfh = headers.get("X-Forwarded-Host") or xfh
            xfproto = headers.get("X-Forwarded-Proto") or xfproto
            xfport = headers.get("X-Forwarded-Port", "")
            real = headers.get("X-Real-Ip") or real
        if not xfport:
            colon = host_header.rfind(":")
            if colon > 0 and "]" not in host_header[colon:]:
                xfport = host_header[colon + 1 :]
            else:
                xfport = self.port_b.decode()
        return (
            (
                f"X-Forwarded-For: {xff}\r\nX-Forwarded-Host: {xfh}\r\nX-Forwarded-Proto: {xfproto}\r\n"
                f"X-Forwarded-Port: {xfport}\r\nX-Real-Ip: {real}\r\n"
            ).encode("latin-1", "replace")
            + b"X-Forwarded-Server: "
            + _HOSTNAME
            + b"\r\n"
        )

    async def _send_body(self, request: Any, conn: Connection, chunked: bool) -> None:
        content = request.content
        try:
            async with asyncio.timeout(self.read_timeout):
                while True:
                    data = await content.readany()
                    if not data:
                        break
                    if chunked:
                        conn.write(b"%x\r\n%s\r\n" % (len(data), data))
                    else:
                        conn.write(data)
                    await conn.drain()
                if chunked:
                    conn.write(b"0\r\n\r\n")
        except (TimeoutError, UpstreamError, ConnectionError, asyncio.CancelledError):
            conn.close()
        except Exception as exc:  # the client's body stream broke (aiohttp raises its own types)
            log.debug("request body aborted: %s", exc)
            conn.close()

    async def _respond(
        self,
        request: Any,
        transport: Any,
        msg: Any,
        conn: Connection,
        info: RequestInfo,
        target: ServiceTarget,
        up: Any,
        close: bool,
        set_cookies: list[str] | None,
        body_task: asyncio.Task[None] | None,
    ) -> _Sent:
        status = conn.status
        length: bytes | None = None
        tokens: frozenset[bytes] | None = None
        if body_task is not None and not body_task.done():
            # The backend answered before taking the whole request body (a 413, a 401): the client's
            # connection can't carry another request after it, and must be told so in this response.
            close = True
        out = [b"HTTP/1.1 %d %s\r\n" % (status, conn.reason or HTTPStatus(status).phrase.encode())]
        append = out.append
        for name, value in conn.headers:
            ln = name.lower()
            if ln in RESPONSE_DROP:
                if ln == b"content-length":
                    length = value
                elif ln == b"connection":
                    tokens = frozenset(t.strip().lower() for t in value.split(b","))
                continue
            if tokens is not None and ln in tokens:
                continue
            append(name + b": " + value + b"\r\n")
        if tokens:
            out = [line for line in out if line.split(b":", 1)[0].lower() not in tokens]
            append = out.append
        if set_cookies:
            for sc in set_cookies:
                append(b"Set-Cookie: " + sc.encode("latin-1") + b"\r\n")
        bodyless = info.method == "HEAD" or status in (204, 304) or status < 200
        http10 = msg.version[1] == 0
        chunk_out = False
        sent = 0
        if conn.complete:
            body = b"" if bodyless else conn.take_body()
            if length is not None:
                append(b"Content-Length: " + length + b"\r\n")
            elif not bodyless:
                append(b"Content-Length: %d\r\n" % len(body))
            if close:
                append(b"Connection: close\r\n")
            elif http10:
                append(b"Connection: keep-alive\r\n")
            append(b"\r\n")
            append(body)
            data = b"".join(out)
            if transport.is_closing():  # the client left while the backend answered
                close = True
            else:
                transport.write(data)
            sent = len(data)
            reason = None
        else:
            if length is not None:
                append(b"Content-Length: " + length + b"\r\n")
            elif not bodyless:
                if http10:
                    close = True  # no length and no chunking in HTTP/1.0: the end is the close
                else:
                    chunk_out = True
                    append(b"Transfer-Encoding: chunked\r\n")
            if close:
                append(b"Connection: close\r\n")
            elif http10:
                append(b"Connection: keep-alive\r\n")
            append(b"\r\n")
            data = b"".join(out)
            reason = None
            writer = request.writer
            try:
                if transport.is_closing():
                    raise ConnectionResetError("client went away")
                transport.write(data)
                sent = len(data)
                async with asyncio.timeout(self.write_timeout):
                    sent = await self._stream(transport, writer, conn, chunk_out, sent)
            except TimeoutError:
                reason = f"response not written within writeTimeout ({self.write_timeout}s)"
                close = True
                conn.close()
                transport.close()
            except UpstreamError as exc:
                reason = f"{up.url}: {exc} (response truncated)"
                close = True
                transport.abort()  # a reset, so that no client mistakes the cut body for a whole one
            except ConnectionError:
                reason = "client went away during the response"
                close = True
                conn.close()
            except asyncio.CancelledError:
                conn.close()
                _cancel(body_task)
                raise
        if body_task is not None and not body_task.done():
            # The backend answered before reading the whole request body: this connection can't be reused.
            body_task.cancel()
            conn.close()
            close = True
        self.pool.release(conn)
        if self.access_log is not None:
            self._log(request, info, status, sent, target.router, up, reason)
        return _SENT_CLOSE if close else _SENT_KEEP

    async def _stream(self, transport: Any, writer: Any, conn: Connection, chunk_out: bool, sent: int) -> int:
        """Copy the response body to the client as it arrives; the client's pace throttles the backend."""
        while True:
            chunk = await conn.read()
            if not chunk:
                break
            if transport.is_closing():
                raise ConnectionResetError("client went away")
            if chunk_out:
                transport.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            else:
                transport.write(chunk)
            sent += len(chunk)
            if transport.get_write_buffer_size() > _WRITE_HIGH:
                await writer.drain()
        if chunk_out and not transport.is_closing():
            transport.write(b"0\r\n\r\n")
        return sent

    async def _tunnel(
        self,
        request: Any,
        transport: Any,
        conn: Connection,
        info: RequestInfo,
        target: ServiceTarget,
        up: Any,
    ) -> _Sent:
        """After a 101: relay raw bytes both ways until either side closes."""
        out = [b"HTTP/1.1 101 %s\r\n" % (conn.reason or b"Switching Protocols")]
        for name, value in conn.headers:
            out.append(name + b": " + value + b"\r\n")
        out.append(b"\r\n")
        if transport.is_closing():
            conn.close()
            return _SENT_CLOSE
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
            request.protocol.set_parser(_TunnelFeeder(conn, done))
        try:
            while not done.done():
                waiter = loop.create_task(paused.wait())
                await asyncio.wait((done, waiter), return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if paused.is_set() and not done.done():
                    # The client reads slower than the backend sends: resume once its buffer drained.
                    paused.clear()
                    while not done.done() and transport.get_write_buffer_size() > _WRITE_HIGH // 4:
                        await request.writer.drain()
                        if transport.get_write_buffer_size() > _WRITE_HIGH // 4:
                            await asyncio.sleep(0.005)  # aiohttp's protocol may not report the pause
                    if conn.transport is not None and not conn.closed:
                        conn.transport.resume_reading()
        finally:
            conn.close()
        if self.access_log is not None:
            self._log(request, info, 101, 0, target.router, up, None)
        return _SENT_CLOSE

    # -- access log -----------------------------------------------------------------------------------

    def _log(
        self,
        request: Any,
        info: RequestInfo | None,
        status: int,
        size: int,
        router: str | None,
        up: Any,
        reason: str | None,
    ) -> None:
        assert self.access_log is not None
        msg = request._message
        self.access_log.write(
            AccessRecord(
                client=info.client_ip if info else "",
                method=msg.method,
                path=msg.path,
                proto=f"HTTP/{msg.version[0]}.{msg.version[1]}",
                status=status,
                size=size,
                referer=msg.headers.get("Referer", ""),
                user_agent=msg.headers.get("User-Agent", ""),
                router=router or "",
                server=up.url if up is not None else "",
                entry_point=self.entry_point.name,
                host=info.host if info else "",
                reason=reason or "",
                duration=time.monotonic() - request._cache.get("dockroute_t0", time.monotonic()),
            )
        )


def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
