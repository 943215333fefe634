"""Load balancing: a selection strategy (:mod:`router.selection`), passive and active health, sticky cookies,
weighted services.

``pick`` runs once per request: with ``wrr`` one pass over a small tuple, no allocation. Health state lives on
:class:`Upstream` objects, which a reload carries over for servers that stay (same service, same URL), so a
dead server is not hammered again just because a config file changed.

Sticky cookies follow Traefik v3: the default name is ``_`` + five hex digits of
``sha1("_TRAEFIK_BACKEND_" + service)``, the value is the first 16 hex digits of ``sha256(server URL)`` (of
the child service's name for a ``weighted`` service), and the values older Traefik versions wrote (the URL
itself, its FNV-64 hash, the FNV-64 of that) are still understood so that clients stay where they were.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Union
from urllib.parse import urlsplit

from discover.model import LoadBalancer, Service, StickyCookie, Weighted, cycle_message, service_children
from router.failover import FailoverBalancer, build_failover
from router.passive_health import UNTIL_CHECK, PassiveHealth
from router.selection import policy_for

log = logging.getLogger("dockroute.balancer")

# Without ``passiveHealthCheck``: a server that cannot be connected to is out for this long (one failure
# is enough); answers, 5xx or not, never take it out. With the key, Traefik's rules (PassiveHealth).
PASSIVE_COOLDOWN = 10.0

_SAME_SITE = {"none": "None", "lax": "Lax", "strict": "Strict"}  # Traefik's convertSameSite
_TOKEN_CHARS = frozenset("!#$%&'*+-.^`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def sticky_value(name: str) -> str:
    """The sticky cookie value of a server URL or child service name: sha256, 16 hex digits (Traefik v3)."""
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def _fnv64(data: str) -> str:
    """Go's ``fnv.New64`` (FNV-1) as ``strconv.FormatUint(h, 16)``: what Traefik before v3 put in cookies."""
    h = 0xCBF29CE484222325
    for b in data.encode():
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        h ^= b
    return format(h, "x")


def _legacy_values(name: str) -> tuple[str, ...]:
    first = _fnv64(name)
    return (name, first, _fnv64(first))


def default_cookie_name(service: str) -> str:
    """Traefik's default sticky cookie name (``cookie.GenerateName``) for a (qualified) service name."""
    return "_" + hashlib.sha1(("_TRAEFIK_BACKEND_" + service).encode()).hexdigest()[:5]


def cookie_name(sticky: StickyCookie, service: str) -> str:
    """The configured name with characters outside an RFC 2616 token replaced by ``_``, or the default."""
    if sticky.name:
        return "".join(c if c in _TOKEN_CHARS else "_" for c in sticky.name)
    return default_cookie_name(service)


def cookie_header(sticky: StickyCookie, name: str, value: str) -> str:
    """A ``Set-Cookie`` value, attributes in the order Go's ``http.Cookie.String`` writes them."""
    parts = [f"{name}={value}", f"Path={sticky.path or '/'}"]
    if sticky.max_age > 0:
        parts.append(f"Max-Age={sticky.max_age}")
    elif sticky.max_age < 0:
        parts.append("Max-Age=0")  # negative: delete the cookie now, as Go does
    if sticky.http_only:
        parts.append("HttpOnly")
    if sticky.secure:
        parts.append("Secure")
    same_site = _SAME_SITE.get(sticky.same_site.lower())
    if same_site:
        parts.append("SameSite=" + same_site)
    return "; ".join(parts)


class Upstream:
    """One backend server, parsed once from its URL. Raises ``ValueError`` for a URL without a usable host."""

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
        "unreachable",
        "inflight",
        "times",
        "deadline",
        "failures",
        "why",
        "passive_why",
    )

    def __init__(self, url: str, weight: int = 1, transport: str = "", unreachable: str = "") -> None:
        parts = urlsplit(url)
        host = parts.hostname
        if not host:
            raise ValueError(f"the server URL {url!r} has no host")
        self.url = url
        self.scheme = (parts.scheme or "http").lower()
        self.host = f"[{host}]" if ":" in host else host
        default = 443 if self.scheme == "https" else 80
        self.port = parts.port or default  # ValueError for a bad port
        self.weight = weight
        self.key = (self.scheme, self.host, self.port, transport)  # transport: pooled and TLS'd apart
        self.host_header = self.host if self.port == default else f"{self.host}:{self.port}"
        self.host_header_b = self.host_header.encode("latin-1", "replace")
        self.healthy = True  # active health; True until a check says otherwise
        self.down_until = 0.0  # passive health: skipped until this monotonic time
        self.current = 0  # smooth WRR state
        self.cookie_value = sticky_value(url)  # never the URL itself
        # Why the proxy cannot reach it, known from the provider (a Docker network dockroute is not on):
        # a request picking it is answered 502 at once instead of waiting out the dial timeout.
        self.unreachable = unreachable
        self.inflight = 0  # requests in flight, counted only for strategies that read it (p2c, leasttime)
        self.times: Any = None  # leasttime's response times (router.selection.leasttime.ResponseTimes)
        self.deadline = 0.0  # leasttime's tie-break turn
        self.failures: list[float] | None = None  # passive health: recent failures (monotonic times)
        self.why = ""  # why the active check fails (when not healthy)
        self.passive_why = ""  # why it is passively down (while down_until is ahead)

    def carry(self, old: Upstream) -> None:
        """Take over the passive, round-robin and strategy state of ``old`` (the same server in the
        previous configuration, which had an active check); in-flight requests stay counted on ``old``,
        which they release. Out "until the active check passes" is over: there is no check any more."""
        self.down_until = 0.0 if old.down_until == UNTIL_CHECK else old.down_until
        self.current = old.current
        self.failures = old.failures
        self.passive_why = old.passive_why
        self.times = old.times
        self.deadline = old.deadline

    def is_up(self, now: float) -> bool:
        """Passes its active check (or has none) and is not passively down at monotonic time ``now``: the
        one meaning of "up", for picking (:meth:`available`), the API's ``serverStatus`` and the metrics'
        ``service_server_up`` (:func:`router.api.server_state.is_up`, which adds ``unreachable``)."""
        return self.healthy and self.down_until <= now

    def available(self, now: float) -> bool:
        """May take a request now: up, with a weight above 0 (``wrr`` inlines both, its hot path)."""
        return self.weight > 0 and self.is_up(now)

    def __repr__(self) -> str:
        return f"Upstream({self.url!r})"


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
        self.cookie_name = cookie_name(spec.sticky, name) if spec.sticky else None
        self._cooldown = passive_cooldown
        self._clock = clock
        old: dict[str, Upstream] = {}
        if previous is not None:
            for u in previous.servers:
                old.setdefault(u.url, u)
        checked = spec.health_check is not None
        transport = spec.servers_transport or ""
        servers = []
        for s in spec.servers:
            up = old.pop(s.url, None)
            if up is not None and up.key[3] != transport:
                up = None  # another serversTransport: another TLS identity, so no state carries over
            if up is None:
                up = Upstream(s.url, s.weight, transport, s.unreachable)
            elif checked:
                # Shared with the previous balancer: in-flight requests and the previous checker keep
                # reporting into the same object, and a server known dead stays dead.
                up.weight = s.weight
                up.unreachable = s.unreachable
            else:
                # No active check any more: a fresh object, so a late result of the old checker cannot
                # leave it unhealthy forever; passive state is still carried over.
                fresh = Upstream(s.url, s.weight, transport, s.unreachable)
                fresh.carry(up)
                up = fresh
            servers.append(up)
        self.servers: tuple[Upstream, ...] = tuple(servers)
        # A server a provider knows dockroute cannot reach (Upstream.unreachable) takes no request while
        # another can: it is left out of what requests pick from, here, once, so picking pays nothing for
        # it. When every server is such, they stay pickable: the request is answered 502 at once with the
        # reason (router.forward) rather than 503 without one.
        reachable = tuple(u for u in self.servers if not u.unreachable)
        self._usable = reachable  # what counts as available (has_available, has_healthy)
        self._pool = reachable or self.servers  # what pick chooses from
        self._fallback = not reachable and bool(self.servers)
        # The strategy (router.selection): ``pick(cookies, exclude=(), client=None)`` is its bound method
        # (one call per request), and for strategies that read them, the accounting hooks the request path
        # calls only when ``tracks`` is true (never for wrr).
        self.policy = policy = policy_for(spec.strategy, self._pool, clock)
        if spec.passive_health_check is not None:
            policy.without_fallback()  # Traefik's 503 while passive health keeps every server out
        self.pick = policy.pick
        self.tracks = self.policy.tracks
        self.acquire = self.policy.acquire
        self.answered = self.policy.answered
        self.release = self.policy.release
        self.passive = PassiveHealth(
            spec.passive_health_check, passive_cooldown, spec.health_check is not None
        )
        self.counts_answers = self.passive.answers  # a 5xx answer is a passive failure
        self._by_cookie: dict[str, Upstream] = {}
        self._cookie_headers: dict[Upstream, str] = {}
        if spec.sticky is not None and self.cookie_name is not None:
            for u in self._pool:
                if u.weight <= 0:
                    continue  # Traefik never adds a weight-0 server, so no cookie leads to it
                for legacy in _legacy_values(u.url):
                    self._by_cookie.setdefault(legacy, u)
            for u in self._pool:
                self._by_cookie[u.cookie_value] = u  # current values win over legacy ones
                self._cookie_headers[u] = cookie_header(spec.sticky, self.cookie_name, u.cookie_value)
            policy.cookie_name, policy.by_cookie = self.cookie_name, self._by_cookie

    def has_available(self) -> bool:
        """Some server can take a request now (active and passive health, and reachable). A failover asks
        it on every request: :meth:`Upstream.available` inlined in a plain loop (~4x faster than ``any()``
        over a generator, measured)."""
        now = self._clock()
        for u in self._usable:  # noqa: SIM110 - a loop, not any() over a generator: the hot path
            if u.healthy and u.weight > 0 and u.down_until <= now:
                return True
        return False

    def has_healthy(self) -> bool:
        """Some reachable server passes its active check (it may be passively down for a few seconds)."""
        return any(u.healthy and u.weight > 0 for u in self._usable)

    def has_fallback(self) -> bool:
        """Every server is known unreachable and one passes its check: picking it answers 502 with why."""
        return self._fallback and any(u.healthy and u.weight > 0 for u in self.servers)

    def mark_failed(self, up: Upstream, why: str = "connection failed") -> None:
        """Passive health: a request to ``up`` failed (``why``); see :mod:`router.passive_health`."""
        self.passive.failed(self.name, up, self._clock(), why)

    def mark_ok(self, up: Upstream) -> None:
        """Passive health: ``up`` answered well; its failures are forgotten. A server that is out stays out
        with ``passiveHealthCheck`` (Traefik resets only the failure list: the window, or the active check,
        brings it back); without the key, an answer brings it back at once (the rule before the key)."""
        if up.down_until:
            up.failures = None
            if not self.passive.configured or up.down_until <= self._clock():
                up.down_until = 0.0

    def mark_status(self, up: Upstream, status: int) -> None:
        """Passive health after ``up``'s response head: a 5xx is a failure where ``passiveHealthCheck``
        counts answers (Traefik's rule), anything else :meth:`mark_ok`, called only when there is passive
        state to clear (a test of ``down_until`` per request)."""
        if status >= 500 and self.counts_answers:
            self.mark_failed(up, f"status {status}")
        elif up.down_until:
            self.mark_ok(up)

    def set_cookie_header(self, up: Upstream) -> str | None:
        """The ``Set-Cookie`` value that sends this client back to ``up``; ``None`` without stickiness."""
        if self.sticky is None or self.cookie_name is None:
            return None
        header = self._cookie_headers.get(up)
        if header is None:
            header = cookie_header(self.sticky, self.cookie_name, up.cookie_value)
        return header


class _Child:
    __slots__ = ("name", "weight", "balancer", "current", "cookie_value")

    def __init__(self, name: str, weight: int, balancer: Balancer) -> None:
        self.name = name
        self.weight = weight
        self.balancer = balancer
        self.current = 0
        self.cookie_value = sticky_value(name)


class WeightedBalancer:
    """A ``weighted`` service: traffic split between other services by weight."""

    def __init__(self, name: str, spec: Weighted, children: Mapping[str, Balancer]) -> None:
        self.name = name
        self.spec = spec
        self.sticky = spec.sticky
        self.cookie_name = cookie_name(spec.sticky, name) if spec.sticky else None
        self.pass_host_header = True
        self.children = tuple(_Child(ref.name, ref.weight, children[ref.name]) for ref in spec.services)
        self._by_cookie: dict[str, _Child] = {}
        self._cookie_headers: dict[int, str] = {}
        if spec.sticky is not None and self.cookie_name is not None:
            for c in self.children:
                if c.weight > 0:
                    for legacy in _legacy_values(c.name):
                        self._by_cookie.setdefault(legacy, c)
            for c in self.children:
                if c.weight > 0:
                    self._by_cookie[c.cookie_value] = c
                    self._cookie_headers.setdefault(
                        id(c.balancer), cookie_header(spec.sticky, self.cookie_name, c.cookie_value)
                    )

    def has_available(self) -> bool:
        return any(c.weight > 0 and c.balancer.has_available() for c in self.children)

    def has_healthy(self) -> bool:
        return any(c.weight > 0 and c.balancer.has_healthy() for c in self.children)

    def has_fallback(self) -> bool:
        return any(c.weight > 0 and c.balancer.has_fallback() for c in self.children)

    def pick_child(self, cookies: Mapping[str, str] | None = None) -> Balancer | None:
        """The child service for this request: the sticky one if it has an available server, else smooth
        weighted round robin over children with an available server; if none has one, over children with a
        server that is only passively down (the child then tries it), then over children whose servers are
        all known unreachable (answered 502 with the reason); ``None`` when all are unhealthy."""
        if cookies and self.cookie_name is not None:
            value = cookies.get(self.cookie_name)
            if value is not None:
                c = self._by_cookie.get(value)
                if c is not None and c.balancer.has_available():
                    return c.balancer
        for usable in (_child_available, _child_healthy, _child_fallback):
            best = None
            total = 0
            for c in self.children:
                if c.weight > 0 and usable(c.balancer):
                    c.current += c.weight
                    total += c.weight
                    if best is None or c.current > best.current:
                        best = c
            if best is not None:
                best.current -= total
                return best.balancer
        return None

    def set_cookie_header(self, child: Balancer) -> str | None:
        if self.sticky is None or self.cookie_name is None:
            return None
        return self._cookie_headers.get(id(child))


def _child_available(b: Balancer) -> bool:
    return b.has_available()


def _child_healthy(b: Balancer) -> bool:
    return b.has_healthy()


def _child_fallback(b: Balancer) -> bool:
    return b.has_fallback()


Balancer = Union[ServiceBalancer, WeightedBalancer, FailoverBalancer]  # noqa: UP007 - used at runtime before 3.12 syntax


def build_balancers(
    services: Mapping[str, Service],
    previous: Mapping[str, Balancer] | None = None,
    passive_cooldown: float = PASSIVE_COOLDOWN,
    clock: Callable[[], float] = time.monotonic,
    errors: dict[str, str] | None = None,
) -> dict[str, Balancer]:
    """One balancer per usable service, keyed like ``services``; ``errors`` (when given) receives why each
    service left out is (for the API).

    ``previous`` (the last result) carries health state over for servers with the same URL in a service
    with the same name; a service whose definition did not change gets its previous balancer back, the
    same object, so everything that holds it (health checkers, in-flight requests) stays current.

    A service that cannot be built — a bad server URL, a weighted service with a missing or unusable
    child, or one in a cycle — is left out with one ERROR line naming it; nothing raises.
    """
    out: dict[str, Balancer] = {}
    failed: dict[str, str] = {}
    for name, svc in services.items():
        if svc.load_balancer is None:
            continue
        prev = previous.get(name) if previous else None
        if (
            isinstance(prev, ServiceBalancer)
            and prev.spec == svc.load_balancer
            and prev._clock is clock
            and prev._cooldown == passive_cooldown
        ):
            # Unchanged service: the very same balancer serves on, with its health, round-robin and
            # sticky state, and the health checker of the service can keep running against it.
            out[name] = prev
            continue
        try:
            out[name] = ServiceBalancer(
                name,
                svc.load_balancer,
                passive_cooldown=passive_cooldown,
                clock=clock,
                previous=prev if isinstance(prev, ServiceBalancer) else None,
            )
        except ValueError as exc:
            failed[name] = str(exc)
            log.error("service %s is left out: %s", name, exc)

    weighted = _WeightedBuilder(services, previous, out, failed)
    for name, svc in services.items():
        if (svc.weighted is not None or svc.failover is not None) and svc.load_balancer is None:
            weighted.resolve(name)
    if errors is not None:
        errors.update(failed)
    return out


class _WeightedBuilder:
    """Builds ``weighted`` balancers depth first (children before parents), detecting cycles.

    A class rather than a recursive closure: a closure that calls itself is a reference cycle, which would
    keep every balancer of the build alive until the cyclic GC ran.
    """

    def __init__(
        self,
        services: Mapping[str, Service],
        previous: Mapping[str, Balancer] | None,
        out: dict[str, Balancer],
        failed: dict[str, str],
    ) -> None:
        self.services = services
        self.previous = previous
        self.out = out
        self.failed = failed
        self.resolving: list[str] = []

    def resolve(self, name: str) -> Balancer | None:
        """The balancer for ``name``, building weighted and failover ones depth first; ``None`` (logged) if
        unusable."""
        out, failed, resolving = self.out, self.failed, self.resolving
        if name in out:
            return out[name]
        if name in failed:
            return None
        svc = self.services[name]
        refs = service_children(svc)
        resolving.append(name)
        try:
            children: dict[str, Balancer] = {}
            for ref in refs:
                child_svc = self.services.get(ref)
                if child_svc is not None and child_svc.mirroring is not None:
                    why = f"its child service {ref} is a mirroring service, which only a router can use"
                elif child_svc is None or not (
                    child_svc.load_balancer or child_svc.weighted or child_svc.failover
                ):
                    why = f"its child service {ref} does not exist"  # static files: as Traefik's, none
                elif ref in resolving:
                    why = cycle_message(resolving, ref)
                else:
                    child = self.resolve(ref)
                    if child is not None:
                        children[ref] = child
                        continue
                    why = f"its child service {ref} is left out"
                failed[name] = why
                log.error("service %s is left out: %s", name, why)
                return None
            if svc.failover is not None:
                built = build_failover(name, svc.failover, self.services, children)
                if isinstance(built, str):
                    failed[name] = built
                    log.error("service %s is left out: %s", name, built)
                    return None
                out[name] = built
                return built
            assert svc.weighted is not None
            prev = self.previous.get(name) if self.previous else None
            if (
                isinstance(prev, WeightedBalancer)
                and prev.spec == svc.weighted
                and all(c.balancer is children[c.name] for c in prev.children)
            ):
                out[name] = prev  # unchanged, and so are its children: keep its round-robin state
                return prev
            bal = WeightedBalancer(name, svc.weighted, children)
            out[name] = bal
            return bal
        finally:
            resolving.pop()
