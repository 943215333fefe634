"""Compile a merged dynamic config into per-entry-point routing tables.

Done off the request path whenever a provider publishes a new snapshot. A router that cannot be compiled
(its rule does not parse, its service or a middleware is missing or unsupported) is left out with one log
line naming it; every other router keeps working. The previous balancers are handed in so that passive and
active health state survives a reload.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from discover.model import (
    DEFAULT_TLS_OPTIONS,
    DynamicConfig,
    Router,
    RouterTLS,
    qualify_options,
    service_children,
)
from router.balancer import ServiceBalancer, WeightedBalancer, build_balancers
from router.chains import Built, Chains
from router.exchange import Handler
from router.mirroring import check_mirroring
from router.proxy import CHALLENGE_PREFIX, ChallengeTarget, RedirectTarget
from router.rules import Rule, RuleError, parse_rule
from router.settings import EntryPoint
from router.table import Route, RoutingTable
from router.targets import ChallengeLookup
from router.transports import DEFAULT as DEFAULT_TRANSPORT
from router.udp.table import UDPCompiled, compile_udp

log = logging.getLogger("dockroute.router")

# Redirect routers sit just below the (future) ACME challenge router, as in Traefik.
MAX_PRIORITY = 2**31 - 1

Balancer = ServiceBalancer | WeightedBalancer


@dataclass
class Compiled:
    tables: dict[str, RoutingTable]  # plain HTTP, per entry point
    balancers: dict[str, Balancer]
    errors: dict[str, str] = field(default_factory=dict)  # router name → why it is not routed
    tls_tables: dict[str, RoutingTable] = field(default_factory=dict)  # HTTPS (routers with `tls`)
    # Every rule that parsed, by (text, syntax): the next compile reuses them (Rule objects are immutable).
    rules: dict[tuple[str, str], Rule] = field(default_factory=dict)
    # entry point → lower-case host → TLS options name, from the Host() hosts of the HTTPS routers there:
    # the server picks the handshake's options by SNI with it (hosts absent use "default").
    tls_options: dict[str, dict[str, str]] = field(default_factory=dict)
    # router name → the entry points it is routed on (existing ones only; absent when not routed)
    entry_points: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # the middlewares built for each (router, middleware): the next compile reuses those whose options
    # did not change, with their state (rate-limit buckets, circuit breakers); and each mirroring
    # service's copies in flight (router.chains.Chains.mirroring), counted on across reloads
    middlewares: Built = field(default_factory=dict)
    # the lines this compile logged (the next compile logs only new ones: see _Repeats)
    logged: frozenset[str] = frozenset()
    # why a service or a middleware could not be built, by name (the API shows them disabled with it)
    service_errors: dict[str, str] = field(default_factory=dict)
    middleware_errors: dict[str, str] = field(default_factory=dict)
    udp: UDPCompiled | None = None  # the udp section's tables, for the /udp entry points
    tcp: Any = None  # router.tcp.compile.CompiledTCP, compiled by the app (that module imports this one)


def effective_tls(router: Router, ep: EntryPoint | None) -> RouterTLS | None:
    """The tls a router has on one entry point: its own, else the entry point's ``http.tls`` (Traefik's
    "model": such a router is HTTPS-only there, with the entry point's resolver, domains and options).

    The entry point's ``options`` name is static configuration and not qualified: like any bare reference
    of a router it resolves in the router's provider (the part after ``@`` of its name); ``default`` stays
    ``default``. The app's wanted certificates and the compile both use this one function.
    """
    if router.tls is not None:
        return router.tls
    tls = ep.tls if ep is not None else None
    if tls is None or not tls.options:
        return tls
    provider = router.name.partition("@")[2]
    options = qualify_options(tls.options, provider) if provider else tls.options
    return tls if options == tls.options else replace(tls, options=options)


INTERNAL_ENTRY_POINT = "traefik"  # Traefik's DefaultInternalEntryPointName: the API's, ping's, metrics'


def default_entry_points_of(entry_points: tuple[EntryPoint, ...]) -> tuple[str, ...]:
    """Where a router naming no entry point goes, as in Traefik: the entry points marked ``asDefault``
    when any is; otherwise every entry point but ``traefik``, so that users' routers and containers never
    answer on the admin port (:8080) that the API, ping and metrics are served on. Any case: static entry
    point names are case-insensitive, so a user's ``Traefik`` is the internal entry point (the API's
    routers are on it; Traefik compares the name as written). UDP entry points are never defaults, but
    one marked ``asDefault`` still counts as "some entry point is marked" (Traefik's
    getDefaultsEntrypoints), leaving only the other marked ones, if any."""
    marked = any(ep.as_default for ep in entry_points)
    return tuple(
        ep.name
        for ep in entry_points
        if (ep.as_default or not marked) and not ep.udp and ep.name.lower() != INTERNAL_ENTRY_POINT
    )


def router_entry_points(
    router: Router, existing: Mapping[str, object], default_entry_points: tuple[str, ...] | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the entry points a router is on that exist, those it names that do not), ``existing`` being the
    entry points by name. A router naming none is on ``default_entry_points`` (None: on every entry point;
    compile_config passes Traefik's defaults, :func:`default_entry_points_of`)."""
    wanted = router.entry_points or default_entry_points
    if wanted is None:
        return tuple(existing), ()
    present = tuple(ep for ep in wanted if ep in existing)
    if len(present) == len(wanted):
        return present, ()
    return present, tuple(ep for ep in wanted if ep not in existing)


def _redirect_port(
    target: str, scheme: str, entry_points: Mapping[str, EntryPoint], ports: Mapping[str, int]
) -> str | None:
    """The port a redirect names: the target entry point's (bound) port, omitted when it is the default."""
    if target in ports:
        port = str(ports[target])
    elif target in entry_points:
        port = entry_points[target].address.rpartition(":")[2]
    else:
        port = target.rpartition(":")[2]
    default = "443" if scheme == "https" else "80"
    return None if port in (default, "") else port


def compile_config(
    cfg: DynamicConfig,
    entry_points: tuple[EntryPoint, ...],
    previous: Mapping[str, Balancer] | None = None,
    default_entry_points: tuple[str, ...] | None = None,
    ports: Mapping[str, int] | None = None,
    challenge: ChallengeLookup | None = None,
    known_rules: Mapping[tuple[str, str], Rule] | None = None,
    previous_middlewares: Built | None = None,
    internal: Mapping[str, Handler] | None = None,
    logged: frozenset[str] = frozenset(),
) -> Compiled:
    """The routing tables of ``cfg``. ``previous`` is the last compile's balancers (health state carries
    over), ``known_rules`` its ``rules``: a rule whose text did not change is not parsed again;
    ``previous_middlewares`` its ``middlewares`` (built middlewares keep their state); ``internal`` the
    services dockroute serves itself (:mod:`router.internal`), by name; ``logged`` the lines the last
    compile logged (:class:`_Repeats`: not logged again)."""
    with logged_once(logged, *_COMPILE_LOGGERS) as repeats:
        compiled = _compile(
            cfg,
            tuple(ep for ep in entry_points if not ep.udp),  # a UDP entry point is for udp.routers only
            previous,
            default_entry_points,
            ports,
            challenge,
            known_rules,
            previous_middlewares,
            internal,
        )
        compiled.udp = compile_udp(cfg.udp, entry_points)
    compiled.logged = frozenset(repeats.seen)
    return compiled


_COMPILE_LOGGERS = ("dockroute.router", "dockroute.balancer", "dockroute.udp")


@contextmanager
def logged_once(previous: frozenset[str], *loggers: str) -> Iterator[_Repeats]:
    """While inside, the calling thread's records on ``loggers`` that were in ``previous`` (a
    ``Compiled.logged``) are dropped (:class:`_Repeats`); the filter's ``seen`` is the set to keep for the
    next time. For work redone on every configuration, as the compile (and the app's certificate wishes)."""
    repeats = _Repeats(previous)
    found = [logging.getLogger(name) for name in loggers]
    for logger in found:
        logger.addFilter(repeats)
    try:
        yield repeats
    finally:
        for logger in found:
            logger.removeFilter(repeats)


class _Repeats(logging.Filter):
    """Logs that do not repeat: a configuration is compiled again on every provider change (a Docker
    event about another container, a file saved), and a router left out, a middleware's warning or a
    service's error would be logged again each time. A line the previous compile logged too is dropped;
    one that is new or changed is logged, and one that stopped and comes back is logged again. Only the
    compiling thread's records are judged (the loop logs under the same names meanwhile)."""

    def __init__(self, previous: frozenset[str]) -> None:
        super().__init__()
        self.previous = previous
        self.seen: set[str] = set()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        if threading.get_ident() != self.thread:
            return True
        line = f"{record.levelno} {record.getMessage()}"
        self.seen.add(line)
        return line not in self.previous


def _compile(
    cfg: DynamicConfig,
    entry_points: tuple[EntryPoint, ...],
    previous: Mapping[str, Balancer] | None,
    default_entry_points: tuple[str, ...] | None,
    ports: Mapping[str, int] | None,
    challenge: ChallengeLookup | None,
    known_rules: Mapping[tuple[str, str], Rule] | None,
    previous_middlewares: Built | None,
    internal: Mapping[str, Handler] | None,
) -> Compiled:
    by_name = {ep.name: ep for ep in entry_points}
    if default_entry_points is None:
        default_entry_points = default_entry_points_of(entry_points)
    service_errors = _transport_errors(cfg)
    balancers = build_balancers(cfg.services, previous=previous, errors=service_errors)
    routes: dict[str, list[Route]] = {ep.name: [] for ep in entry_points}
    tls_routes: dict[str, list[Route]] = {ep.name: [] for ep in entry_points}
    errors: dict[str, str] = {}
    parsed: dict[tuple[str, str], Rule] = {}
    internal = internal or {}
    chains = Chains(cfg, balancers, previous_middlewares, internal)
    check_mirroring(cfg.services, partial(_usable, cfg, balancers, service_errors), service_errors)
    chains.service_errors = service_errors

    _internal_routes(routes, entry_points, by_name, ports or {}, challenge, chains)

    placed: dict[str, tuple[str, ...]] = {}
    https: dict[str, list[tuple[str, str, Rule]]] = {ep.name: [] for ep in entry_points}
    for name in sorted(cfg.routers):
        router: Router = cfg.routers[name]
        why = _priority(router) or (None if router.service in internal else _check(router, balancers, cfg))
        if why is None:
            rule_or_why = _rule(router, known_rules or {}, parsed)
            if isinstance(rule_or_why, str):
                why = rule_or_why
            else:
                rule = rule_or_why
        if why is None:
            on, why = _place(router, by_name, default_entry_points, cfg, rule)
        if why is None:
            targets = chains.targets(router, [by_name[ep] for ep, _ in on])
            if isinstance(targets, str):
                why = targets
            else:
                on = [(ep, tls) for ep, tls in on if ep in targets]
        if why is not None:
            errors[name] = why
            log.error("router %s is not routed: %s", name, why)
            continue
        _add_routes(router, rule, on, targets, routes, tls_routes, https)
        placed[name] = tuple(ep for ep, _ in on)

    return Compiled(
        tables={ep: RoutingTable(rs) for ep, rs in routes.items()},
        balancers=balancers,
        errors=errors,
        tls_tables={ep: RoutingTable(rs) for ep, rs in tls_routes.items()},
        rules=parsed,
        tls_options={ep: _host_options(ep, claims) for ep, claims in https.items()},
        entry_points=placed,
        middlewares=chains.built,
        service_errors=service_errors,
        middleware_errors=chains.middleware_errors,
    )


def _add_routes(
    router: Router,
    rule: Rule,
    on: list[tuple[str, RouterTLS | None]],
    targets: Mapping[str, Any],
    routes: dict[str, list[Route]],
    tls_routes: dict[str, list[Route]],
    https: dict[str, list[tuple[str, str, Rule]]],
) -> None:
    """A routed router's routes on each of its entry points (one Route object per distinct target and
    TLS options). As in Traefik: a router with tls (its own or its entry point's) answers HTTPS only
    there, one without answers plain HTTP only. An HTTPS route carries its options: the proxy answers 421
    when a connection made under other options asks for it (Traefik's per-router SNI check)."""
    by_options: dict[tuple[str, int], Route] = {}
    for ep_name, tls in on:
        target = targets[ep_name]
        options = (tls.options or DEFAULT_TLS_OPTIONS) if tls is not None else None
        key = (options or "", id(target))
        if key not in by_options:
            by_options[key] = Route(
                router.name,
                router.effective_priority,
                rule,
                target,
                tls_options=options,
                access_logs=router.access_logs,
                metrics=router.metrics,
            )
        if tls is not None:
            tls_routes[ep_name].append(by_options[key])
            https[ep_name].append((router.name, options or DEFAULT_TLS_OPTIONS, rule))
        else:
            routes[ep_name].append(by_options[key])


def _warn_own_tls(router: Router, ep_name: str, ep_tls: RouterTLS) -> None:
    """Traefik's model, easy to miss: a router with a tls of its own (a ``tls=true`` label) gets nothing
    of its entry point's ``http.tls``; say so when that drops the entry point's resolver or options."""
    own = router.tls
    assert own is not None
    lost = []
    if ep_tls.cert_resolver and not own.cert_resolver:
        lost.append(f"certResolver {ep_tls.cert_resolver}")
    if ep_tls.options and ep_tls.options != DEFAULT_TLS_OPTIONS and not own.options:
        lost.append(f"options {ep_tls.options}")
    if lost:
        log.warning(
            "router %s has a tls of its own: entry point %s's http.tls (%s) does not apply to it",
            router.name,
            ep_name,
            ", ".join(lost),
        )


def _internal_routes(
    routes: dict[str, list[Route]],
    entry_points: tuple[EntryPoint, ...],
    by_name: Mapping[str, EntryPoint],
    ports: Mapping[str, int],
    challenge: ChallengeLookup | None,
    chains: Chains,
) -> None:
    """The routes dockroute adds on plain HTTP: the ACME HTTP-01 answer above everything (no middleware
    applies to it: an entry point's auth must not fail certificate validation), then each entry point's
    redirection, behind the entry point's middlewares as in Traefik (an allow-list still applies).

    On an entry point with ``allowACMEByPass`` (Traefik's ``acme-http-bypass``), the answer takes the
    default priority (its rule's length), so a user's router for those paths (a certificate manager of its
    own) takes them, and the redirection leaves them alone."""
    bypass = f"PathPrefix(`{CHALLENGE_PREFIX}`)"
    if challenge is not None:
        target = ChallengeTarget("acme-http@internal", challenge)
        rule = parse_rule(bypass)
        for ep in entry_points:
            priority = len(bypass) if ep.allow_acme_bypass else MAX_PRIORITY
            routes[ep.name].append(Route("acme-http@internal", priority, rule, target))

    for ep in entry_points:
        red = ep.redirection
        if red is None:
            continue
        name = f"{ep.name}-to-{red.to}@internal"
        rule = parse_rule(f"PathPrefix(`/`) && !{bypass}" if ep.allow_acme_bypass else "PathPrefix(`/`)")
        port = _redirect_port(red.to, red.scheme, by_name, ports)
        target = chains.wrap_entry_point(name, ep, RedirectTarget(name, red.scheme, port, red.permanent))
        if isinstance(target, str):
            log.error("entry point %s: its redirection is not routed: %s", ep.name, target)
            continue
        routes[ep.name].append(Route(name=name, priority=red.priority, rule=rule, target=target))


def _place(
    router: Router,
    by_name: Mapping[str, EntryPoint],
    default_entry_points: tuple[str, ...] | None,
    cfg: DynamicConfig,
    rule: Rule,
) -> tuple[list[tuple[str, RouterTLS | None]], str | None]:
    """The (entry point, effective tls) pairs a router is routed on, or why it is routed nowhere.

    Entry points that do not exist and entry points whose tls names undefined options leave the router
    out there, with one line; when nothing is left the router is not routed at all (the reason says why).
    """
    present, missing = router_entry_points(router, by_name, default_entry_points)
    if not present and not missing:
        return [], "it names no entry point, and there is no default one (asDefault, or any but traefik)"
    if not present:
        return [], f"its entry points do not exist: {', '.join(missing)}"
    if missing:
        names = ", ".join(missing)
        log.warning("router %s: entry points %s do not exist; routed on the others", router.name, names)
    on: list[tuple[str, RouterTLS | None]] = []
    refused: dict[str, list[str]] = {}  # why → the entry points where the router cannot have its options
    for ep_name in present:
        ep = by_name[ep_name]
        tls = effective_tls(router, ep)
        options = tls.options if tls is not None else None
        if router.tls is not None and ep.tls is not None:
            _warn_own_tls(router, ep_name, ep.tls)
        if not options or options == DEFAULT_TLS_OPTIONS:
            on.append((ep_name, tls))
        elif options not in cfg.tls.options:
            refused.setdefault(f"tls options {options} do not exist", []).append(ep_name)
        elif not rule.domains:
            # Options are chosen by SNI, from the Host() names of the rules: a rule naming none could only
            # be reached over a connection made under other options (answered 421), so say it here.
            why = f"tls options {options} are chosen by SNI, and its rule names no Host()"
            refused.setdefault(why, []).append(ep_name)
        else:
            on.append((ep_name, tls))
    for why, eps in refused.items():
        if not on:
            return [], why
        log.error("router %s is not routed on entry points %s: %s", router.name, ", ".join(eps), why)
    return on, None


def _host_options(ep: str, claims: list[tuple[str, str, Rule]]) -> dict[str, str]:
    """Host → TLS options name on one entry point, as Traefik computes it: each HTTPS router's Host()
    names (``rule.domains``: wherever they stand in the rule, wildcards as ``*.domain``) claim its options;
    a host claimed with different options by several routers gets the default options, with one error
    line naming the host and the routers (their routes then answer 421 over default-options connections:
    closed, never served without their options)."""
    by_host: dict[str, dict[str, str]] = {}  # host → options → the first router claiming it
    for router, options, rule in claims:
        for host in rule.domains:
            by_host.setdefault(host, {}).setdefault(options, router)
    out: dict[str, str] = {}
    for host, options in by_host.items():
        if len(options) == 1:
            out[host] = next(iter(options))
            continue
        out[host] = DEFAULT_TLS_OPTIONS
        log.error(
            "entry point %s: routers %s use different TLS options for %s (%s); its handshakes use the "
            "default options, and the routes with other options answer it 421",
            ep,
            ", ".join(sorted(options.values())),
            host,
            ", ".join(sorted(options)),
        )
    return out


def _rule(
    router: Router, known: Mapping[tuple[str, str], Rule], parsed: dict[tuple[str, str], Rule]
) -> Rule | str:
    """The router's compiled rule (reused when the same text was compiled last time), or why it fails."""
    key = (router.rule, router.rule_syntax or "v3")
    rule = parsed.get(key) or known.get(key)
    if rule is None:
        try:
            rule = parse_rule(router.rule, syntax=key[1])
        except RuleError as exc:
            return f"rule {router.rule!r} does not parse: {exc}"
        except Exception as exc:  # a bug on one rule must never fail the whole build (every router)
            log.debug("rule %r of router %s", router.rule, router.name, exc_info=True)
            return f"rule {router.rule!r} could not be compiled ({type(exc).__name__}: {exc})"
    parsed[key] = rule
    return rule


MAX_USER_PRIORITY = MAX_PRIORITY - 1000  # Traefik's maxUserPriority (MaxInt - 1000), on this scale


def _priority(router: Router) -> str | None:
    """As Traefik: a user's router may not outrank dockroute's own (the ACME challenge, ping, the API, the
    redirections), which sit in the top 1000 priorities."""
    if router.priority > MAX_USER_PRIORITY and not router.name.endswith("@internal"):
        return f"its priority {router.priority} exceeds the maximum for a user's router, {MAX_USER_PRIORITY}"
    return None


def _check(router: Router, balancers: Mapping[str, Balancer], cfg: DynamicConfig) -> str | None:
    svc = cfg.services.get(router.service)
    if svc is not None and (svc.static is not None or svc.mirroring is not None):
        return None  # a mirroring service: checked by router.mirroring.check_mirroring, refused by Chains
    if router.service not in balancers:
        if router.service in cfg.services:
            return f"service {router.service} is not usable (see the error logged for it)"
        return f"service {router.service} does not exist"
    missing = _missing_transport(router.service, cfg, ())
    if missing is not None:  # as Traefik: the router is refused rather than served another transport
        return f"service {missing[0]} uses serversTransport {missing[1]}, which does not exist"
    return None


def _usable(
    cfg: DynamicConfig, balancers: Mapping[str, Balancer], errors: Mapping[str, str], name: str
) -> bool:
    """Whether service ``name`` can be a mirroring service's main service or mirror: built, or static."""
    svc = cfg.services.get(name)
    if name in errors or svc is None:
        return False
    return (svc.static is not None or name in balancers) and _missing_transport(name, cfg, ()) is None


def _transport_errors(cfg: DynamicConfig) -> dict[str, str]:
    """Service → why it cannot be served, for those whose own serversTransport does not exist."""
    out = {}
    for name in cfg.services:
        missing = _missing_transport(name, cfg, ())
        if missing is not None and missing[0] == name:
            out[name] = f"serversTransport {missing[1]} does not exist"
    return out


def _missing_transport(name: str, cfg: DynamicConfig, seen: tuple[str, ...]) -> tuple[str, str] | None:
    """The first (service, serversTransport) reached from service ``name`` whose transport does not exist."""
    svc = cfg.services.get(name)
    if svc is None or name in seen:
        return None
    if svc.load_balancer is not None:
        t = svc.load_balancer.servers_transport
        missing = t and t != DEFAULT_TRANSPORT and t not in cfg.servers_transports
        return (name, t) if missing and t else None
    for child in service_children(svc):
        found = _missing_transport(child, cfg, (*seen, name))
        if found is not None:
            return found
    return None
