"""Requests sent back to the entry point they came in on: ``508 Loop Detected`` instead of a loop.

A service whose server is the entry point's own address (a Docker label on the proxy's own container
without a service of its own, a file config naming ``localhost:80``) turns each request into a new
request to itself: without a check it loops until sockets run out. The check is made where a request is
about to be sent to a server (:func:`router.forward._send`), after the router's middlewares: a redirect,
an auth challenge or a rate limit on such a router still answers first, as in Traefik, where the
HTTP-to-HTTPS catch-all router on the proxy's own container is the common case.

Only the address of the entry point the request came in on counts: a router on ``web`` sending to the
``internal`` entry point is a chain of two hops, served as Traefik serves it. The servers that are this
entry point's own are worked out once per routing table, when it is installed (or the entry point binds),
never inside a request: a request pays one truthiness test, or a set lookup when the table has such a
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


class OwnServers:
    """The servers of one entry point's routing table that are its own listening address (their pool
    keys, ``keys``), worked out when a table is installed or the entry point binds (never by a request:
    :class:`router.proxy.EntryPointHandler` calls :meth:`update` as its ``table`` is set)."""

    __slots__ = ("_logged", "keys", "listen")

    def __init__(self) -> None:
        self.listen: tuple[str | None, int] | None = None  # (address or None for all of them, port)
        self.keys: frozenset[Any] = frozenset()
        self._logged: set[tuple[str, str]] = set()

    def bound(self, host: str | None, port: int, table: Any) -> None:
        """The entry point listens now on ``host`` (as :func:`router.server.parse_address` read it, None
        for all addresses) and the port it got: ``table``, the one installed, is looked at again."""
        self.listen = (None if host in (None, "", "0.0.0.0", "::") else host, port)
        self.update(table)

    def update(self, table: Any) -> None:
        """Work out ``keys`` for ``table``; one warning per router and server, the first time. Whether an
        address is this machine's is asked afresh on each table (addresses come and go; a table is
        installed once per reload), once per address."""
        keys = set()
        if self.listen is not None:
            local: dict[str, bool] = {}
            seen: dict[Any, bool] = {}  # pool key → whether it is this entry point
            for route in table.routes:
                for up in servers_of(route.target):
                    own = seen.get(up.key)
                    if own is None:
                        own = seen[up.key] = _listens_at(self.listen, up.host, up.port, local)
                    if own:
                        keys.add(up.key)
                        self._warn(route, up)  # each router naming it, once
        self.keys = frozenset(keys)

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


def _listens_at(listen: tuple[str | None, int] | None, host: str, port: int, local: dict[str, bool]) -> bool:
    """Whether ``host:port`` is the address ``listen``: an address literal or ``localhost`` (RFC 6761:
    always loopback); other names are not looked up. ``local`` keeps what :func:`_is_local` found."""
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
        return any(_is_local(ip, local) for ip in ips)
    try:
        listening = ipaddress.ip_address(listen_host)
    except ValueError:
        return False
    return any(ipaddress.ip_address(ip) == listening for ip in ips)


def _is_local(ip: str, local: dict[str, bool]) -> bool:
    """Whether ``ip`` is one of this machine's addresses: binding to it succeeds only then (asked once per
    ``local``, the answers of one table's update)."""
    known = local.get(ip)
    if known is None:
        try:
            with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((ip, 0))
            known = True
        except OSError:
            known = False
        local[ip] = known
    return known
