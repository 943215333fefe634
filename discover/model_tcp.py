"""The ``tcp`` section of the dynamic configuration: TCP routers, services, middlewares and transports.

Traefik's TCP routing (``tcp.routers``, ``tcp.services``, ``tcp.middlewares``, ``tcp.serversTransports``)
as plain frozen data, like :mod:`discover.model` for HTTP. A TCP router matches on what a connection shows
before any byte is relayed: the TLS ClientHello's SNI and ALPN, and the client's address.
Names are bare inside one provider; :func:`merge_tcp` qualifies them (``db@docker``) as :func:`merge` does
for HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from discover.model_base import EMPTY, Domain, frozen_map, qualify


@dataclass(frozen=True, slots=True)
class TCPRouterTLS:
    """``tcp.routers.<name>.tls``: present means the router matches TLS connections only. ``passthrough``
    relays the encrypted bytes untouched (routed by the ClientHello's SNI); otherwise dockroute terminates
    TLS with the same certificates, resolvers and options as HTTPS routers."""

    passthrough: bool = False
    cert_resolver: str | None = None
    domains: tuple[Domain, ...] = ()
    options: str | None = None


@dataclass(frozen=True, slots=True)
class TCPRouter:
    """``tcp.routers.<name>``. ``priority`` 0 means "the length of the rule", as in Traefik."""

    name: str
    rule: str
    service: str
    entry_points: tuple[str, ...] = ()  # empty: every entry point
    middlewares: tuple[str, ...] = ()
    priority: int = 0
    tls: TCPRouterTLS | None = None
    rule_syntax: str | None = None
    origin: str = ""


@dataclass(frozen=True, slots=True)
class TCPServer:
    """One backend of a TCP load balancer: ``host:port``; ``tls`` dials it with TLS (Traefik's
    ``servers[].tls``), with the service's ``serversTransport``."""

    address: str
    tls: bool = False
    unreachable: str = ""  # as model.Server.unreachable: known before any connection


@dataclass(frozen=True, slots=True)
class TCPServerHealthCheck:
    """``loadBalancer.healthCheck`` (Traefik 3.3+): each server is dialled every ``interval`` (a down one
    every ``unhealthy_interval``); with ``send`` those bytes are written and with ``expect`` exactly those
    bytes must come back, all within ``timeout``. ``port`` replaces the server's port."""

    port: int = 0
    send: str = ""
    expect: str = ""
    interval: float = 30.0
    unhealthy_interval: float | None = None
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class TCPLoadBalancer:
    """``tcp.services.<name>.loadBalancer``. ``proxy_protocol_version`` 0: no PROXY header to backends."""

    servers: tuple[TCPServer, ...] = ()
    proxy_protocol_version: int = 0  # 1 or 2: a PROXY protocol header is sent first (deprecated here)
    servers_transport: str | None = None
    termination_delay: float | None = None  # seconds, < 0: never; deprecated (serversTransport has it)
    health_check: TCPServerHealthCheck | None = None


@dataclass(frozen=True, slots=True)
class TCPWeightedRef:
    name: str
    weight: int = 1


@dataclass(frozen=True, slots=True)
class TCPWeighted:
    services: tuple[TCPWeightedRef, ...] = ()
    health_check: bool = False  # ``healthCheck: {}``: a child whose servers are all down is skipped


@dataclass(frozen=True, slots=True)
class TCPService:
    """``tcp.services.<name>``: exactly one of ``load_balancer`` or ``weighted``."""

    name: str
    load_balancer: TCPLoadBalancer | None = None
    weighted: TCPWeighted | None = None


@dataclass(frozen=True, slots=True)
class TCPIPAllowList:
    """``ipAllowList`` / ``ipWhiteList``: the connection's address must be in ``source_range``."""

    source_range: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TCPInFlightConn:
    """``inFlightConn``: at most ``amount`` open connections per client IP through the router."""

    amount: int = 0


@dataclass(frozen=True, slots=True)
class TCPMiddleware:
    """``tcp.middlewares.<name>.<type>`` (``ipAllowList``, ``ipWhiteList``, ``inFlightConn``); ``error`` as
    :class:`discover.model.Middleware`'s: kept so the routers using it are refused by name."""

    name: str
    type: str
    options: Any = field(default_factory=lambda: EMPTY)
    error: str = ""


@dataclass(frozen=True, slots=True)
class TCPServersTransportTLS:
    server_name: str = ""
    insecure_skip_verify: bool = False
    root_cas: tuple[str, ...] = ()
    certificates: tuple[tuple[str, str], ...] = ()  # (certFile, keyFile) presented to backends
    peer_cert_uri: str = ""


@dataclass(frozen=True, slots=True)
class TCPServersTransport:
    """``tcp.serversTransports.<name>``; seconds."""

    dial_timeout: float = 30.0  # 0: none
    dial_keep_alive: float = 15.0  # < 0: no keep-alive probes
    termination_delay: float = (
        0.1  # Traefik: 100ms to wait for the other side after one side closed; < 0 never
    )
    proxy_protocol_version: int = 0  # 1 or 2: a PROXY protocol header to the servers
    tls: TCPServersTransportTLS | None = None


@dataclass(frozen=True, slots=True)
class TCPConfig:
    routers: Mapping[str, TCPRouter] = field(default_factory=lambda: EMPTY)
    services: Mapping[str, TCPService] = field(default_factory=lambda: EMPTY)
    middlewares: Mapping[str, TCPMiddleware] = field(default_factory=lambda: EMPTY)
    servers_transports: Mapping[str, TCPServersTransport] = field(default_factory=lambda: EMPTY)


def merge_tcp(configs: Mapping[str, TCPConfig]) -> TCPConfig:
    """Several providers' ``tcp`` sections as one, names qualified with their provider (sorted order)."""
    routers: dict[str, TCPRouter] = {}
    services: dict[str, TCPService] = {}
    middlewares: dict[str, TCPMiddleware] = {}
    transports: dict[str, TCPServersTransport] = {}
    for provider in sorted(configs):
        cfg = configs[provider]
        for name, r in cfg.routers.items():
            qn = qualify(name, provider)
            routers[qn] = replace(
                r,
                name=qn,
                service=qualify(r.service, provider),
                middlewares=tuple(qualify(m, provider) for m in r.middlewares),
            )
        for name, s in cfg.services.items():
            qn = qualify(name, provider)
            lb, weighted = s.load_balancer, s.weighted
            if lb is not None and lb.servers_transport:
                lb = replace(lb, servers_transport=qualify(lb.servers_transport, provider))
            if weighted is not None:
                weighted = replace(
                    weighted,
                    services=tuple(replace(w, name=qualify(w.name, provider)) for w in weighted.services),
                )
            services[qn] = replace(s, name=qn, load_balancer=lb, weighted=weighted)
        for name, m in cfg.middlewares.items():
            qn = qualify(name, provider)
            middlewares[qn] = replace(m, name=qn)
        for name, t in cfg.servers_transports.items():
            transports[qualify(name, provider)] = t
    return TCPConfig(
        routers=frozen_map(routers),
        services=frozen_map(services),
        middlewares=frozen_map(middlewares),
        servers_transports=frozen_map(transports),
    )
