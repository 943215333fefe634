"""What a router leads to. Each kind of target answers its requests itself.

The routing table maps a request to a route whose ``target`` is one of these; the entry point's handler
calls ``target.handle(handler, request, transport, msg, info, host_header, close)`` and awaits what it
returns, without asking what kind it is. A new kind of target is a new class with that method.

- :class:`ServiceTarget`: proxy to one of a service's servers (:func:`router.forward.forward`);
- :class:`ChallengeTarget`: ACME HTTP-01 tokens, above every other router;
- :class:`RedirectTarget`: an entry point's ``http.redirections``;
- :class:`MiddlewareTarget`: a route with middlewares, which run before one of the above (its ``serve``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from router.balancer import ServiceBalancer, WeightedBalancer
from router.exchange import Exchange, Handler, answer
from router.forward import forward, forward_exchange
from router.replies import CANNED, SENT_CLOSE, SENT_KEEP, Sent, error_body, simple
from router.rules import RequestInfo

if TYPE_CHECKING:
    from router.proxy import EntryPointHandler

log = logging.getLogger("dockroute.proxy")

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"


class _ServedHere:
    """The ``up`` a static service's answers are logged with: its files are its servers, so it counts at
    the service level (a request counts for a service once one of its servers answers), with no URL."""

    __slots__ = ()
    url = ""


SERVED_HERE = _ServedHere()


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

    def serve(self, ex: Exchange) -> Awaitable[None]:
        """The end of a middleware chain: proxy the request as the middlewares left it."""
        return forward_exchange(ex, self)


# token → key authorization; an awaitable when it must be read off the loop (another replica's token)
ChallengeLookup = Callable[[str], "str | None | Awaitable[str | None]"]


@dataclass(frozen=True, slots=True)
class ChallengeTarget:
    """ACME HTTP-01: ``/.well-known/acme-challenge/<token>`` answered from the resolvers' tokens, above every
    other router and before any redirect, so a redirect to HTTPS never breaks validation."""

    router: str
    lookup: ChallengeLookup

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
        if answer is not None and not isinstance(answer, str):
            answer = await answer
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
        status, location = self.where(info.host, info.method, info.path, info.raw_query)
        body = HTTPStatus(status).phrase + "\n"
        data = simple(
            status, body, close, b"Location: " + location.encode("utf-8", "surrogateescape") + b"\r\n"
        )
        if not transport.is_closing():
            transport.write(data)
        if ep.observe:
            ep.log(request, info, status, len(body.encode()), self.router, None, None)
        return SENT_CLOSE if close else SENT_KEEP

    def where(self, host: str, method: str, path: str, raw_query: str) -> tuple[int, str]:
        """(status, Location) of the redirect for a request: 301/302 for GET and HEAD, 308/307 otherwise."""
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        port = f":{self.port}" if self.port else ""
        query = f"?{raw_query}" if raw_query else ""
        if self.permanent:
            status = 301 if method in ("GET", "HEAD") else 308
        else:
            status = 302 if method in ("GET", "HEAD") else 307
        return status, f"{self.scheme}://{host}{port}{path}{query}"

    async def serve(self, ex: Exchange) -> None:
        """The end of an entry point's middlewares: the redirect, through them."""
        status, location = self.where(ex.host, ex.method, ex.path, ex.raw_query)
        await answer(ex, status, HTTPStatus(status).phrase + "\n", [("Location", location)])


@dataclass(frozen=True, slots=True)
class MiddlewareTarget:
    """A route with middlewares: each request becomes an :class:`~router.exchange.Exchange` handed to the
    chain composed at compile time (``handler``), which ends in ``final.serve``."""

    router: str
    handler: Handler
    final: Any  # the target the chain ends in (for the API and tests)
    # ``handler`` split (router.middlewares.split): its leading request-side steps, run here, then the
    # rest; by default the whole handler
    steps: tuple[Any, ...] = ()
    after: Handler | None = None

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
        ex = Exchange(ep, request, transport, msg, info, host_header, close, self.router)
        failed = False
        try:
            for step in self.steps:
                pending = step(ex)
                if pending is not None and not await pending:
                    break
            else:
                await (self.after or self.handler)(ex)
            if not ex.started:  # a middleware returned without answering: a bug, never a hang
                log.error(
                    "router %s: its middlewares gave no answer to %s %s", self.router, info.method, info.path
                )
                ex.close = True
                await answer(ex, 500, "500 Internal Server Error\n", reason="no answer from the middlewares")
        except (ConnectionError, TimeoutError):
            ex.close = True  # the client went away, or was too slow to take the answer
            transport.close()
        except Exception:
            log.exception("router %s: a middleware failed on %s %s", self.router, info.method, info.path)
            ex.close = True
            if not ex.started and not transport.is_closing():
                transport.write(CANNED[(500, True)])
                failed = True
            else:
                transport.abort()
        finally:
            close = ex.close
            if ep.observe and ep.unlogged(request):
                self._log_unfinished(ex, failed)
            ex.release()
        return SENT_CLOSE if close else SENT_KEEP

    def _log_unfinished(self, ex: Exchange, failed: bool) -> None:
        """Log an answer the chain did not end (its sink's ``end`` logs the others): cut short (a backend
        reset mid-body, a client gone, a file changed) with the status and bytes the client got, or the
        500 written after a middleware failed. An answer never started on a cancelled request is left to
        the entry point's 499."""
        sink = ex.client_sink
        if sink.started:
            why = ex.reason or "response cut short"
            ex.ep.log(ex.request, ex.info, sink.status, sink.sent, self.router, ex.upstream, why)
        elif failed:
            ex.ep.log(
                ex.request, ex.info, 500, len(error_body(500)), self.router, None, "a middleware failed"
            )
