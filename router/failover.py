"""``failover`` services: requests go to the main service while it is up, to the fallback otherwise.

"Up" follows Traefik's status propagation: the main service is up while one of its servers passes its
health check (active, and passive where configured), which is what :meth:`has_available` of its balancer
reads, live, on every request: there is no state to keep in step, so the switch to the fallback and the
way back happen at the first request after the health check changed its mind. As in Traefik, the main
service must report its health (a ``loadBalancer`` with a ``healthCheck``, or a ``failover`` with
``healthCheck: {}``), or the failover service is refused; with the failover's own ``healthCheck: {}`` the
fallback must report it too, a fallback that is down then answers 503 at once, and the failover counts as
up for its parents while either side is.

A :class:`FailoverBalancer` is a *group* balancer, like a ``weighted`` service's: the proxy walks it down to
a leaf load balancer (:func:`router.forward._pick`), so a failover costs one health read per request and
routes without one pay nothing. It has no sticky cookie (Traefik's failover has none).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from discover.model import Failover, Service

__all__ = ["FailoverBalancer", "build_failover", "reports_health"]


class FailoverBalancer:
    """A ``failover`` service over two built balancers (load balancers, weighted or failover ones)."""

    sticky = None  # no sticky cookie of its own (the chosen child may have one)
    cookie_name = None
    pass_host_header = True

    def __init__(self, name: str, spec: Failover, main: Any, fallback: Any) -> None:
        self.name = name
        self.spec = spec
        self.main = main
        self.fallback = fallback
        self._fallback_checked = spec.health_check  # Traefik tracks the fallback's status only then

    def pick_child(self, cookies: Mapping[str, str] | None = None) -> Any:
        """The main service while it is up, else the fallback; ``None`` (503 at once) when the fallback's
        health is followed (``healthCheck: {}``) and it is down too. Without ``healthCheck``, Traefik never
        tracks the fallback's status: the fallback is tried whatever its health, so its own balancer
        answers (a 502 naming why when its servers are known unreachable, say, where the checked
        failover answers 503)."""
        if self.main.has_available():
            return self.main
        if not self._fallback_checked or self.fallback.has_available():
            return self.fallback
        return None

    def has_available(self) -> bool:
        """Some server below can take a request now: what a parent (weighted, failover) asks first."""
        return bool(self.main.has_available() or self.fallback.has_available())

    def has_healthy(self) -> bool:
        """Some server below passes its active check (it may be passively out): a parent's second
        choice when no child has an available server."""
        return bool(self.main.has_healthy() or self.fallback.has_healthy())

    def has_fallback(self) -> bool:
        """Every server below is known unreachable but one passes its check: a parent's last choice,
        answered 502 with the reason."""
        return bool(self.main.has_fallback() or self.fallback.has_fallback())

    def set_cookie_header(self, child: Any) -> str | None:
        """No ``Set-Cookie`` of its own: Traefik's failover has no sticky cookie."""
        return None


def reports_health(services: Mapping[str, Service], name: str) -> bool:
    """Whether service ``name`` propagates its health to a parent, as Traefik's ``RegisterStatusUpdater``
    accepts: a load balancer with a ``healthCheck``, a failover with ``healthCheck: {}``. A ``weighted``
    service cannot (dockroute refuses its ``healthCheck`` key), nor a mirroring one (only a router can use
    a mirroring service in dockroute)."""
    svc = services.get(name)
    if svc is None:
        return False
    if svc.load_balancer is not None:
        return svc.load_balancer.health_check is not None
    return svc.failover is not None and svc.failover.health_check


def build_failover(
    name: str, spec: Failover, services: Mapping[str, Service], children: Mapping[str, Any]
) -> FailoverBalancer | str:
    """The balancer of failover service ``name`` over its built ``children`` (main and fallback), or why
    it cannot be served (Traefik refuses the same configurations when it builds the service)."""
    if not reports_health(services, spec.service):
        return (
            f"its service {spec.service} has no healthCheck: a failover follows the health of its main "
            "service (Traefik refuses it too)"
        )
    if spec.health_check and not reports_health(services, spec.fallback):
        return (
            f"it has healthCheck but its fallback {spec.fallback} has none: every service below one with "
            "healthCheck needs it (as in Traefik)"
        )
    return FailoverBalancer(name, spec, children[spec.service], children[spec.fallback])
