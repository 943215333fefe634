"""TCP middlewares: ``ipAllowList`` (``ipWhiteList``) and ``inFlightConn``, as Traefik's.

A TCP middleware sees only the connection: its client address. The allow-list uses the HTTP middleware's
:class:`~router.middlewares.source.Checker` (one implementation of "is this address in these ranges");
``inFlightConn`` counts the open connections of each client IP through the routers using it and closes a
connection over ``amount`` at once. A refused connection is closed without a byte, as Traefik does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from discover.model_tcp import TCPInFlightConn, TCPIPAllowList, TCPMiddleware
from router.middlewares.source import Checker

log = logging.getLogger("dockroute.tcp")

# admit(client_ip) → None to refuse, or a release callable to run when the connection ends
Admit = Callable[[str], Callable[[], None] | None]


def _nothing() -> None:
    return None


class AllowList:
    __slots__ = ("name", "checker")

    def __init__(self, name: str, options: TCPIPAllowList) -> None:
        self.name = name
        self.checker = Checker(options.source_range)

    def __call__(self, ip: str) -> Callable[[], None] | None:
        if self.checker.contains(ip) is True:
            return _nothing
        log.debug("middleware %s: connection from %s refused", self.name, ip)
        return None


class InFlightConn:
    __slots__ = ("name", "amount", "open")

    def __init__(self, name: str, options: TCPInFlightConn) -> None:
        self.name = name
        self.amount = options.amount
        self.open: dict[str, int] = {}

    def __call__(self, ip: str) -> Callable[[], None] | None:
        count = self.open.get(ip, 0)
        if count >= self.amount:
            log.debug("middleware %s: max number of connections reached for %s", self.name, ip)
            return None
        self.open[ip] = count + 1

        def release() -> None:
            left = self.open.get(ip, 0) - 1
            if left > 0:
                self.open[ip] = left
            else:
                self.open.pop(ip, None)

        return release


def build_middleware(mw: TCPMiddleware, previous: Admit | None) -> Admit | str:
    """The middleware's check, or why it cannot be built. An ``inFlightConn`` whose options did not change
    keeps its counters (``previous``) across reloads: open connections still count."""
    if mw.error:
        return mw.error
    if isinstance(mw.options, TCPIPAllowList):
        return AllowList(mw.name, mw.options)
    if isinstance(mw.options, TCPInFlightConn):
        if isinstance(previous, InFlightConn) and previous.amount == mw.options.amount:
            return previous
        return InFlightConn(mw.name, mw.options)
    return f"middleware type {mw.type} is not supported for TCP"
