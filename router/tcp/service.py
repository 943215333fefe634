"""TCP services: where a routed connection goes (Traefik's ``tcp.services`` and ``tcp.serversTransports``).

A load balancer picks its servers in turn, a weighted service its children by weight (Traefik's TCP wrr
gives servers no weight). Everything a connection needs is resolved here, in the build thread: the
address, the dial timeout and keep-alive, the termination delay, the PROXY protocol version, and the
client TLS context for ``servers[].tls`` (reading CA and certificate files is file work, never on the
loop). Traefik's deprecated load-balancer ``proxyProtocol``/``terminationDelay`` apply only when the
service names no serversTransport; a named one's settings win, as in Traefik's DialerManager.
"""

from __future__ import annotations

import logging
import random
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from discover.model import CertificateFile, ServersTransport
from discover.model_base import host_and_port
from discover.model_tcp import TCPServerHealthCheck, TCPServersTransport, TCPServersTransportTLS, TCPService
from router.interleaved_wrr import InterleavedWRR
from router.transports import TransportUnusable, make_client_context

log = logging.getLogger("dockroute.router")

DEFAULT_TRANSPORT = TCPServersTransport()


@dataclass(frozen=True, slots=True)
class Server:
    """One backend, with how to reach it."""

    address: str
    host: str
    port: int
    dial_timeout: float
    keep_alive: float
    termination_delay: float
    proxy_protocol: int
    tls: ssl.SSLContext | None
    server_name: str | None
    unreachable: str = ""


class TCPBalancer:
    """Servers in turn, or child balancers by weight, in the order Traefik's TCP ``WRRLoadBalancer``
    picks them (:class:`~router.interleaved_wrr.InterleavedWRR`, the one layer-4 weighted round robin).

    With a health check (``health_check``) the servers it finds down are skipped (``down``, set by
    :mod:`router.tcp.health`); a weighted service with ``healthCheck`` skips children with no server up.
    Nothing up: no server (the connection is closed), as Traefik's "no servers available"."""

    __slots__ = ("name", "servers", "health_check", "down", "_wrr", "_tries", "_track_children")

    def __init__(
        self,
        name: str,
        servers: tuple[Server, ...] = (),
        children: tuple[tuple[TCPBalancer, int], ...] = (),
        health_check: TCPServerHealthCheck | None = None,
        track_children: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.servers = servers
        self.health_check = health_check
        self.down: dict[str, str] = {}  # address → why, for the servers the health check finds down
        self._track_children = track_children
        items = [(s, 1) for s in servers] if servers else list(children)
        if rng is not None and servers:  # Traefik shuffles a load balancer's servers once per build
            rng.shuffle(items)
        self._wrr: InterleavedWRR[Server | TCPBalancer] = InterleavedWRR(items)
        self._tries = max(1, sum(w for _, w in items))  # a whole round of the interleaved order

    def available(self) -> bool:
        """Whether some server below is not known to be down."""
        if self.servers:
            return len(self.down) < len({s.address for s in self.servers})
        return any(isinstance(c, TCPBalancer) and c.available() for c in self._wrr.items)

    def pick(self) -> Server | None:
        """The next server not known to be down, or None when there is none."""
        for _ in range(self._tries if (self.down or self._track_children) else 1):
            got = self._wrr.next()
            if got is None:
                return None
            if isinstance(got, TCPBalancer):
                if self._track_children and not got.available():
                    continue
                return got.pick()
            if got.address not in self.down:
                return got
        return None


TLSContexts = dict[tuple[str, ServersTransport], ssl.SSLContext]


def _client_context(
    transport: TCPServersTransport, name: str, contexts: TLSContexts, previous: TLSContexts
) -> ssl.SSLContext:
    """The client context for ``servers[].tls``, from the one builder HTTP transports use
    (:func:`router.transports.make_client_context`: inline PEM, the first of several certificates with a
    warning, ``peerCertURI``), with no ALPN as Traefik's TCP dialer. Built once per transport and build, and
    carried over from the ``previous`` build while the settings are the same (no file is read again).
    Raises :class:`~router.transports.TransportUnusable`."""
    tls = transport.tls or TCPServersTransportTLS()
    settings = ServersTransport(
        insecure_skip_verify=tls.insecure_skip_verify,
        root_cas=tls.root_cas,
        server_name=tls.server_name,
        certificates=tuple(CertificateFile(cert, key) for cert, key in tls.certificates),
        peer_cert_uri=tls.peer_cert_uri,
    )
    key = (name, settings)
    ctx = contexts.get(key) or previous.get(key)
    if ctx is None:
        ctx = make_client_context(settings, f"{name} (TCP)", alpn=())
    contexts[key] = ctx
    return ctx


def build_services(
    services: Mapping[str, TCPService],
    transports: Mapping[str, TCPServersTransport],
    errors: dict[str, str],
    default: TCPServersTransport = DEFAULT_TRANSPORT,
    contexts: TLSContexts | None = None,
    previous: TLSContexts | None = None,
    rng: random.Random | None = None,
) -> dict[str, TCPBalancer]:
    """A balancer per usable service; ``errors`` gets why the others are not (a missing transport, a
    child that does not exist or is unusable, a cycle, an unreadable certificate). ``default`` is the
    static ``tcpServersTransport``, for services naming none (Traefik's ``default@internal``).
    ``contexts`` gets the client TLS contexts built (``previous``: the last build's, reused when the same);
    servers and weighted children are shuffled once per build with ``rng``, as Traefik's TCP manager."""
    out: dict[str, TCPBalancer] = {}
    state = _Build(
        contexts if contexts is not None else {}, previous or {}, rng if rng is not None else random.Random()
    )

    def build(name: str, seen: tuple[str, ...]) -> TCPBalancer | None:
        if name in out:
            return out[name]
        if name in errors:
            return None
        svc = services.get(name)
        if svc is None:
            return None
        if name in seen:
            errors[name] = "services form a cycle"
            return None
        try:
            balancer = _build_one(
                name, svc, transports, lambda child: build(child, (*seen, name)), errors, default, state
            )
        except (OSError, ssl.SSLError, ValueError, TransportUnusable) as exc:
            balancer = f"its TLS settings cannot be loaded ({exc})"
        if isinstance(balancer, str):
            errors[name] = balancer
            log.error("TCP service %s is left out: %s", name, balancer)
            return None
        out[name] = balancer
        return balancer

    for name in sorted(services):
        build(name, ())
    return out


@dataclass(frozen=True, slots=True)
class _Build:
    """What one build shares across its services: the TLS contexts (this build's, the last one's), the rng."""

    contexts: TLSContexts
    previous: TLSContexts
    rng: random.Random


def _build_one(name, svc, transports, child, errors, default, b: _Build) -> TCPBalancer | str:  # noqa: ANN001
    if svc.weighted is not None:
        children = []
        for ref in svc.weighted.services:
            got = child(ref.name)
            if got is None:
                why = errors.get(ref.name) or "does not exist"
                return f"its service {ref.name} is not usable: {why}"
            children.append((got, ref.weight))
        b.rng.shuffle(children)
        return TCPBalancer(name, children=tuple(children), track_children=svc.weighted.health_check)
    lb = svc.load_balancer
    assert lb is not None
    transport, transport_name = default, "default@internal"
    delay, version = lb.termination_delay, lb.proxy_protocol_version
    if lb.servers_transport == "default@internal":  # the static tcpServersTransport, named
        transport, delay, version = default, default.termination_delay, default.proxy_protocol_version
    elif lb.servers_transport:
        found = transports.get(lb.servers_transport)
        if found is None:
            return f"serversTransport {lb.servers_transport} does not exist"
        transport, delay, version = found, found.termination_delay, found.proxy_protocol_version
        transport_name = lb.servers_transport
    servers = []
    for s in lb.servers:
        host, port = host_and_port(s.address)  # checked by parse_tcp
        ctx = _client_context(transport, transport_name, b.contexts, b.previous) if s.tls else None
        server_name = ((transport.tls and transport.tls.server_name) or host) if s.tls else None
        servers.append(
            Server(
                address=s.address,
                host=host,
                port=port,
                dial_timeout=transport.dial_timeout,
                keep_alive=transport.dial_keep_alive,
                termination_delay=transport.termination_delay if delay is None else delay,
                proxy_protocol=version,
                tls=ctx,
                server_name=server_name,
                unreachable=s.unreachable,
            )
        )
    return TCPBalancer(name, servers=tuple(servers), health_check=lb.health_check, rng=b.rng)
