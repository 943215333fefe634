"""The request path's entry: aiohttp's low-level server handler for one entry point.

A request is parsed into a :class:`~router.rules.RequestInfo` (normalised host and path), routed through
the current :class:`~router.table.RoutingTable`, and handed to its route's target, which answers it
itself (:mod:`router.targets`: proxy to a service, ACME HTTP-01, redirect). The proxy writes responses to
the client transport itself and tells aiohttp the exchange is over through a stand-in
(:class:`~router.replies.Sent`); see :mod:`router.forward`, :mod:`router.framing` and
:mod:`router.tunnel` for the proxying itself.

The target classes are re-exported here for the modules that compile configurations into targets.
"""

from __future__ import annotations

import time
from typing import Any

from router.accesslog import AccessLog, AccessRecord
from router.headers import TrustedNetworks
from router.paths import BadTarget, normalize_host, normalize_path, split_target
from router.replies import CANNED, SENT_CLOSE, SENT_KEEP, Sent, simple
from router.rules import RequestInfo
from router.settings import EntryPoint
from router.table import RoutingTable
from router.targets import CHALLENGE_PREFIX, ChallengeTarget, RedirectTarget, ServiceTarget
from router.tls_options import OPTIONS_ATTR
from router.upstream import Pool

__all__ = ["CHALLENGE_PREFIX", "ChallengeTarget", "EntryPointHandler", "RedirectTarget", "ServiceTarget"]

_T0 = "dockroute_t0"  # the request's start time, kept in the request's own mapping for the access log
_MISDIRECTED = {close: simple(421, "421 Misdirected Request\n", close) for close in (False, True)}


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
        self.port_b = b""
        self.table = RoutingTable(())
        self.trusted = TrustedNetworks(entry_point.trusted_ips, entry_point.forwarded_insecure)
        self.read_timeout = entry_point.read_timeout or None
        self.write_timeout = entry_point.write_timeout or None

    def set_port(self, port: int) -> None:
        self.port_b = str(port).encode()

    async def __call__(self, request: Any) -> Sent:
        # The parsed head, read once (aiohttp's ``_message``; router.server checks it exists at start).
        msg = request._message
        transport = request.transport
        if transport is None:
            return SENT_CLOSE
        if self.access_log is not None:
            request[_T0] = time.monotonic()
        close = msg.should_close
        try:
            authority, raw_path, query = split_target(msg.path)
            path = normalize_path(raw_path)
        except BadTarget as exc:
            return self.reply(request, transport, 400, True, None, f"bad request target: {exc}")
        headers = msg.headers
        host_header = authority if authority is not None else headers.get("Host", "")
        peer = transport.get_extra_info("peername")
        client_ip = peer[0] if peer else ""
        info = RequestInfo(msg.method, normalize_host(host_header), path, query, headers, client_ip)
        table = self.table
        route = table.lookup(info)
        if route is None:
            return self.reply(request, transport, 404, close, info, "no router matched")
        if table.options_in_use and self._misdirected(transport, route.tls_options):
            return self.reply(request, transport, 421, close, info, "TLS options of the router differ")
        sent = await route.target.handle(self, request, transport, msg, info, host_header, close)
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
        target: ServiceTarget | None = None,
        up: Any = None,
    ) -> Sent:
        """Answer with the fixed error page for ``status``; ``why`` goes to the access log only."""
        if not close and not request.content.is_eof():
            close = True  # the body was never read: the connection cannot carry another request
        data = CANNED[(status, close)] if status != 421 else _MISDIRECTED[close]
        if not transport.is_closing():
            transport.write(data)
        if self.access_log is not None:
            self.log(request, info, status, len(data), target.router if target else None, up, why)
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
        """One access-log record (the caller checked that there is an access log)."""
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
                duration=time.monotonic() - request.get(_T0, time.monotonic()),
            )
        )
