"""The request path's entry: aiohttp's low-level server handler for one entry point.

A request is parsed into a :class:`~router.rules.RequestInfo` (normalised host and path), routed through
the current :class:`~router.table.RoutingTable`, and handed to its route's target, which answers it
itself (:mod:`router.targets`: proxy to a service, ACME HTTP-01, redirect). The proxy writes responses to
the client transport itself and tells aiohttp the exchange is over through a stand-in
(:class:`~router.replies.Sent`); see :mod:`router.forward`, :mod:`router.framing` and
:mod:`router.tunnel` for the proxying itself.

Before routing, one reading of the request: the authority is the absolute-form target's if it has one
(RFC 9112 section 3.2.2), else the Host header (which llhttp requires of HTTP/1.1, as Go does); the host
is lower-cased without its port and trailing dot; the path normalised once (:mod:`router.paths`) and
refused (400) when it holds an encoded character the entry point's ``encodedCharacters`` does not allow.
Routing and forwarding both use that host and that path.

A request about to be sent to the entry point's own address answers ``508 Loop Detected``
(:mod:`router.loops`).

The target classes are re-exported here for the modules that compile configurations into targets.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from router.accesslog import AccessLog, AccessRecord
from router.connection import bad_requests
from router.forwarded_view import info_class
from router.headers import TrustedNetworks
from router.loops import OwnServers
from router.metrics import Metrics, tls_labels
from router.paths import (
    ENCODED_ESCAPES,
    BadTarget,
    denied_escape,
    denied_escapes,
    normalize_host,
    normalize_path,
    split_target,
)
from router.replies import CANNED, SENT_CLOSE, SENT_KEEP, Sent, simple
from router.rules import RequestInfo
from router.settings import EntryPoint
from router.table import RoutingTable
from router.targets import CHALLENGE_PREFIX, SERVED_HERE, ChallengeTarget, RedirectTarget, ServiceTarget
from router.tls_options import OPTIONS_ATTR
from router.upstream import Pool

__all__ = ["CHALLENGE_PREFIX", "ChallengeTarget", "EntryPointHandler", "RedirectTarget", "ServiceTarget"]

# The request's start time, kept in the request's own mapping for the access log and metrics; taken out
# when the request is logged, so that one still there is a request not logged yet (see :meth:`unlogged`).
_T0 = "dockroute_t0"
RETRIES = "dockroute_retries"  # retry attempts of the request (request mapping; the retry middleware's)
# The proxy's own answers that the shared table has not: 421 and 508, each with and without close.
_OWN = {
    (status, close): simple(status, text, close)
    for status, text in ((421, "421 Misdirected Request\n"), (508, "508 Loop Detected\n"))
    for close in (False, True)
}


class _Installed:
    """``handler.table = table``, the swap a reload makes: the table is stored in the handler's own
    ``__dict__`` and the servers of it that are the entry point itself are worked out there and then
    (:class:`router.loops.OwnServers`), never by a request. Only ``__set__`` is defined: reading
    ``handler.table`` finds the instance's value directly, as for a plain attribute (a descriptor without
    ``__get__`` does not take over reads), so the request path pays nothing for it."""

    def __set__(self, handler: EntryPointHandler, table: RoutingTable) -> None:
        handler.__dict__["table"] = table
        handler.own.update(table)


class EntryPointHandler:
    """The request handler of one entry point; ``table`` is swapped whole when the config changes."""

    table = _Installed()

    def __init__(
        self,
        entry_point: EntryPoint,
        pool: Pool,
        access_log: AccessLog | None = None,
        scheme: str = "http",
        metrics: Metrics | None = None,
    ) -> None:
        self.entry_point = entry_point
        self.pool = pool
        # The entry point's observability.accessLogs / .metrics (Traefik v3): false leaves its requests out.
        self.access_log = access_log if entry_point.access_logs else None
        self.metrics = metrics if entry_point.metrics else None
        # Whether each answer is observed (access log, metrics): the one test every place that ends an
        # answer makes before calling :meth:`log`, so that with both off a request pays nothing more.
        self.observe = self.access_log is not None or self.metrics is not None
        self.scheme = scheme
        self._services: dict[str, tuple[str, bool, bool, bool]] = {}
        self._services_of: RoutingTable | None = None
        self.port_b = b""
        # The servers of the current table that are this entry point itself (router.forward: 508).
        self.own = OwnServers()
        self.table = RoutingTable(())
        self.trusted = TrustedNetworks(entry_point.trusted_ips, entry_point.forwarded_insecure)
        # RequestInfo whose ``via`` is this handler: what rules on X-Forwarded-*/X-Real-Ip need
        # (router.forwarded_view), carried by the class rather than stored per request.
        self.info_class = info_class(self)
        self.read_timeout = entry_point.read_timeout or None
        self.write_timeout = entry_point.write_timeout or None
        # The escapes refused in a path (http.encodedCharacters: those not allowed), upper case.
        self.denied = denied_escapes(entry_point.allowed_encoded)
        self.sanitize = entry_point.sanitize_path
        allow = f"entryPoints.{entry_point.name}.http.encodedCharacters"
        self.encoded_why = {
            esc: f"encoded {esc} in the path, allowed by {allow}.{key}"
            for key, esc in (*ENCODED_ESCAPES.items(), ("allowEncodedBackSlash", "\\"))
        }

    def set_port(self, port: int, host: str | None = None) -> None:
        """The port the entry point listens on, once bound on ``host`` (None: every address), as
        :func:`router.server.parse_address` read the address: the loop check looks at it again."""
        self.port_b = str(port).encode()
        self.own.bound(host, port, self.table)

    async def __call__(self, request: Any) -> Sent:
        # The parsed head, read once (aiohttp's ``_message``; router.server checks it exists at start).
        msg = request._message
        transport = request.transport
        if transport is None:
            return SENT_CLOSE
        if self.observe:
            request[_T0] = time.monotonic()
        close = msg.should_close
        try:
            authority, raw_path, query = split_target(msg.path)
            path = normalize_path(raw_path, self.sanitize)
        except BadTarget as exc:
            return self.reply(request, transport, 400, True, None, f"bad request target: {exc}")
        if self.denied and (esc := denied_escape(path, self.denied)):
            why = self.encoded_why[esc]  # names the key that allows it: logged, rate-limited
            bad_requests.note(request.protocol.client_ip, why)
            return self.reply(request, transport, 400, True, None, why)
        headers = msg.headers
        if msg.chunked and headers.get("Transfer-Encoding", "").lower() != "chunked":
            # llhttp takes a list ending in chunked ("gzip, chunked"); forwarded, its other codings would
            # be lost. Go (Traefik) answers 501 to any Transfer-Encoding but one chunked.
            return self.reply(request, transport, 501, True, None, "unsupported Transfer-Encoding")
        # RFC 9112 section 3.2.2: the absolute-form authority replaces Host (as in Go, an empty one does
        # not). An HTTP/1.1 request without Host never gets here: llhttp answers it 400.
        host_header = authority or headers.get("Host", "")
        client_ip = request.protocol.client_ip  # the connection's (router.connection): PROXY-aware
        info = self.info_class(
            msg.method, normalize_host(host_header), path, query, headers, client_ip, host_header
        )
        table = self.table
        route = table.lookup(info)
        if route is None:
            return self.reply(request, transport, 404, close, info, "no router matched")
        if table.options_in_use and self._misdirected(transport, route.tls_options):
            why = "TLS options of the router differ"
            return self.reply(request, transport, 421, close, info, why, route.target)
        try:
            sent = await route.target.handle(self, request, transport, msg, info, host_header, close)
        except asyncio.CancelledError:
            # The client went away (aiohttp cancels the handler) or shutdown's grace ran out before an
            # answer was written: Traefik's 499 (StatusClientClosedRequest). A target that had started
            # its answer logged it with the status and bytes sent already.
            if self.observe and _T0 in request:
                router = getattr(route.target, "router", route.name)
                self.log(request, info, 499, 0, router, None, "client closed the request before the answer")
            raise
        if sent.keep_alive and not request.content.is_eof():
            # Answered before the request body arrived whole (a redirect or a 401 to a client waiting for
            # 100 Continue): the rest of the connection cannot be told from that body, so it closes.
            return SENT_CLOSE
        return sent

    @staticmethod
    def _misdirected(transport: Any, options: str | None) -> bool:
        """Traefik's SNI check, per router: the route's TLS options differ from those the connection was
        made under (chosen by its SNI before the handshake), e.g. a request for an mTLS router sent over a
        connection that skipped the client-certificate check by naming another host in its SNI, whatever
        the Host header or the rule's shape. A connection whose options are unknown, or were changed by a
        reload since it was made, is misdirected."""
        sslobj = transport.get_extra_info("ssl_object")
        made_under = getattr(sslobj.context, OPTIONS_ATTR, None) if sslobj is not None else None
        return made_under is None or made_under.name != options or not made_under.current

    def reply(
        self,
        request: Any,
        transport: Any,
        status: int,
        close: bool,
        info: RequestInfo | None,
        why: str,
        target: Any = None,
        up: Any = None,
    ) -> Sent:
        """Answer with the fixed error page for ``status``; ``why`` goes to the access log only.
        ``target``: the route's target (its router is counted), ``up``: the server that failed."""
        if not close and not request.content.is_eof():
            close = True  # the body was never read: the connection cannot carry another request
        data = CANNED.get((status, close)) or _OWN[(status, close)]
        if request._message.method == "HEAD":
            data = data[: data.index(b"\r\n\r\n") + 4]  # the head alone, its Content-Length a GET's
        if not transport.is_closing():
            transport.write(data)
        if self.observe:
            size = len(data) - data.index(b"\r\n\r\n") - 4  # the body's bytes only (Traefik's size)
            self.log(request, info, status, size, target.router if target is not None else None, up, why)
        return SENT_CLOSE if close else SENT_KEEP

    def log(
        self,
        request: Any,
        info: RequestInfo | None,
        status: int,
        size: int,
        router: str | None,
        up: Any,
        reason: str | None,
    ) -> None:
        """The one observation point of an answered request (callers check ``observe`` first): its
        access-log record and its metrics. ``size``: the body's bytes sent to the client (Traefik's
        DownstreamContentSize); ``up``: the server that answered, if a backend did."""
        now = time.monotonic()
        duration = now - request.pop(_T0, now)  # taken out: this request is logged (see unlogged)
        router = router or ""
        service, internal, log_it, count_it = self.route_of(router) if router else _NO_ROUTE
        msg = request._message
        headers = msg.headers
        # Traefik's service metrics and ServiceName sit in front of each server: a request counts for
        # its service only once a server was asked (not a basicAuth 401, nor a 503 "no available server").
        served = up is not None
        tls = tls_labels(request.transport) if self.scheme == "https" else None
        received = request.content.total_bytes  # body bytes read off the connection (Traefik's size)
        metrics = self.metrics
        if metrics is not None and count_it and (not internal or metrics.add_internals):
            ep = self.entry_point.name
            metrics.observe(
                ep, router, service, msg.method, headers, status, duration, received, size, served
            )
            if tls is not None:
                metrics.observe_tls(ep, router, service, *tls, served)
            if service and (retries := request.get(RETRIES)):
                metrics.retried(service, retries)
        access_log = self.access_log
        if (
            access_log is not None
            and log_it
            and (not internal or access_log.add_internals)
            and access_log.keeps(status, request.get(RETRIES, 0), duration)  # before making the record
        ):
            access_log.emit(
                self._record(
                    request, msg, info, status, size, router, service if served else "", up, reason,
                    duration, received, tls,
                )
            )  # fmt: skip

    def unlogged(self, request: Any) -> bool:
        """Whether ``request`` still has to be logged (observation on, and :meth:`log` not called yet)."""
        return self.observe and _T0 in request

    def _record(
        self,
        request: Any,
        msg: Any,
        info: RequestInfo | None,
        status: int,
        size: int,
        router: str,
        service: str,
        up: Any,
        reason: str | None,
        duration: float,
        received: int,
        tls: tuple[str, str] | None,
    ) -> AccessRecord:
        headers = msg.headers
        proto = request.protocol  # its client address: the PROXY header's source when one was used
        client = proto.client_ip
        return AccessRecord(
            client=client,
            method=msg.method,
            path=msg.path if msg.path[:1] == "/" else _origin_form(msg.path),
            proto=f"HTTP/{msg.version[0]}.{msg.version[1]}",
            status=status,
            size=size,
            referer=headers.get("Referer", ""),
            user_agent=headers.get("User-Agent", ""),
            router=router,
            server=up.url if up is not None else "",
            entry_point=self.entry_point.name,
            host=info.host if info else "",
            reason=reason or "",
            duration=duration,
            service=service,
            client_port=proto.client_port,
            request_addr=headers.get("Host", ""),
            scheme=self.scheme,
            request_size=received,
            headers=headers,
            # Traefik's ClientHost is X-Forwarded-For as it stands after forwardedHeaders: kept from a
            # trusted client only
            forwarded_for=headers.get("X-Forwarded-For", "") if self.trusted.trusts(client) else "",
            retry_attempts=request.get(RETRIES, 0),
            origin=up is not None and up is not SERVED_HERE,
            tls=tls,
        )

    def route_of(self, router: str) -> tuple[str, bool, bool, bool]:
        """(the service a router of the current table leads to, "" for none such as a redirect; whether
        it is internal, left out of the access log and metrics unless ``addInternals``; whether its
        ``observability`` lets it into the access log, and into the metrics), worked out once per
        table."""
        table = self.table
        if table is not self._services_of:
            self._services = {}
            for route in table.routes:
                target = route.target
                name = getattr(target, "service", None) or getattr(
                    getattr(target, "final", None), "service", ""
                )
                name = name if isinstance(name, str) else ""
                key = getattr(target, "router", route.name)
                internal = name.endswith("@internal") or key.endswith("@internal")
                self._services[key] = (name, internal, route.access_logs, route.metrics)
            self._services_of = table
        found = self._services.get(router)
        return found if found is not None else ("", router.endswith("@internal"), True, True)


_NO_ROUTE = ("", False, True, True)


def _origin_form(target: str) -> str:
    """``http://a.test/x?y`` → ``/x?y``: the access log's RequestPath is the URL's path and query, as
    Traefik's (``*`` and anything unparsable stay as sent)."""
    scheme, sep, rest = target.partition("://")
    if not sep or "/" in scheme:
        return target
    slash = rest.find("/")
    query = rest.find("?")
    cut = min(i for i in (slash, query, len(rest)) if i >= 0)
    tail = rest[cut:]
    return tail if tail.startswith("/") else "/" + tail
