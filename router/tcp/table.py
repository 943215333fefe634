"""The TCP routes of one entry point, and the choice between TCP and HTTP(S) for a connection.

Traefik's ``pkg/server/router/tcp`` Router, as data: for a TLS connection the HTTPS routers whose Host()
names the SNI come first, then the TCP TLS routers (passthrough or terminated) that are not the catch-all
``HostSNI(`*`)``, then an HTTPS router without a Host() (the HTTPS catch-all), then the TCP catch-all, then
HTTPS (404). A connection that is not TLS goes to the first matching non-TLS TCP router, else to HTTP.
When the entry point has non-TLS TCP routers and neither TLS TCP routers nor HTTPS routers, a connection is
matched before the client sends anything (``server_first``): MySQL, SMTP and other protocols where the
server speaks first then work.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.tcp.middlewares import Admit
from router.tcp.rules import ACME_TLS_1, ConnInfo, TCPRule
from router.tcp.service import TCPBalancer

PASSTHROUGH = "passthrough"


@dataclass(frozen=True, slots=True)
class TCPRoute:
    """A routed TCP router on one entry point. ``tls``: None (plain TCP), :data:`PASSTHROUGH`, or the
    TLS options name to terminate with; ``broken``: those options do not exist (connections are closed,
    as Traefik's brokenTLSRouter)."""

    name: str
    priority: int
    rule: TCPRule
    balancer: TCPBalancer
    admits: tuple[Admit, ...] = ()
    tls: str | None = None
    broken: bool = False


def _order(route: TCPRoute) -> tuple[int, str]:
    return (-route.priority, route.name)


class TCPTable:
    """Immutable once built; a reload builds a new one."""

    __slots__ = ("plain", "tls", "https_hosts", "https_catch_all", "https_any", "server_first", "acme_bypass")

    def __init__(
        self,
        routes: list[TCPRoute],
        https_hosts: frozenset[str] = frozenset(),
        https_catch_all: bool = False,
        acme_bypass: bool = False,
    ) -> None:
        ordered = sorted(routes, key=_order)
        self.plain = tuple(r for r in ordered if r.tls is None)
        self.tls = tuple(r for r in ordered if r.tls is not None)
        self.https_hosts = https_hosts
        self.https_catch_all = https_catch_all
        self.https_any = https_catch_all or bool(https_hosts)
        self.server_first = bool(self.plain) and not self.tls and not self.https_any
        self.acme_bypass = acme_bypass  # the entry point's EntryPoint.acme_tls_bypass

    def match_plain(self, info: ConnInfo) -> TCPRoute | None:
        for route in self.plain:
            if route.rule.match(info):
                return route
        return None

    def _https_host(self, sni: str) -> bool:
        if not sni:
            return False
        if sni in self.https_hosts:
            return True
        dot = sni.find(".")
        return dot >= 0 and "*" + sni[dot:] in self.https_hosts

    def match_tls(self, info: ConnInfo) -> TCPRoute | None:
        """The TCP route a TLS connection goes to, or None when HTTPS takes it. A TLS-ALPN-01 validator
        (``acme-tls/1``) is a TCP router's only with ``acme_bypass``; otherwise, as in Traefik, the entry
        point answers it itself."""
        if self._https_host(info.sni) or (ACME_TLS_1 in info.alpn and not self.acme_bypass):
            return None
        found = None
        for route in self.tls:
            if route.rule.match(info):
                found = route
                break
        if found is None or (found.rule.catch_all and self.https_catch_all):
            return None
        return found

    def __len__(self) -> int:
        return len(self.plain) + len(self.tls)
