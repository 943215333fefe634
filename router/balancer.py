"""Load balancing: smooth weighted round robin, passive and active health, sticky cookies, weighted services.

``pick`` runs once per request, so it does no allocation beyond the loop over a small tuple. Health state
lives on :class:`Upstream` objects, which a reload carries over for servers that stay (same service, same
URL), so a dead server is not hammered again just because a config file changed.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Container, Mapping
from typing import Union
from urllib.parse import urlsplit

from discover.model import LoadBalancer, Service, StickyCookie, Weighted

log = logging.getLogger("dockroute.balancer")

PASSIVE_COOLDOWN = 10.0


class Upstream:
    """One backend server, parsed once from its URL."""

    __slots__ = (
        "url",
        "scheme",
        "host",
        "port",
        "weight",
        "key",
        "host_header",
        "host_header_b",
        "healthy",
        "down_until",
        "current",
        "cookie_value",
    )

    def __init__(self, url: str, weight: int = 1) -> None:
        parts = urlsplit(url)
        self.url = url
        self.scheme = parts.scheme or "http"
        host = parts.hostname or ""
        self.host = f"[{host}]" if ":" in host else host
        default = 443 if self.scheme == "https" else 80
        self.port = parts.port or default
        self.weight = weight
        self.key = (self.scheme, self.host, self.port)
        self.host_header = self.host if self.port == default else f"{self.host}:{self.port}"
        self.host_header_b = self.host_header.encode("latin-1", "replace")
        self.healthy = True  # active health; True until a check says otherwise
        self.down_until = 0.0  # passive health: skipped until this monotonic time
        self.current = 0  # smooth WRR state
        # Traefik v3 stores a hash of the URL, never the URL itself, in the sticky cookie.
        self.cookie_value = hashlib.sha256(url.encode()).hexdigest()[:16]

    def available(self, now: float) -> bool:
        return self.healthy and self.weight > 0 and self.down_until <= now

    def __repr__(self) -> str:
        return f"Upstream({self.url!r})"


def default_cookie_name(service: str) -> str:
    """Traefik's default sticky cookie name: a short hash of the service name."""
    return "_" + hashlib.sha1(service.encode()).hexdigest()[:5]


def cookie_header(sticky: StickyCookie, name: str, value: str) -> str:
    parts = [f"{name}={value}", f"Path={sticky.path or '/'}"]
    if sticky.max_age:
        parts.append(f"Max-Age={sticky.max_age}")
    if sticky.secure:
        parts.append("Secure")
    if sticky.http_only:
        parts.append("HttpOnly")
    if sticky.same_site:
        parts.append("SameSite=" + sticky.same_site.capitalize())
    return "; ".join(parts)


def _smooth_wrr(candidates: list, total: int):  # noqa: ANN001, ANN202 - works on Upstream and children
    """nginx's smooth weighted round robin: deterministic, spreads weights evenly (5:1 → a a b a a a ...)."""
    best = None
    for c in candidates:
        c.current += c.weight
        if best is None or c.current > best.current:
            best = c
    if best is not None:
        best.current -= total
    return best


class ServiceBalancer:
    """A ``loadBalancer`` service."""

    def __init__(
        self,
        name: str,
        spec: LoadBalancer,
        passive_cooldown: float = PASSIVE_COOLDOWN,
        clock: Callable[[], float] = time.monotonic,
        previous: ServiceBalancer | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        self.pass_host_header = spec.pass_host_header
        self.sticky = spec.sticky
        self.cookie_name = (spec.sticky.name or default_cookie_name(name)) if spec.sticky else None
        self._cooldown = passive_cooldown
        self._clock = clock
        old = {u.url: u for u in previous.servers} if previous is not None else {}
        servers = []
        for s in spec.servers:
            up = old.get(s.url)
            if up is None:
                up = Upstream(s.url, s.weight)
            else:
                up.weight = s.weight
            servers.append(up)
        self.servers: tuple[Upstream, ...] = tuple(servers)
        self._by_cookie = {u.cookie_value: u for u in self.servers}
        self._single = self.servers[0] if len(self.servers) == 1 else None

    def has_available(self) -> bool:
        now = self._clock()
        return any(u.available(now) for u in self.servers)

    def pick(
        self, cookies: Mapping[str, str] | None = None, exclude: Container[Upstream] = ()
    ) -> Upstream | None:
        now = self._clock()
        if cookies and self.cookie_name is not None:
            up = self._by_cookie.get(cookies.get(self.cookie_name, ""))
            if up is not None and up.available(now) and up not in exclude:
                return up
        single = self._single
        if single is not None and not exclude:
            if single.available(now):
                return single
            if single.healthy and single.weight > 0:
                return single  # only passively down: trying it beats a certain 503
            return None
        candidates = [u for u in self.servers if u.available(now) and u not in exclude]
        if not candidates:
            # Every healthy server is passively down: try the one that recovers first rather than fail.
            waiting = [u for u in self.servers if u.healthy and u.weight > 0 and u not in exclude]
            if not waiting:
                return None
            return min(waiting, key=lambda u: u.down_until)
        if len(candidates) == 1:
            return candidates[0]
        return _smooth_wrr(candidates, sum(u.weight for u in candidates))

    def mark_failed(self, up: Upstream) -> None:
        now = self._clock()
        if up.down_until <= now:
            log.warning(
                "service %s: server %s failed to connect; out for %gs", self.name, up.url, self._cooldown
            )
        up.down_until = now + self._cooldown

    def mark_ok(self, up: Upstream) -> None:
        if up.down_until:
            up.down_until = 0.0

    def set_cookie_header(self, up: Upstream) -> str | None:
        if self.sticky is None or self.cookie_name is None:
            return None
        return cookie_header(self.sticky, self.cookie_name, up.cookie_value)


class WeightedBalancer:
    """A ``weighted`` service: traffic split between other services by weight."""

    def __init__(self, name: str, spec: Weighted, children: Mapping[str, Balancer]) -> None:
        self.name = name
        self.spec = spec
        self.sticky = spec.sticky
        self.cookie_name = (spec.sticky.name or default_cookie_name(name)) if spec.sticky else None
        self.pass_host_header = True
        self.children = tuple(_Child(ref.name, ref.weight, children[ref.name]) for ref in spec.services)
        self._by_cookie = {c.cookie_value: c for c in self.children}

    def has_available(self) -> bool:
        return any(c.weight > 0 and c.balancer.has_available() for c in self.children)

    def pick_child(self, cookies: Mapping[str, str] | None = None) -> Balancer | None:
        if cookies and self.cookie_name is not None:
            c = self._by_cookie.get(cookies.get(self.cookie_name, ""))
            if c is not None and c.balancer.has_available():
                return c.balancer
        candidates = [c for c in self.children if c.weight > 0 and c.balancer.has_available()]
        if not candidates:
            return None
        chosen = _smooth_wrr(candidates, sum(c.weight for c in candidates))
        return chosen.balancer

    def set_cookie_header(self, child: Balancer) -> str | None:
        if self.sticky is None or self.cookie_name is None:
            return None
        for c in self.children:
            if c.balancer is child:
                return cookie_header(self.sticky, self.cookie_name, c.cookie_value)
        return None


class _Child:
    __slots__ = ("name", "weight", "balancer", "current", "cookie_value")

    def __init__(self, name: str, weight: int, balancer: Balancer) -> None:
        self.name = name
        self.weight = weight
        self.balancer = balancer
        self.current = 0
        self.cookie_value = hashlib.sha256(name.encode()).hexdigest()[:16]


Balancer = Union[ServiceBalancer, WeightedBalancer]  # noqa: UP007 - used at runtime before 3.12 syntax


def build_balancers(
    services: Mapping[str, Service],
    previous: Mapping[str, Balancer] | None = None,
    passive_cooldown: float = PASSIVE_COOLDOWN,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Balancer]:
    """One balancer per usable service. A weighted service with a missing child or a cycle is left out
    with one error line naming it; nothing raises."""
    out: dict[str, Balancer] = {}
    for name, svc in services.items():
        if svc.load_balancer is not None:
            prev = previous.get(name) if previous else None
            out[name] = ServiceBalancer(
                name,
                svc.load_balancer,
                passive_cooldown=passive_cooldown,
                clock=clock,
                previous=prev if isinstance(prev, ServiceBalancer) else None,
            )

    resolving: set[str] = set()

    def resolve(name: str) -> Balancer | None:
        if name in out:
            return out[name]
        svc = services.get(name)
        if svc is None or svc.weighted is None:
            return None
        if name in resolving:
            raise _Cycle(name)
        resolving.add(name)
        try:
            children: dict[str, Balancer] = {}
            for ref in svc.weighted.services:
                child = resolve(ref.name)
                if child is None:
                    log.error("service %s is left out: its child service %s does not exist", name, ref.name)
                    return None
                children[ref.name] = child
            bal = WeightedBalancer(name, svc.weighted, children)
            out[name] = bal
            return bal
        finally:
            resolving.discard(name)

    for name, svc in services.items():
        if svc.weighted is not None and name not in out:
            try:
                resolve(name)
            except _Cycle as exc:
                log.error(
                    "service %s is left out: weighted services form a cycle through %s", name, exc.args[0]
                )
    return out


class _Cycle(Exception):
    pass
