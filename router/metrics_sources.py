"""Rows for the metrics the proxy does not count per request, from what the app already holds.

:class:`router.metrics.Sources` reads them when a scrape takes its snapshot, on the event loop: both are a
walk over objects in memory. (Certificates are parsed off the loop by whoever builds the certificate
store, and handed over with :meth:`router.metrics.Metrics.set_certificates`.)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from router.api.server_state import is_up
from router.balancer import ServiceBalancer

__all__ = ["open_connection_rows", "server_up_rows"]


def server_up_rows(balancers: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """(service, url, up) of every server of a load balancer with an active or a passive health check:
    Traefik sets ``service_server_up`` from those checkers only (the passive one to 0 while it keeps a
    server out), so unchecked services have no series."""
    rows = []
    now = time.monotonic()
    for name, balancer in balancers.items():
        if isinstance(balancer, ServiceBalancer) and (
            balancer.spec.health_check is not None or balancer.spec.passive_health_check is not None
        ):
            rows.extend((name, u.url, is_up(u, now)) for u in balancer.servers)
    return rows


def open_connection_rows(servers: Iterable[Any]) -> list[tuple[str, str, int]]:
    """(entry point, "TCP", open connections) of each :class:`router.server.EntryPointServer`: the HTTP
    and HTTPS sides' connections and those its TCP routers relay, as Traefik counts its TCP entry
    point's."""
    rows = []
    for s in servers:
        n = sum(len(w.connections) for w in (s.web_server, s.tls_web_server) if w is not None)
        rows.append((s.name, "TCP", n + len(getattr(s, "tcp_relays", ()))))
    return rows
