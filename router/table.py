"""The routing table of one entry point: routes indexed by host, tried in priority order.

Order is Traefik's: priority descending (``sort.Sort`` on ``priority`` in ``pkg/muxer/http/mux.go``);
Traefik breaks ties by provider precedence and otherwise leaves them to map order, so ties here go by
router name ascending, which is deterministic.

A rule whose ``hosts`` is known (``Host(`a.test`) && Path(`/x`)``) can only match those hosts: it is
filed under each of them. Every other rule is host-less and tried for every host. Each host's entry is
its own routes merged with the host-less ones, presorted, so a lookup is one dict get and a walk over a
short tuple whatever the number of routes. Once a host's entry is picked, a rule filed under it only
checks what its host does not settle (``Rule.match_in_hosts``): nothing at all for ``Host(`a.test`)``,
just the path for ``Host(`a.test`) && Path(`/x`)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from discover.model import DEFAULT_TLS_OPTIONS
from router.rules import RequestInfo, Rule

__all__ = ["Route", "RoutingTable"]


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    priority: int
    rule: Rule
    target: object  # opaque to the table (the proxy puts its compiled handler here)
    tls_options: str | None = None  # an HTTPS route's TLS options name; None on plain HTTP
    # the router's observability.accessLogs / .metrics (False: its requests are left out of them)
    access_logs: bool = True
    metrics: bool = True


# (the rule's match, or None when the entry's host alone decides; the route)
_Entry = tuple[Callable[[RequestInfo], bool] | None, Route]


def _order(route: Route) -> tuple[int, str]:
    return (-route.priority, route.name)


class RoutingTable:
    """Immutable once built; a new config builds a new table and swaps the reference."""

    __slots__ = ("routes", "_by_host", "_fallback", "options_in_use")

    def __init__(self, routes: Iterable[Route]) -> None:
        ordered = sorted(routes, key=_order)
        self.routes: tuple[Route, ...] = tuple(ordered)
        # Whether any route has TLS options other than the default: only then does the proxy compare a
        # route's options with the connection's (nothing to compare otherwise: the path stays as it was).
        self.options_in_use = any(r.tls_options not in (None, DEFAULT_TLS_OPTIONS) for r in ordered)
        hostless = [r for r in ordered if r.rule.hosts is None]
        per_host: dict[str, list[Route]] = {}
        for r in ordered:
            hosts = r.rule.hosts
            if hosts:
                for h in hosts:
                    per_host.setdefault(h, []).append(r)
        self._fallback: tuple[_Entry, ...] = tuple((r.rule.match, r) for r in hostless)
        by_host: dict[str, tuple[_Entry, ...]] = {}
        for h, own in per_host.items():
            merged = sorted(own + hostless, key=_order) if hostless else own
            by_host[h] = tuple(
                (r.rule.match if r.rule.hosts is None else r.rule.match_in_hosts, r) for r in merged
            )
        self._by_host = by_host

    def lookup(self, req: RequestInfo) -> Route | None:
        """The highest-priority route whose rule matches ``req``, or None."""
        for match, route in self._by_host.get(req.host, self._fallback):
            if match is None or match(req):
                return route
        return None

    def __len__(self) -> int:
        return len(self.routes)

    def __repr__(self) -> str:
        return f"RoutingTable({len(self.routes)} routes, {len(self._by_host)} hosts)"
