"""Compile the merged ``tcp`` section into a :class:`~router.tcp.table.TCPTable` per entry point.

Runs in the build thread with the HTTP compile (whose HTTPS tables decide which SNI names HTTPS keeps).
A router that cannot be routed (its rule does not parse, its service or a middleware is missing, a
HostSNI other than ``*`` without tls, Traefik's refusal) is left out with one log line naming it, as HTTP
routers are; every other router keeps working. Entry points without TCP routers get no table (None): their
connections pay nothing new.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from discover.model import DEFAULT_TLS_OPTIONS, DynamicConfig, qualify_options
from discover.model_tcp import TCPConfig, TCPRouter, TCPServersTransport
from router.compile import (
    MAX_USER_PRIORITY,
    Compiled,
    default_entry_points_of,
    logged_once,
    router_entry_points,
)
from router.matchers import RuleError
from router.settings import EntryPoint
from router.table import RoutingTable
from router.tcp.health import TCPHealthChecks
from router.tcp.middlewares import Admit, build_middleware
from router.tcp.rules import TCPRule, parse_tcp_rule
from router.tcp.service import DEFAULT_TRANSPORT, TCPBalancer, TLSContexts, build_services
from router.tcp.table import PASSTHROUGH, TCPRoute, TCPTable

log = logging.getLogger("dockroute.router")

__all__ = ["CompiledTCP", "compile_tcp", "compile_tcp_beside"]


@dataclass
class CompiledTCP:
    tables: dict[str, TCPTable | None] = field(default_factory=dict)  # entry point → its table
    balancers: dict[str, TCPBalancer] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # router → why it is not routed
    service_errors: dict[str, str] = field(default_factory=dict)
    middlewares: dict[str, Admit] = field(default_factory=dict)
    entry_points: dict[str, tuple[str, ...]] = field(default_factory=dict)  # router → where it is routed
    rules: dict[str, TCPRule] = field(default_factory=dict)  # router → its rule (the certificates' names)
    logged: frozenset[str] = frozenset()  # as Compiled.logged: the next compile logs only new lines
    health: TCPHealthChecks = field(default_factory=lambda: TCPHealthChecks({}))
    tls_contexts: TLSContexts = field(
        default_factory=dict
    )  # servers' client contexts, reused while unchanged

    def take_over(self, previous: CompiledTCP | None) -> None:
        """On the loop, as these tables are applied: the previous compile's health checks stop, these
        start."""
        if previous is not None:
            previous.health.stop()
        self.health.start()


def compile_tcp(
    cfg: TCPConfig,
    tls_options: Mapping[str, object],
    entry_points: tuple[EntryPoint, ...],
    https_tables: Mapping[str, RoutingTable],
    previous: CompiledTCP | None = None,
    default_transport: TCPServersTransport = DEFAULT_TRANSPORT,
) -> CompiledTCP:
    """The TCP tables of ``cfg`` on ``entry_points`` (UDP ones are left out here). ``tls_options`` are the
    merged TLS options (a terminating router's must exist), ``https_tables`` the HTTP compile's HTTPS
    tables (their Host() names come before TCP routers), ``previous`` the last compile (in-flight counters
    survive a reload, and the lines it logged are not logged again); ``default_transport`` the static
    ``tcpServersTransport``."""
    with logged_once(previous.logged if previous is not None else frozenset(), "dockroute.router") as seen:
        out = _compile(cfg, tls_options, entry_points, https_tables, previous, default_transport)
    out.logged = frozenset(seen.seen)
    return out


def compile_tcp_beside(
    merged: DynamicConfig,
    entry_points: tuple[EntryPoint, ...],
    compiled: Compiled,
    previous: Compiled | None,
    default_transport: TCPServersTransport = DEFAULT_TRANSPORT,
) -> CompiledTCP:
    """:func:`compile_tcp` for a build: ``compiled`` is this configuration's HTTP compile (its HTTPS
    tables), ``previous`` the last one (its TCP compile)."""
    last = previous.tcp if previous is not None else None
    return compile_tcp(
        merged.tcp, merged.tls.options, entry_points, compiled.tls_tables, last, default_transport
    )


def _compile(
    cfg: TCPConfig,
    tls_options: Mapping[str, object],
    entry_points: tuple[EntryPoint, ...],
    https_tables: Mapping[str, RoutingTable],
    previous: CompiledTCP | None,
    default_transport: TCPServersTransport,
) -> CompiledTCP:
    eps = tuple(ep for ep in entry_points if not getattr(ep, "udp", False))
    by_name = {ep.name: ep for ep in eps}
    out = CompiledTCP()
    out.balancers = build_services(
        cfg.services,
        cfg.servers_transports,
        out.service_errors,
        default_transport,
        contexts=out.tls_contexts,
        previous=previous.tls_contexts if previous is not None else None,
    )
    out.health = TCPHealthChecks(out.balancers)
    old = previous.middlewares if previous is not None else {}
    for name, mw in cfg.middlewares.items():
        built = build_middleware(mw, old.get(name))
        if isinstance(built, str):
            log.error("TCP middleware %s cannot be used: %s", name, built)
        else:
            out.middlewares[name] = built
    routes: dict[str, list[TCPRoute]] = {ep.name: [] for ep in eps}
    defaults = default_entry_points_of(eps)
    for name in sorted(cfg.routers):
        router = cfg.routers[name]
        route = _route(router, cfg, tls_options, out)
        if isinstance(route, str):
            out.errors[name] = route
            log.error("TCP router %s is not routed: %s", name, route)
            continue
        present, missing = router_entry_points(router, by_name, defaults)  # type: ignore[arg-type]
        if missing:
            log.warning("TCP router %s: entry points %s do not exist", name, ", ".join(missing))
        if not present:
            out.errors[name] = "none of its entry points exists"
            log.error("TCP router %s is not routed: none of its entry points exists", name)
            continue
        for ep in present:
            routes[ep].append(route)
        out.entry_points[name] = present
    for ep in eps:
        own = routes[ep.name]
        if not own:
            out.tables[ep.name] = None
            continue
        https = https_tables.get(ep.name)
        https_routes = https.routes if https is not None else ()
        hosts = frozenset(d for r in https_routes for d in r.rule.domains)
        catch_all = any(not r.rule.domains for r in https_routes)
        out.tables[ep.name] = TCPTable(own, hosts, catch_all, ep.acme_tls_bypass)
    return out


def _route(
    router: TCPRouter, cfg: TCPConfig, tls_options: Mapping[str, object], out: CompiledTCP
) -> TCPRoute | str:
    """The router's route (the same object on every entry point), or why it is not routed."""
    try:
        rule = parse_tcp_rule(router.rule, router.rule_syntax or "v3")
    except RuleError as exc:
        return f"rule {router.rule!r} does not parse: {exc}"
    out.rules[router.name] = rule
    if router.tls is None and rule.sni_names and rule.sni_names[0] != "*":  # Traefik checks domains[0]
        return f"rule {router.rule!r} has a HostSNI matcher, but the router has no tls"
    priority = router.priority or (-1 if rule.catch_all else len(router.rule))
    if priority > MAX_USER_PRIORITY:
        return f"its priority {priority} exceeds the maximum for a user's router, {MAX_USER_PRIORITY}"
    balancer = out.balancers.get(router.service)
    if balancer is None:
        why = out.service_errors.get(router.service)
        return f"service {router.service} " + (f"is not usable: {why}" if why else "does not exist")
    admits = []
    for m in router.middlewares:
        if m not in out.middlewares:
            return f"middleware {m} " + ("is not usable" if m in cfg.middlewares else "does not exist")
        admits.append(out.middlewares[m])
    tls: str | None = None
    broken = False
    if router.tls is not None:
        if router.tls.passthrough:
            tls = PASSTHROUGH
        else:
            tls = router.tls.options or DEFAULT_TLS_OPTIONS
            provider = router.name.partition("@")[2]
            tls = qualify_options(tls, provider) if provider else tls
            if tls != DEFAULT_TLS_OPTIONS and tls not in tls_options:
                broken = True
                log.error(
                    "TCP router %s: tls options %s do not exist; its connections are closed", router.name, tls
                )
    return TCPRoute(router.name, priority, rule, balancer, tuple(admits), tls, broken)
