"""Static settings the router needs: entry points and the transport to backends.

These are filled by the command-line package from Traefik's static configuration (``entryPoints``,
``serversTransport``). They are plain frozen data, so a worker process can be handed a copy. Durations are
seconds (floats); 0 means "no limit" exactly where Traefik says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from discover.model import RouterTLS, ServersTransport

# Go's http.DefaultMaxHeaderBytes, Traefik's ``maxHeaderBytes`` default: the one place the 1 MiB is written.
DEFAULT_MAX_HEADER_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Redirection:
    """``entryPoints.<ep>.http.redirections.entryPoint``: send every request to another entry point."""

    to: str  # entry point name, or a bare ":443"-style address / port
    scheme: str = "https"
    permanent: bool = True  # Traefik: 301 (GET/HEAD) or 308 when permanent; 302/307 otherwise
    priority: int = 2**31 - 2  # Traefik's MaxInt32 - 1: below the ACME challenge router only


@dataclass(frozen=True, slots=True)
class ProxyProtocolIn:
    """``entryPoints.<ep>.proxyProtocol``: a PROXY protocol header (v1 or v2) is read first on every
    connection (optional, as in Traefik); from ``trusted_ips`` (addresses or CIDRs), or from every peer with
    ``insecure``, its source address is then the client's everywhere (rules, logs, X-Forwarded-For,
    limits). A connection from any other peer that sends one is refused (Traefik reads and drops it: see
    router.proxy_protocol), as is a malformed header."""

    trusted_ips: tuple[str, ...] = ()
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class EntryPoint:
    """``entryPoints.<name>``."""

    name: str
    address: str  # ":80", "0.0.0.0:8080", "[::1]:80", "127.0.0.1:0"
    redirection: Redirection | None = None
    trusted_ips: tuple[str, ...] = ()  # forwardedHeaders.trustedIPs (addresses or CIDRs)
    forwarded_insecure: bool = False  # forwardedHeaders.insecure: trust every client's X-Forwarded-*
    read_timeout: float = 60.0  # respondingTimeouts.readTimeout: whole request incl. body (Traefik 60s)
    write_timeout: float = 0.0  # respondingTimeouts.writeTimeout: 0 = none (Traefik's default)
    idle_timeout: float = 180.0  # respondingTimeouts.idleTimeout: keep-alive idle (Traefik 180s)
    header_timeout: float = 10.0  # deadline for a request's headers; never aiohttp's default hour
    grace_timeout: float = 10.0  # lifeCycle.graceTimeOut
    request_accept_grace_timeout: float = 0.0  # lifeCycle.requestAcceptGraceTimeout
    # http.tls: applies to every router on this entry point that has no tls of its own (Traefik's model):
    # such routers then answer HTTPS only here, with this resolver, these domains and these options.
    tls: RouterTLS | None = None
    # http.middlewares: run before every router's own on this entry point (and before its redirection);
    # a bare name resolves in the provider of the router it is applied to (Traefik's rule).
    middlewares: tuple[str, ...] = ()
    # asDefault: a router naming no entry point is on the entry points marked so (when any is), instead of
    # on every entry point but ``traefik`` (Traefik's rule)
    as_default: bool = False
    # observability.accessLogs / .metrics: false leaves this entry point's requests out of the access log /
    # the metrics (Traefik v3's per-entry-point switches; both on by default)
    access_logs: bool = True
    metrics: bool = True
    # http.encodedCharacters: the allowEncoded* keys that are true (the encoded characters let through)
    allowed_encoded: frozenset[str] = frozenset()
    # http.maxHeaderBytes: the request head's total size (Go's and Traefik's default, 1 MiB)
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    # http.underscoreHeadersStrategy: keep, delete or reject request headers with "_" in their name
    underscore_headers: str = "keep"
    # http.sanitizePath: dot segments and duplicate slashes removed before routing (Traefik's default)
    sanitize_path: bool = True
    # proxyProtocol: read a PROXY header from trusted peers (None: no PROXY protocol on this entry point)
    proxy_protocol: ProxyProtocolIn | None = None
    # an address ending in "/udp": a UDP entry point (udp.routers only); ``address`` keeps the suffix off
    udp: bool = False
    udp_timeout: float = 3.0  # udp.timeout: a UDP session idle this long is forgotten (Traefik: 3s)
    # allowACMEByPass as set: ACME HTTP-01 requests are not dockroute's above everything (its answer
    # takes the default priority, so a user's router can take them) and the redirection leaves them be
    allow_acme_bypass: bool = False
    # allowACMEByPass, or no resolver using tlsChallenge (Traefik's rule): a ClientHello offering
    # acme-tls/1 goes to the TLS TCP routers first, so a passthrough server answers its own TLS-ALPN-01
    acme_tls_bypass: bool = False


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Static ``api``: the API and dashboard, served by the internal service ``api@internal`` (and
    ``dashboard@internal``). Reached through a user's router to them; with ``insecure`` also on entry
    point ``traefik`` (``:8080`` unless the user defines it), as in Traefik."""

    dashboard: bool = True
    insecure: bool = False
    debug: bool = False  # /debug/vars and /debug/pprof in Traefik: dockroute's /debug/vars only
    base_path: str = "/"  # api.basePath (Traefik v3): where /api and /dashboard live


@dataclass(frozen=True, slots=True)
class PingSettings:
    """Static ``ping``: ``/ping`` answers 200 ``OK``, and ``terminating_status_code`` once a graceful
    shutdown began (so a load balancer in front stops sending first)."""

    entry_point: str = "traefik"
    manual_routing: bool = False  # True: only a user's router to ping@internal serves it
    terminating_status_code: int = 503


@dataclass(frozen=True, slots=True)
class PrometheusSettings:
    """Static ``metrics.prometheus``: Traefik's metrics, prefix ``dockroute_``, at ``/metrics``."""

    buckets: tuple[float, ...] = (0.1, 0.3, 1.2, 5.0)
    add_entry_points_labels: bool = True
    add_routers_labels: bool = False
    add_services_labels: bool = True
    entry_point: str = "traefik"
    manual_routing: bool = False
    header_labels: tuple[tuple[str, str], ...] = ()  # (label, request header)


# The static ``serversTransport`` is the same concept as a named ``http.serversTransports`` entry: one type.
Transport = ServersTransport
