"""Services dockroute serves itself: ``api@internal``, ``dashboard@internal``, ``ping@internal``,
``prometheus@internal``, ``noop@internal`` (Traefik's internal services).

A router reaches one as it reaches any service (``service: api@internal``), so users put their own rule,
TLS and middlewares (``basicAuth``) in front, exactly as in Traefik. The app hands the compile a mapping
internal service name → exchange handler (:func:`router.compile.compile_config`'s ``internal``); a name
absent from it (``api@internal`` without an ``api`` section) is a service that does not exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from router.exchange import Exchange, Handler, answer
from router.replies import Sent
from router.rules import RequestInfo
from router.targets import MiddlewareTarget

if TYPE_CHECKING:
    from router.proxy import EntryPointHandler

__all__ = ["INTERNAL_SERVICES", "InternalTarget", "noop"]

# Traefik's internal services (and the order its API lists them in)
INTERNAL_SERVICES = (
    "api@internal",
    "dashboard@internal",
    "noop@internal",
    "ping@internal",
    "prometheus@internal",
)

InternalHandlers = Mapping[str, Handler]


@dataclass(frozen=True, slots=True)
class InternalTarget:
    """A router's destination served by dockroute itself: each request becomes an exchange handed to
    ``serve`` (so the router's middlewares wrap it as they wrap a service)."""

    router: str
    service: str
    serve: Handler

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
        return MiddlewareTarget(self.router, self.serve, self, (), self.serve).handle(
            ep, request, transport, msg, info, host_header, close
        )


async def noop(ex: Exchange) -> None:
    """``noop@internal``: Traefik's empty handler, a 200 with no body (the service of redirect-only
    routers)."""
    await answer(ex, 200, b"", content_type=None)
