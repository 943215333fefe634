"""Proxying one request to a service: pick a server, build the request head once, send it (retrying where
Traefik does), then hand the answer to :mod:`router.framing` or, after a 101, to :mod:`router.tunnel`.

Failure policy (Traefik's): a connection that fails before anything was sent is retried on the next
server, which is taken out for a while (passive health); nothing reachable → 502, a timeout → 504, no
server available at all → 503. A reused keep-alive connection found dead is retried on a fresh one only
for a request that is safe to send twice.
"""

from __future__ import annotations

import asyncio
import logging
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any

from router.balancer import ServiceBalancer
from router.body_pace import paced
from router.exchange import answer, raw_edits
from router.forwarded_view import HOSTNAME, entry_values, is_websocket_upgrade
from router.framing import abandon, relay, respond
from router.headers import (
    FORWARDED,
    REQUEST_DROP,
    TRUSTED_DROP,
    UNTRUSTED_DROP,
    BadEdit,
    Memo,
    connection_tokens,
    edit_line,
)
from router.replies import Sent, error_body
from router.rules import RequestInfo
from router.tunnel import tunnel
from router.upstream import ConnectFailed, Connection, UpstreamError

if TYPE_CHECKING:
    from router.exchange import Exchange
    from router.proxy import EntryPointHandler
    from router.targets import ServiceTarget

log = logging.getLogger("dockroute.proxy")

_HOSTNAME = HOSTNAME.encode()
_REPLAYABLE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_IDEMPOTENCY_HEADERS = ("Idempotency-Key", "X-Idempotency-Key")


async def forward(
    ep: EntryPointHandler,
    request: Any,
    transport: Any,
    msg: Any,
    info: RequestInfo,
    target: ServiceTarget,
    host_header: str,
    close: bool,
) -> Sent:
    """The whole exchange with the service behind ``target``."""
    picked = _pick(target, msg.headers, info.client_ip)
    if picked is None:
        why = f"service {target.service}: no available server"
        return ep.reply(request, transport, 503, close, info, why, target)
    balancer, up, cookies, set_cookies = picked
    head = _RequestHead(ep, msg, info, host_header)
    sent = await _send(ep, request, transport, msg, head, balancer, up, cookies, None, info.client_ip)
    if type(sent) is Failure:
        why, fup = sent.why, sent.up
        return ep.reply(request, transport, sent.status, close or sent.close, info, why, target, fup)
    conn, up, body_task = sent
    try:  # until the answer is relayed (or the tunnel closes): in flight on ``up`` for p2c and leasttime
        balancer.mark_status(up, conn.status)  # passive health
        if balancer.sticky is not None:
            set_cookies = _stick(balancer, up, cookies, set_cookies)
        if conn.status == 101:
            if head.upgrade:
                return await tunnel(ep, request, transport, conn, info, target, up)
            abandon(conn, body_task)  # switched protocols without being asked to: nothing sane to relay
            return ep.reply(request, transport, 502, True, info, f"{up.url}: unrequested 101", target, up)
        return await respond(
            ep, request, transport, msg, conn, info, target, up, close, set_cookies, body_task
        )
    finally:
        if balancer.tracks:
            balancer.release(up)


async def forward_exchange(ex: Exchange, target: ServiceTarget) -> None:
    """:func:`forward` for a route with middlewares: the request as they left it (``ex.method``,
    ``ex.path``, header edits, a buffered body), the answer through ``ex.sink``. A failure to reach any
    server sets ``ex.failed`` and, unless ``ex.quiet_failures`` (``retry`` trying again), answers it."""
    ep, msg = ex.ep, ex.msg
    picked = _pick(target, msg.headers, ex.info.client_ip)
    if picked is None:
        await answer(ex, 503, error_body(503), reason=f"service {target.service}: no available server")
        return
    balancer, up, cookies, set_cookies = picked
    try:
        head = _RequestHead(ep, msg, ex.info, ex.host_header, ex)
    except BadEdit as exc:
        log.warning("router %s: %s; answered 500", ex.router, exc)
        await answer(ex, 500, error_body(500), reason=str(exc))
        return
    sent = await _send(
        ep, ex.request, ex.transport, msg, head, balancer, up, cookies, ex.body, ex.info.client_ip
    )
    if type(sent) is Failure:
        ex.upstream, ex.failed = sent.up, sent.why
        ex.close = ex.close or sent.close
        if not ex.quiet_failures:
            await answer(ex, sent.status, error_body(sent.status), reason=sent.why)
        return
    conn, up, body_task = sent
    ex.upstream = up
    try:  # in flight on ``up`` until the answer is relayed, for p2c and leasttime
        balancer.mark_status(up, conn.status)  # passive health
        if balancer.sticky is not None:
            set_cookies = _stick(balancer, up, cookies, set_cookies)
        if conn.status == 101:
            if head.upgrade:  # a WebSocket: relayed raw; response middlewares do not apply to a tunnel
                ex.client_sink.started = ex.client_sink.ended = True
                ex.close = True
                await tunnel(ep, ex.request, ex.transport, conn, ex.info, target, up)
                return
            abandon(conn, body_task)
            ex.close = True
            await answer(ex, 502, error_body(502), reason=f"{up.url}: unrequested 101")
            return
        edits = raw_edits(ex)
        if edits is not None:
            # No middleware reads the answer (only the request was theirs: auth, limits, paths; or they set
            # fixed headers): relay it as raw bytes, as a route without middlewares does, edits applied.
            client = ex.client_sink
            client.started = client.ended = True
            sent = await respond(
                ep,
                ex.request,
                ex.transport,
                msg,
                conn,
                ex.info,
                target,
                up,
                ex.close,
                set_cookies,
                body_task,
                edits,
            )
            ex.close = not sent.keep_alive
            return
        await relay(ex, conn, up, set_cookies, body_task)
    finally:
        if balancer.tracks:
            balancer.release(up)


def _stick(balancer: Any, up: Any, cookies: dict[str, str] | None, set_cookies: list[str] | None) -> Any:
    """The Set-Cookie values to add so that a sticky client comes back to ``up``."""
    if (cookies or {}).get(balancer.cookie_name or "") != up.cookie_value:
        sc = balancer.set_cookie_header(up)
        if sc:
            (set_cookies := set_cookies or []).append(sc)
    return set_cookies


def _pick(
    target: ServiceTarget, headers: Any, client: str | None = None
) -> tuple[Any, Any, dict[str, str] | None, list[str] | None] | None:
    """(balancer, server, the request's cookies if read, Set-Cookie values to add), or None: nothing up.

    A weighted or failover service is walked down to a leaf; sticky sessions read the cookies only when
    needed."""
    balancer = target.balancer
    set_cookies: list[str] | None = None
    cookies: dict[str, str] | None = None
    while type(balancer) is not ServiceBalancer:  # weighted, failover: a group of services
        if balancer.sticky is not None and cookies is None:
            cookies = _parse_cookies(headers)
        child = balancer.pick_child(cookies)
        if child is None:
            return None
        sc = balancer.set_cookie_header(child)
        if sc:
            (set_cookies := set_cookies or []).append(sc)
        balancer = child
    if balancer.sticky is not None and cookies is None:
        cookies = _parse_cookies(headers)
    up = balancer.pick(cookies, client=client)  # client: the IP hrw hashes
    return None if up is None else (balancer, up, cookies, set_cookies)


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


class Failure:
    """Why no server answered: the status to answer (502, 504), whether the client connection must close
    after it, the reason for the log, and the server last tried."""

    __slots__ = ("status", "close", "why", "up")

    def __init__(self, status: int, close: bool, why: str, up: Any) -> None:
        self.status = status
        self.close = close
        self.why = why
        self.up = up


class _RequestHead:
    """The request head for the backend, built once for every attempt: everything but the Host value,
    which depends on the server (``passHostHeader``). With an exchange (a route with middlewares) the
    method, path, headers and body are the ones the middlewares left."""

    __slots__ = (
        "method",
        "before_host",
        "after_host",
        "orig_host",
        "has_body",
        "chunked",
        "upgrade",
        "expect_continue",
    )

    def __init__(
        self, ep: EntryPointHandler, msg: Any, info: RequestInfo, host_header: str, ex: Exchange | None = None
    ) -> None:
        headers = msg.headers
        raw = msg.raw_headers
        tokens = connection_tokens(raw) if "Connection" in headers else frozenset()
        edits = ex.header_edits if ex is not None else None
        edited, added, edits_forwarded = _request_plan(tuple(edits.items())) if edits else (None, (), False)
        # One set lookup per header decides what is copied: hop-by-hop and framing headers never; the
        # X-Forwarded-* set, in every spelling, only from a trusted peer (see router.headers). What
        # Connection names goes too, before the proxy's own headers are added, so it cannot name those.
        trusted = ep.trusted.trusts(info.client_ip) if ep.trusted else False
        drop = TRUSTED_DROP if trusted else UNTRUSTED_DROP
        lines: list[bytes] = []
        append = lines.append
        for name, value in raw:
            ln = name.lower()
            if ln in drop or (tokens and ln in tokens):
                continue
            if edited and ln in edited:
                continue
            append(name + b": " + value + b"\r\n")
        lines.extend(added)
        # Only WebSocket is tunnelled: aiohttp's parser switches to raw mode for it alone (for other
        # protocols, h2c say, it would drop the bytes that follow), so any other Upgrade is proxied as a
        # plain request without its hop-by-hop Upgrade header.
        self.upgrade = msg.upgrade and is_websocket_upgrade(headers, True)
        if self.upgrade:
            append(b"Connection: Upgrade\r\nUpgrade: websocket\r\n")
        self.has_body = False
        self.chunked = msg.chunked
        if ex is not None and ex.body is not None:
            self.chunked = False  # buffered by a middleware: sent whole, with its length
            if ex.body or msg.chunked or headers.get("Content-Length") is not None:
                append(b"Content-Length: %d\r\n" % len(ex.body))
        elif self.chunked:
            self.has_body = True
            append(b"Transfer-Encoding: chunked\r\n")
        else:
            cl = headers.get("Content-Length")
            if cl is not None:
                append(b"Content-Length: " + cl.encode() + b"\r\n")
                self.has_body = cl != "0"
        forwarded = _forwarded(ep, headers, info.client_ip, host_header, trusted, self.upgrade)
        append(_edited(forwarded, edits, info.client_ip) if edits_forwarded else forwarded)
        if ex is None:
            method, path, query = msg.method, info.path, info.raw_query
        else:
            method, path, query = ex.method, ex.path, ex.raw_query
        if query:
            path = path + "?" + query
        self.method = method
        self.before_host = (
            method.encode() + b" " + path.encode("utf-8", "surrogateescape") + b" HTTP/1.1\r\nHost: "
        )
        self.after_host = b"".join(lines) + b"\r\n"
        self.orig_host = host_header.encode("latin-1", "replace")
        self.expect_continue = self.has_body and headers.get("Expect", "").lower() == "100-continue"

    def for_server(self, balancer: Any, up: Any) -> bytes:
        host = self.orig_host if balancer.pass_host_header else up.host_header_b
        return self.before_host + host + b"\r\n" + self.after_host


def _request_plan(
    items: tuple[tuple[str, tuple[str, str | None]], ...],
) -> _RequestPlan:
    """For a request's header edits (lower-case name → (name, value or None)): the names to drop from the
    client's head (lower-case bytes), the lines to add, and whether an X-Forwarded-* or X-Real-Ip header is
    among them (:func:`_edited` then rewrites the proxy's own). A chain makes the same few edits on every
    request, so each distinct set is worked out once (a bounded table)."""
    plan = _REQUEST_PLANS.get(items)
    if plan is not None:
        return plan
    added = []
    for lname, (name, value) in items:
        # framing and hop-by-hop headers are the proxy's own, never a middleware's (a Content-Length
        # copied from an auth server would smuggle a second request); XFF goes through _edited
        if value is None or lname == "x-forwarded-for" or lname in _NOT_EDITABLE:
            continue
        added.append(edit_line(name, value))  # BadEdit for a line break: nothing cached
    names = frozenset(lname for lname, _ in items)
    plan = (
        frozenset(n.encode("latin-1") for n in names),
        tuple(added),
        not _FORWARDED_NAMES.isdisjoint(names),
    )
    _REQUEST_PLANS.keep(items, plan)
    return plan


_RequestPlan = tuple[frozenset[bytes], tuple[bytes, ...], bool]
_REQUEST_PLANS = Memo(256)  # items → _RequestPlan


def _forwarded(
    ep: EntryPointHandler, headers: Any, client_ip: str, host_header: str, trusted: bool, upgrade: bool
) -> bytes:
    """The X-Forwarded-* and X-Real-Ip lines: the values Traefik's entry point leaves on the request
    (:func:`router.forwarded_view.entry_values`, which rules and middlewares read too; ws/wss for the
    WebSocket upgrade this request is tunnelled as, ``upgrade``), the peer appended to X-Forwarded-For."""
    xff, xfh, xfproto, xfport, real = entry_values(
        ep.scheme, headers, client_ip, host_header, trusted, upgrade
    )
    return (
        (
            f"X-Forwarded-For: {xff + ', ' + client_ip if xff else client_ip}\r\nX-Forwarded-Host: {xfh}\r\n"
            f"X-Forwarded-Proto: {xfproto}\r\nX-Forwarded-Port: {xfport}\r\nX-Real-Ip: {real}\r\n"
        ).encode("latin-1", "replace")
        + b"X-Forwarded-Server: "
        + _HOSTNAME
        + b"\r\n"
    )


_NOT_EDITABLE = frozenset(n.decode() for n in REQUEST_DROP)
_FORWARDED_NAMES = frozenset(n.decode() for n in FORWARDED)


def _edited(block: bytes, edits: dict[str, tuple[str, str | None]], client_ip: str) -> bytes:
    """The X-Forwarded-* lines with a middleware's edits over them (Traefik's middlewares change what its
    entry point set): an edited name is sent as edited (with the other edits) or, removed, not at all; an
    X-Forwarded-For set by a middleware gets the client's address appended, as Go's proxy does."""
    out = []
    for line in block.split(b"\r\n"):
        name = line.partition(b":")[0].decode("latin-1").lower()
        if not line or name not in edits:
            out.append(line)
        elif name == "x-forwarded-for" and edits[name][1] is not None:
            out.append(edit_line("X-Forwarded-For", f"{edits[name][1]}, {client_ip}")[:-2])
    return b"\r\n".join(out)


async def _send(
    ep: EntryPointHandler,
    request: Any,
    transport: Any,
    msg: Any,
    head: _RequestHead,
    balancer: Any,
    up: Any,
    cookies: dict[str, str] | None,
    body: bytes | None = None,
    client: str | None = None,
) -> tuple[Connection, Any, asyncio.Task[str | None] | None] | Failure:
    """Send the request until a server answers with its response head: (connection, server, body task),
    or why not (a 502 or 504 to answer, a 408 when the client's own body was cut). ``body`` is the whole
    request body when a middleware buffered it (sent as it is), else the client's body is streamed;
    ``client`` (its IP) is what ``hrw`` hashes.

    Where the strategy counts them (``balancer.tracks``), the server tried is in flight: moved along to
    the next one tried (:func:`_another`), released on every way out but the answer, which the caller
    releases. One loop, its failure steps in helpers: the common path pays no call more."""
    loop = asyncio.get_running_loop()
    tried: set[Any] | None = None
    fresh = False
    expect_continue = head.expect_continue
    # Go's isReplayable, as Traefik: only a request that is safe to send twice is retried when a
    # reused keep-alive connection turns out dead (the backend may have acted on it already).
    replayable = msg.method in _REPLAYABLE or any(h in msg.headers for h in _IDEMPOTENCY_HEADERS)
    own = ep.own.keys  # servers that are this entry point itself (router.loops): mostly none
    tracked = held = balancer.tracks
    start = balancer.acquire(up) if tracked else 0.0
    try:
        while True:
            if own and up.key in own:
                return Failure(508, False, f"{up.url} is this entry point itself: a loop", up)
            why = None
            if up.unreachable:  # the one test the request path pays: a provider knows it cannot be reached
                why = f"unreachable: {up.unreachable}"
            else:
                try:
                    if fresh:
                        conn, reused = await ep.pool.connect(up.key), False
                    else:
                        conn, reused = await ep.pool.acquire(up.key)
                except ConnectFailed as exc:
                    why = str(exc)
                    balancer.mark_failed(up, why)
            if why is not None:  # another server, if there is one
                tried, nxt, start = _another(balancer, cookies, client, tried, up, why, start)
                if type(nxt) is Failure:
                    return nxt
                up = nxt
                continue
            conn.begin(head.for_server(balancer, up), head.method == "HEAD", loop)
            body_task = None
            if body is not None or head.has_body:
                body_task = _start_body(ep, request, transport, conn, head, body, expect_continue)
                expect_continue = False
            rht = ep.pool.settings_for(up.key[3]).response_header_timeout  # the service's serversTransport
            try:
                if rht:
                    async with asyncio.timeout(rht):
                        await conn.headers_done  # type: ignore[misc]
                else:
                    await conn.headers_done  # type: ignore[misc]
            except (TimeoutError, asyncio.CancelledError, UpstreamError) as exc:
                retry = reused and replayable and not head.has_body
                failure = _head_failed(exc, conn, body_task, balancer, up, rht, retry)
                if failure is None:
                    fresh = True  # the backend closed an idle keep-alive connection: not its failure
                    continue
                return failure
            if tracked:
                balancer.answered(up, start)
                held = False  # the caller releases it once the answer is relayed
            return conn, up, body_task
    finally:
        if held:
            balancer.release(up)


def _head_failed(
    exc: BaseException,
    conn: Connection,
    body_task: asyncio.Task[str | None] | None,
    balancer: Any,
    up: Any,
    rht: float,
    retry: bool,
) -> Failure | None:
    """No response head from ``up`` (``exc``): the exchange is abandoned, and the answer is a 504 (no head
    within the serversTransport's responseHeaderTimeout ``rht``), a 502 (the backend broke the connection),
    both passive failures; a 408 when the connection was ours to cut (the client's body stalled or
    trickled: the client's fault, not the server's, so no failure is counted); ``None`` to try again on a
    fresh connection (``retry``: a reused keep-alive connection found dead before any byte of an answer,
    for a request safe to send twice). A cancellation (the client went away, or shutdown's grace ran out)
    abandons the backend request with it, not leaving it holding a socket until it answers."""
    abandon(conn, body_task)
    if isinstance(exc, asyncio.CancelledError):
        raise exc
    if isinstance(exc, TimeoutError):
        return _failed(balancer, up, 504, f"no response headers in {rht}s")
    cut = (
        body_task.result()
        if body_task is not None and body_task.done() and not body_task.cancelled()
        else None
    )
    if cut is not None:
        return Failure(408, True, f"client: {cut}", up)
    if retry and not conn.got_bytes:
        return None
    return _failed(balancer, up, 502, str(exc))


def _start_body(
    ep: EntryPointHandler,
    request: Any,
    transport: Any,
    conn: Connection,
    head: _RequestHead,
    body: bytes | None,
    expect_continue: bool,
) -> asyncio.Task[str | None] | None:
    """Send the request body after the head: ``body`` whole when a middleware buffered it, else the
    client's streamed by a task (returned), after the ``100 Continue`` the client waits for, if it does
    and it was not sent yet (``expect_continue``: once per request, whichever server is tried)."""
    if body is not None:
        if body:
            conn.write(body)
        return None
    if expect_continue and not transport.is_closing():
        transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    return asyncio.get_running_loop().create_task(_send_body(ep, request, conn, head.chunked))


def _failed(balancer: Any, up: Any, status: int, why: str) -> Failure:
    """A 502 or 504 from ``up`` after the request was sent: a passive failure where
    ``passiveHealthCheck`` counts answers (Traefik's proxy answers it, its checker counts it)."""
    if balancer.counts_answers:
        balancer.mark_failed(up, why)
    return Failure(status, True, f"{up.url}: {why}", up)


def _another(
    balancer: Any,
    cookies: dict[str, str] | None,
    client: str | None,
    tried: set[Any] | None,
    up: Any,
    why: str,
    start: float,
) -> tuple[set[Any], Any, float]:
    """After ``up`` could not be used (``why``): the servers tried so far (made on the first failure, so a
    request that succeeds at once allocates nothing), the next server to try or the 502 to answer, and the
    attempt's start. Where the strategy counts requests in flight, the count moves from ``up`` to the next
    server (``_send`` releases whichever it holds last)."""
    if tried is None:
        tried = set()
    tried.add(up)
    nxt = balancer.pick(cookies, exclude=tried, client=client)
    if nxt is None:
        return tried, Failure(502, False, f"{up.url}: {why}", up), start
    if balancer.tracks:
        balancer.release(up)
        start = balancer.acquire(nxt)
    return tried, nxt, start


async def _send_body(ep: EntryPointHandler, request: Any, conn: Connection, chunked: bool) -> str | None:
    """Copy the client's request body to the backend, within the entry point's readTimeout and at
    :mod:`router.body_pace`'s minimum pace. A body that stalls or trickles is cut, the backend's connection
    with it: the task's result then says why (the client's fault, which :func:`_head_failed` answers 408
    without counting a passive failure against the server); None otherwise."""
    content = request.content
    try:
        with paced(ep.read_timeout, content) as pace:
            while True:
                data = await content.readany()
                if not data:
                    break
                pace.received += len(data)
                if chunked:
                    conn.write(b"%x\r\n%s\r\n" % (len(data), data))
                else:
                    conn.write(data)
                await conn.drain()
            if chunked:
                conn.write(b"0\r\n\r\n")
    except TimeoutError as exc:
        log.debug("%s: cut", exc)
        conn.close()
        return str(exc)
    except (UpstreamError, ConnectionError, asyncio.CancelledError):
        conn.close()
    except Exception as exc:  # the client's body stream broke (aiohttp raises its own types)
        log.debug("request body aborted: %s", exc)
        conn.close()
    return None
