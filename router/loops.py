"""Requests sent back to the entry point they came in on: ``508 Loop Detected`` instead of a loop.

A service whose server is the entry point's own address (a Docker label on the proxy's own container
without a service of its own, a file config naming ``localhost:80``) turns each request into a new
request to itself: without a check it loops until sockets run out. The check is made where a request is
about to be sent to a server (:func:`router.forward._send`), after the router's middlewares: a redirect,
an auth challenge or a rate limit on such a router still answers first, as in Traefik, where the
HTTP-to-HTTPS catch-all router on the proxy's own container is the common case.

Only the address of the entry point the request came in on counts: a router on ``web`` sending to the
``internal`` entry point is a chain of two hops, served as Traefik serves it. The servers that are this
entry point's own are worked out once per routing table (on the first request after a reload or after the
entry point binds), so a request pays one truthiness test, or a set lookup when the table has such a
server. No marker header is sent (Traefik sends no ``Via``, and backends would see it).

Not seen: a loop through a host name other than ``localhost`` (no DNS lookup on the event loop), through
another entry point and back, or through another proxy.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import Any

log = logging.getLogger("dockroute.router")

_LOOPBACK = ("127.0.0.1", "::1")
_LOCAL: dict[str, bool] = {}  # address → whether this machine has it (asked once each; configured ones)


class OwnServers:
    """The servers of the current routing table that are one entry point's own listening address (their
    pool keys, ``keys``), and the table they were worked out for (``of``)."""

    __slots__ = ("_cache", "_logged", "keys", "listen", "of")

    def __init__(self) -> None:
        self.listen: tuple[str | None, int] | None = None  # (address or None for all of them, port)
        self.keys: frozenset[Any] = frozenset()
        self.of: Any = None
        self._cache: dict[tuple[str, int], bool] = {}
        self._logged: set[tuple[str, str]] = set()

    def bound(self, address: str, port: int) -> None:
        """The entry point listens now (``address`` as configured, the port it got): look again."""
        host = address.rpartition(":")[0].strip("[]")
        self.listen = (None if host in ("", "0.0.0.0", "::") else host, port)
        self._cache.clear()
        self.of = None

    def update(self, table: Any) -> None:
        """Work out ``keys`` for ``table``; one warning per router and server, the first time."""
        keys = set()
        if self.listen is not None:
            for route in table.routes:
                for up in servers_of(route.target):
                    if self._own(up.host, up.port):
                        keys.add(up.key)
                        self._warn(route, up)
        self.keys, self.of = frozenset(keys), table

    def _warn(self, route: Any, up: Any) -> None:
        router = getattr(route.target, "router", None) or route.name
        if (router, up.url) not in self._logged:
            self._logged.add((router, up.url))
            log.warning(
                "router %s: server %s is this entry point itself; requests sent to it are answered "
                "508 Loop Detected (give the service the application's address)",
                router,
                up.url,
            )

    def _own(self, host: str, port: int) -> bool:
        known = self._cache.get((host, port))
        if known is None:
            known = self._cache[(host, port)] = _listens_at(self.listen, host, port)
        return known


def servers_of(target: Any) -> list[Any]:
    """The servers a route's target may forward to (none for a redirect, an internal service...)."""
    target = getattr(target, "final", target)
    balancers = [getattr(target, "balancer", None)]
    servers: list[Any] = []
    while balancers:
        balancer = balancers.pop()
        if balancer is None:
            continue
        servers.extend(getattr(balancer, "servers", ()))
        balancers.extend(child.balancer for child in getattr(balancer, "children", ()))
    return servers


def _listens_at(listen: tuple[str | None, int] | None, host: str, port: int) -> bool:
    """Whether ``host:port`` is the address ``listen``: an address literal or ``localhost`` (RFC 6761:
    always loopback); other names are not looked up."""
    if listen is None or listen[1] != port:
        return False  # the common case, decided before any address is parsed
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        ips: tuple[str, ...] = _LOOPBACK
    else:
        try:
            ips = (str(ipaddress.ip_address(name)),)
        except ValueError:
            return False
    listen_host = listen[0]
    if listen_host is None:
        return any(_is_local(ip) for ip in ips)
    try:
        listening = ipaddress.ip_address(listen_host)
    except ValueError:
        return False
    return any(ipaddress.ip_address(ip) == listening for ip in ips)


def _is_local(ip: str) -> bool:
    """Whether ``ip`` is one of this machine's addresses: binding to it succeeds only then."""
    known = _LOCAL.get(ip)
    if known is None:
        try:
            with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((ip, 0))
            known = True
        except OSError:
            known = False
        _LOCAL[ip] = known
    return known
