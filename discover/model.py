"""The dynamic-configuration model: what every provider produces and the router consumes.

It mirrors Traefik's dynamic configuration (``http.routers``, ``http.services``, ``http.middlewares``,
``tls``) so that a file written for Traefik and a set of ``traefik.*`` labels land on the same plain data.
Everything here is frozen and built from tuples and read-only mappings: a snapshot is shared between the
event loop, the ACME worker threads and (later) several worker processes, and must never change under them.

Names inside one provider's config are bare (``app``); :func:`merge` qualifies them with the provider
(``app@file``) as Traefik does, and resolves references: a bare reference points into the same provider,
a qualified one (``auth@docker``) into another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any

from discover.model_base import EMPTY, Domain, frozen_map, qualify
from discover.model_tcp import TCPConfig, merge_tcp
from discover.model_udp import UDPConfig, merge_udp

__all__ = ["EMPTY", "Domain", "TCPConfig", "UDPConfig", "frozen_map", "qualify"]  # and everything below


@dataclass(frozen=True, slots=True)
class RouterTLS:
    """``tls`` of a router: present means the router listens for HTTPS traffic."""

    cert_resolver: str | None = None
    domains: tuple[Domain, ...] = ()
    options: str | None = None


@dataclass(frozen=True, slots=True)
class Router:
    """``http.routers.<name>``. ``priority`` 0 means "the length of the rule", as in Traefik."""

    name: str
    rule: str
    service: str
    entry_points: tuple[str, ...] = ()  # empty: every entry point (Traefik's default)
    middlewares: tuple[str, ...] = ()
    priority: int = 0
    tls: RouterTLS | None = None
    rule_syntax: str | None = None  # "v2" or "v3"; None follows the static default
    # ``observability`` (Traefik v3.2+): False leaves this router's requests out of the access log or the
    # metrics (its entry point's own switches apply as well)
    access_logs: bool = True
    metrics: bool = True
    # Where the router came from, for log lines a user can act on: "container web-1", "file /etc/x.yml".
    origin: str = ""

    @property
    def effective_priority(self) -> int:
        return self.priority if self.priority else len(self.rule)


@dataclass(frozen=True, slots=True)
class Server:
    """One backend of a load balancer. ``weight`` 0 takes it out of rotation."""

    url: str
    weight: int = 1
    # Why the proxy cannot reach this server, when a provider knows it before any request (a container on
    # a Docker network dockroute is not on); empty when nothing is known against it. Requests picking it
    # are answered 502 at once with this reason, rather than waiting out the dial timeout.
    unreachable: str = ""


@dataclass(frozen=True, slots=True)
class Discovered:
    """One thing a provider saw, routed or not, and why not (what ``/api/discovery`` lists): a container
    for the Docker provider. ``reason`` is empty when it is routed; ``fix`` is the exact action that would
    route it, when one is known (``docker network connect net dockroute``)."""

    provider: str  # "docker"
    kind: str  # "container"
    name: str  # the container's name (without the leading "/")
    id: str = ""  # the container's id
    routed: bool = False
    # one of REASONS (what a tool can filter on), then the details
    reason: str = ""
    detail: str = ""
    fix: str = ""
    routers: tuple[str, ...] = ()  # qualified names of what it produced (a left-out one too)
    services: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()


# What ``Discovered.reason`` may be: each names one way a container ends up not routed.
REASONS = (
    "no-port",  # no exposed port and no loadbalancer.server.port label
    "unreachable-network",  # on no network dockroute can reach (Server.unreachable is set as well)
    "malformed-label",  # a label that cannot be read (``detail`` names it)
    "unhealthy",  # its health check fails, or it is starting
    "disabled",  # traefik.enable=false, or not exposed by default
    "constraint",  # the provider's constraints leave it out
    "not-running",  # stopped, paused, restarting
    "conflict",  # its definitions conflict with another container's
    "error",  # anything else (``detail`` says what)
)


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """``loadBalancer.healthCheck``: active checks; durations are in seconds."""

    path: str = "/"
    interval: float = 30.0
    timeout: float = 5.0
    hostname: str | None = None
    scheme: str | None = None
    port: int | None = None
    method: str = "GET"
    status: int | None = None  # expected status; None accepts 2xx and 3xx
    headers: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    follow_redirects: bool = True


@dataclass(frozen=True, slots=True)
class StickyCookie:
    """``sticky.cookie``: which server served a client is remembered in a cookie."""

    name: str = ""  # empty: a name derived from the service, as Traefik does
    secure: bool = False
    http_only: bool = False
    same_site: str = ""  # "", "none", "lax", "strict"
    max_age: int = 0
    path: str = "/"


@dataclass(frozen=True, slots=True)
class PassiveHealthCheck:
    """``loadBalancer.passiveHealthCheck`` (Traefik v3.5+): a server that fails ``max_failed_attempts``
    times within ``failure_window`` seconds is taken out of rotation for ``failure_window`` seconds."""

    failure_window: float = 10.0
    max_failed_attempts: int = 1


# ``loadBalancer.strategy`` (Traefik v3.4-3.7), canonical lower-case names; ``wrr`` is the default.
STRATEGIES = ("wrr", "p2c", "hrw", "leasttime")


@dataclass(frozen=True, slots=True)
class LoadBalancer:
    """``services.<name>.loadBalancer``."""

    servers: tuple[Server, ...] = ()
    pass_host_header: bool = True
    health_check: HealthCheck | None = None
    sticky: StickyCookie | None = None
    servers_transport: str | None = None
    strategy: str = "wrr"  # one of STRATEGIES
    passive_health_check: PassiveHealthCheck | None = None


@dataclass(frozen=True, slots=True)
class WeightedRef:
    """One child of a ``weighted`` service."""

    name: str
    weight: int = 1


@dataclass(frozen=True, slots=True)
class Weighted:
    """``services.<name>.weighted``: traffic split between other services."""

    services: tuple[WeightedRef, ...] = ()
    sticky: StickyCookie | None = None


@dataclass(frozen=True, slots=True)
class MirrorRef:
    """One mirror of a ``mirroring`` service: a service name and the share of requests it gets a copy of."""

    name: str
    percent: int = 0  # 0-100


@dataclass(frozen=True, slots=True)
class Mirroring:
    """``services.<name>.mirroring``: every request goes to ``service``; copies go to the mirrors (their
    answers are dropped; they never slow or fail the request). ``max_body_size`` -1 means no limit."""

    service: str
    mirrors: tuple[MirrorRef, ...] = ()
    max_body_size: int = -1
    mirror_body: bool = True
    health_check: bool = False  # ``healthCheck: {}`` present: health is propagated to parents


@dataclass(frozen=True, slots=True)
class Failover:
    """``services.<name>.failover``: requests go to ``service`` while it has a healthy server, to
    ``fallback`` otherwise (and back when ``service`` recovers)."""

    service: str
    fallback: str
    health_check: bool = False  # ``healthCheck: {}`` present: health is propagated to parents


@dataclass(frozen=True, slots=True)
class StaticFiles:
    """``services.<name>.static`` (dockroute's own; Traefik has none): files under ``root`` served by the
    proxy itself. ``try_files`` are tried in order for a path that is not a file (``$uri``, ``/index.html``
    for a single-page app); ``browse`` lists directories without an index."""

    root: str
    index: tuple[str, ...] = ("index.html",)
    browse: bool = False
    try_files: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Service:
    """``http.services.<name>``: exactly one of ``load_balancer``, ``weighted``, ``mirroring``,
    ``failover`` or ``static`` is set."""

    name: str
    load_balancer: LoadBalancer | None = None
    weighted: Weighted | None = None
    static: StaticFiles | None = None
    mirroring: Mirroring | None = None
    failover: Failover | None = None


def service_children(svc: Service) -> tuple[str, ...]:
    """The services a service is made of, by name: a ``weighted`` service's children, a ``mirroring``
    service's main service then its mirrors, a ``failover``'s main service then its fallback; none for a
    load balancer or static files. The one list that reference warnings, the compile's checks (cycles,
    serversTransports) and the balancers' builders walk."""
    if svc.weighted is not None:
        return tuple(ref.name for ref in svc.weighted.services)
    if svc.mirroring is not None:
        return (svc.mirroring.service, *(ref.name for ref in svc.mirroring.mirrors))
    if svc.failover is not None:
        return (svc.failover.service, svc.failover.fallback)
    return ()


def cycle_message(resolving: Sequence[str], again: str) -> str:
    """Why services made of each other are left out, in one wording wherever the cycle is found:
    ``services form a cycle: a -> b -> a`` (``resolving``: the services being built, outermost first;
    ``again``: the one met a second time)."""
    return "services form a cycle: " + " -> ".join([*resolving[list(resolving).index(again) :], again])


@dataclass(frozen=True, slots=True)
class Middleware:
    """``http.middlewares.<name>.<type>``: the type name (Traefik's, e.g. ``redirectScheme``) and its
    options: the type's frozen options dataclass (:mod:`discover.middlewares`), or a read-only mapping for
    a type dockroute does not implement. ``error`` says why the options are unusable (a bad value, named
    by its option path): the middleware is kept so that the routers using it are refused by name, and
    every other router of the same file keeps working."""

    name: str
    type: str
    options: Any = field(default_factory=lambda: EMPTY)
    error: str = ""


@dataclass(frozen=True, slots=True)
class CertificateFile:
    """``tls.certificates[]`` or a default certificate: PEM files, or inline PEM text as Traefik allows."""

    cert_file: str
    key_file: str
    stores: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ClientAuth:
    """``tls.options.<name>.clientAuth``: which client certificates a handshake asks for and trusts.
    ``client_auth_type`` is Go's name (``NoClientCert`` … ``RequireAndVerifyClientCert``)."""

    ca_files: tuple[str, ...] = ()  # PEM files (or inline PEM) whose CAs client certificates must chain to
    client_auth_type: str = "NoClientCert"


DEFAULT_TLS_OPTIONS = "default"  # the options every router without its own uses (never qualified)


@dataclass(frozen=True, slots=True)
class TLSOptions:
    """``tls.options.<name>``, with Traefik's defaults. Versions, suites and curves keep Go's names
    (``VersionTLS13``, ``TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256``, ``CurveP256``): the router maps them
    to OpenSSL's when it builds the handshake contexts."""

    min_version: str = "VersionTLS12"
    max_version: str = ""  # "": the newest the TLS library supports
    cipher_suites: tuple[str, ...] = ()  # (): the library's defaults; TLS 1.2 and below only, as in Go
    curve_preferences: tuple[str, ...] = ()
    sni_strict: bool = False
    alpn_protocols: tuple[str, ...] = ("h2", "http/1.1", "acme-tls/1")
    client_auth: ClientAuth = field(default_factory=ClientAuth)
    disable_session_tickets: bool = False


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """``tls``: certificates from files, the default store's default certificate, and TLS options by
    (qualified) name; ``default`` is never qualified: whichever provider defines it, it is the default."""

    certificates: tuple[CertificateFile, ...] = ()
    default_certificate: CertificateFile | None = None
    options: Mapping[str, TLSOptions] = field(default_factory=lambda: EMPTY)


GO_DEFAULT_IDLE_PER_HOST = 2  # Go's http.DefaultMaxIdleConnsPerHost


def idle_conns_per_host(configured: int) -> int:
    """What ``maxIdleConnsPerHost`` means in Go's ``http.Transport``, which Traefik hands it to: 0 is Go's
    default (2), a negative number keeps no idle connection. The stored value is the effective limit."""
    if configured == 0:
        return GO_DEFAULT_IDLE_PER_HOST
    return max(0, configured)


@dataclass(frozen=True, slots=True)
class ServersTransport:
    """How the proxy talks to a service's backends: Traefik's ``serversTransport`` (the static default) and
    ``http.serversTransports.<name>`` (named, referenced by ``loadBalancer.serversTransport``). One type for
    both, so the proxy and the health checks of a service read the same settings. Durations in seconds."""

    dial_timeout: float = 30.0  # forwardingTimeouts.dialTimeout
    response_header_timeout: float = 0.0  # forwardingTimeouts.responseHeaderTimeout: 0 = none
    idle_conn_timeout: float = 90.0  # forwardingTimeouts.idleConnTimeout
    max_idle_conns_per_host: int = 200  # maxIdleConnsPerHost (Traefik: 200)
    insecure_skip_verify: bool = False
    root_cas: tuple[str, ...] = ()  # PEM files (or inline PEM) trusted for https backends
    server_name: str = ""  # serverName: SNI and the name verified; empty: the backend URL's host
    certificates: tuple[CertificateFile, ...] = ()  # client certificates presented to backends (mTLS)
    peer_cert_uri: str = ""  # peerCertURI: a URI SAN the backend's certificate must carry


@dataclass(frozen=True, slots=True)
class DynamicConfig:
    """One provider's dynamic configuration, or the merged view of all of them."""

    routers: Mapping[str, Router] = field(default_factory=lambda: EMPTY)
    services: Mapping[str, Service] = field(default_factory=lambda: EMPTY)
    middlewares: Mapping[str, Middleware] = field(default_factory=lambda: EMPTY)
    tls: TLSConfig = field(default_factory=TLSConfig)
    servers_transports: Mapping[str, ServersTransport] = field(default_factory=lambda: EMPTY)
    tcp: TCPConfig = field(default_factory=TCPConfig)  # ``tcp`` section (routers, services, middlewares)
    udp: UDPConfig = field(default_factory=UDPConfig)  # ``udp`` section (routers, services)
    # what the provider saw, routed or not (reports only: compiling ignores it)
    discovered: tuple[Discovered, ...] = ()


def qualify_options(name: str, provider: str) -> str:
    """A TLS options name: qualified like any other, except ``default`` (and ``default@…``), which is the
    one default set whichever provider wrote it (as in Traefik)."""
    if name.partition("@")[0] == DEFAULT_TLS_OPTIONS:
        return DEFAULT_TLS_OPTIONS
    return qualify(name, provider)


def qualify_references(options: Any, provider: str) -> Any:
    """A middleware's options with the names they reference (``chain.middlewares``, ``errors.service``:
    fields declared with ``reference=``) qualified like a router's references."""
    if not is_dataclass(options):
        return options
    changes: dict[str, Any] = {}
    for f in fields(options):
        if not f.metadata.get("reference"):
            continue
        value = getattr(options, f.name)
        if isinstance(value, str) and value:
            changes[f.name] = qualify(value, provider)
        elif isinstance(value, tuple):
            changes[f.name] = tuple(qualify(v, provider) for v in value)
    return replace(options, **changes) if changes else options


def _qualified_mirroring(m: Mirroring | None, provider: str) -> Mirroring | None:
    """A mirroring service's main service and mirrors resolved in ``provider`` (bare names)."""
    if m is None:
        return None
    return replace(
        m,
        service=qualify(m.service, provider),
        mirrors=tuple(replace(r, name=qualify(r.name, provider)) for r in m.mirrors),
    )


def _qualified_failover(f: Failover | None, provider: str) -> Failover | None:
    """A failover service's main and fallback services resolved in ``provider`` (bare names)."""
    if f is None:
        return None
    return replace(f, service=qualify(f.service, provider), fallback=qualify(f.fallback, provider))


def merge(configs: Mapping[str, DynamicConfig]) -> DynamicConfig:
    """Merge several providers' configs into one view with qualified names.

    ``configs`` maps a provider name (``file``, ``docker``) to its config. References without ``@`` are
    resolved inside their own provider. The merge is deterministic (providers in sorted order) so that two
    equal inputs give equal snapshots and no rebuild is triggered for nothing.
    """
    routers: dict[str, Router] = {}
    services: dict[str, Service] = {}
    middlewares: dict[str, Middleware] = {}
    transports: dict[str, ServersTransport] = {}
    certificates: list[CertificateFile] = []
    default_certificate: CertificateFile | None = None
    options: dict[str, TLSOptions] = {}
    discovered: list[Discovered] = []
    for provider in sorted(configs):
        cfg = configs[provider]
        discovered.extend(cfg.discovered)
        for name, r in cfg.routers.items():
            qn = qualify(name, provider)
            tls = r.tls
            if tls is not None and tls.options:
                tls = replace(tls, options=qualify_options(tls.options, provider))
            routers[qn] = replace(
                r,
                name=qn,
                service=qualify(r.service, provider),
                middlewares=tuple(qualify(m, provider) for m in r.middlewares),
                tls=tls,
            )
        for name, s in cfg.services.items():
            qn = qualify(name, provider)
            weighted = s.weighted
            if weighted is not None:
                weighted = replace(
                    weighted,
                    services=tuple(replace(w, name=qualify(w.name, provider)) for w in weighted.services),
                )
            lb = s.load_balancer
            if lb is not None and lb.servers_transport:
                lb = replace(lb, servers_transport=qualify(lb.servers_transport, provider))
            services[qn] = replace(
                s,
                name=qn,
                weighted=weighted,
                load_balancer=lb,
                mirroring=_qualified_mirroring(s.mirroring, provider),
                failover=_qualified_failover(s.failover, provider),
            )
        for name, m in cfg.middlewares.items():
            qn = qualify(name, provider)
            middlewares[qn] = replace(m, name=qn, options=qualify_references(m.options, provider))
        for name, t in cfg.servers_transports.items():
            transports[qualify(name, provider)] = t
        certificates.extend(cfg.tls.certificates)
        for name, o in cfg.tls.options.items():
            options.setdefault(qualify_options(name, provider), o)  # the first provider's default wins
        if cfg.tls.default_certificate is not None and default_certificate is None:
            default_certificate = cfg.tls.default_certificate
    return DynamicConfig(
        routers=frozen_map(routers),
        services=frozen_map(services),
        middlewares=frozen_map(middlewares),
        tls=TLSConfig(
            certificates=tuple(certificates),
            default_certificate=default_certificate,
            options=frozen_map(options),
        ),
        servers_transports=frozen_map(transports),
        tcp=merge_tcp({p: c.tcp for p, c in configs.items()}),
        udp=merge_udp({p: c.udp for p, c in configs.items()}),
        discovered=tuple(discovered),
    )
