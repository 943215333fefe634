"""What a router leads to. Each kind of target answers its requests itself.

The routing table maps a request to a route whose ``target`` is one of these; the entry point's handler
calls ``target.handle(handler, request, transport, msg, info, host_header, close)`` and awaits what it
returns, without asking what kind it is. A new kind of target is a new class with that method.

- :class:`ServiceTarget`: proxy to one of a service's servers (:func:`router.forward.forward`);
- :class:`ChallengeTarget`: ACME HTTP-01 tokens, above every other router;
- :class:`RedirectTarget`: an entry point's ``http.redirections``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from router.balancer import ServiceBalancer, WeightedBalancer
from router.forward import forward
from router.replies import SENT_CLOSE, SENT_KEEP, Sent, simple
from router.rules import RequestInfo

if TYPE_CHECKING:
    from router.proxy import EntryPointHandler

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"


@dataclass(frozen=True, slots=True)
class ServiceTarget:
    """A router's compiled destination: the service's balancer."""

    router: str
    service: str
    balancer: ServiceBalancer | WeightedBalancer

    def handle(
        self,
        ep: EntryPointHandler,
        request: Any,
        transport: Any,
        msg: Any,
        info: RequestInfo,
        host_header: str,
        close: bool,
    ) -> Awaitable[Sent]:
        """Proxy the request (the forwarding coroutine itself: no extra frame on the hot path)."""
        return forward(ep, request, transport, msg, info, self, host_header, close)


@dataclass(frozen=True, slots=True)
class ChallengeTarget:
    """ACME HTTP-01: ``/.well-known/acme-challenge/<token>`` answered from the resolvers' tokens, above every
    other router and before any redirect, so a redirect to HTTPS never breaks validation."""

    router: str
    lookup: Callable[[str], str | None]  # token → key authorization

    async def handle(
        self,
        ep: EntryPointHandler,
        request: Any,
        transport: Any,
        msg: Any,
        info: RequestInfo,
        host_header: str,
        close: bool,
    ) -> Sent:
        answer = self.lookup(info.path[len(CHALLENGE_PREFIX) :])
        if answer is None:
            return ep.reply(request, transport, 404, close, info, "unknown ACME challenge token")
        body = answer.encode()
        transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        return SENT_CLOSE if close else SENT_KEEP


@dataclass(frozen=True, slots=True)
class RedirectTarget:
    """An entry point's ``http.redirections``: answer every request with a redirect."""

    router: str
    scheme: str
    port: str | None  # None: the default port of the scheme
    permanent: bool

    async def handle(
        self,
        ep: EntryPointHandler,
        request: Any,
        transport: Any,
        msg: Any,
        info: RequestInfo,
        host_header: str,
        close: bool,
    ) -> Sent:
        host = info.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        port = f":{self.port}" if self.port else ""
        query = f"?{info.raw_query}" if info.raw_query else ""
        location = f"{self.scheme}://{host}{port}{info.path}{query}"
        if self.permanent:
            status = 301 if info.method in ("GET", "HEAD") else 308
        else:
            status = 302 if info.method in ("GET", "HEAD") else 307
        body = HTTPStatus(status).phrase + "\n"
        loc = location.encode("utf-8", "surrogateescape")
        data = simple(status, body, close, b"Location: " + loc + b"\r\n")
        if not transport.is_closing():
            transport.write(data)
        if ep.access_log is not None:
            ep.log(request, info, status, len(data), self.router, None, None)
        return SENT_CLOSE if close else SENT_KEEP
