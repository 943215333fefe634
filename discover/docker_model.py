"""Plain records of what the Docker provider sees, independent of the docker SDK's dict shapes.

The provider's thread turns the engine's answers into these; the label logic (``docker_labels.py``) turns
them into the dynamic-config model. Keeping the two apart means every defaulting rule can be tested table
by table without an engine, and the engine-facing code stays small.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from discover.model import EMPTY, Discovered


@dataclass(frozen=True, slots=True)
class PortBinding:
    """One exposed container port and, when published, where on the host."""

    port: int
    protocol: str = "tcp"
    host_ip: str | None = None
    host_port: int | None = None


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """A running container as the provider needs it."""

    id: str
    name: str  # without the leading "/"
    labels: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    state: str = "running"  # running, paused, exited, ...
    health: str | None = None  # None (no healthcheck), "starting", "healthy", "unhealthy"
    ports: tuple[PortBinding, ...] = ()
    networks: Mapping[str, str] = field(default_factory=lambda: EMPTY)  # network name → IPv4 address
    network_mode: str = "bridge"  # "bridge", "host", "none", "container:<id>", or a network name
    # Traefik's ServiceName: the implicit service's name when not a compose container (None: the name).
    # A swarm task carries its service's name, so that every task of a service is one load balancer.
    service_name: str | None = None
    kind: str = "container"  # what the API calls it: "container", a swarm "task" or "service" (its VIP)

    @property
    def compose_project(self) -> str | None:
        return self.labels.get("com.docker.compose.project")

    @property
    def compose_service(self) -> str | None:
        return self.labels.get("com.docker.compose.service")


@dataclass(frozen=True, slots=True)
class DockerSettings:
    """``providers.docker``: Traefik's options."""

    endpoint: str = "unix:///var/run/docker.sock"
    exposed_by_default: bool = True
    default_rule: str = "Host(`{{ normalize .Name }}`)"
    network: str | None = None
    use_bind_port_ip: bool = False
    watch: bool = True
    constraints: str | None = None
    allow_empty_services: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_insecure_skip_verify: bool = False  # tls.insecureSkipVerify: the engine's certificate is not checked
    host_address: str = "127.0.0.1"  # where `host` network-mode containers are reached
    provider: str = "docker"  # the provider's name: qualifies names, and its keys and labels in messages


# Network drivers whose containers the host itself cannot open a connection to. A bridge network, even
# ``--internal``, is reachable from the host: its isolation rules sit in the FORWARD chain, which traffic
# from the host to a container does not cross (measured: a TCP connect from the host into an internal
# network's container succeeds at once). An overlay network's addresses live in the swarm's VXLAN, routed
# nowhere on the host; a macvlan/ipvlan child is unreachable from its own parent interface (Linux). Only
# when no local route covers the network's subnet (a macvlan "shim" interface makes it reachable): see
# discover.docker_reach.
HOST_UNREACHABLE_DRIVERS: Mapping[str, str] = {
    "overlay": "an overlay network's addresses are not routed from the host",
    "macvlan": "the host cannot reach a macvlan network's containers through its parent interface",
    "ipvlan": "the host cannot reach an ipvlan network's containers through its parent interface",
}


@dataclass(frozen=True, slots=True)
class Reach:
    """Which Docker networks dockroute can open connections into, as far as the provider could tell.

    In a container of the engine it watches, dockroute reaches only its own container's networks (Docker
    isolates bridge networks from each other). On the engine's host it reaches every network but those of
    :data:`HOST_UNREACHABLE_DRIVERS` that no local route covers. When it cannot tell (a remote engine, its
    own container not confirmed while it seems to run in one and no bridge of the engine routed here),
    ``judged`` is False and nothing is reported unreachable: a wrong verdict would fail requests that would
    have worked. :mod:`discover.docker_reach` finds it.
    """

    judged: bool = False
    container: str = ""  # dockroute's own container, when it runs in one
    networks: frozenset[str] = frozenset()  # that container's networks
    blocked: Mapping[str, str] = field(default_factory=lambda: EMPTY)  # on the host: network → why not
    # in a container: where the engine's host is reached from it (host.docker.internal's address, Traefik's
    # choice for ``network_mode: host`` containers); empty when that name does not resolve there
    host: str = ""

    def why(self, network: str) -> str:
        """Why ``network`` cannot be reached; empty when it can (or nobody can tell)."""
        if not self.judged:
            return ""
        if self.container:
            if network in self.networks:
                return ""
            return f"network {network} is not one of dockroute's container {self.container}'s networks"
        reason = self.blocked.get(network)
        return f"network {network}: {reason}" if reason else ""

    def reachable(self, network: str) -> bool:
        """``network`` is known to be reachable (a container on several networks is reached through one)."""
        if not self.judged:
            return network in self.networks
        return not self.why(network)


@dataclass(frozen=True, slots=True)
class ContainerRecord:
    """Why a container is routed or not: shown by the API (as :class:`Discovered`), logged once per change."""

    name: str
    routed: bool
    reasons: tuple[str, ...] = ()  # why not routed (or parts left out)
    warnings: tuple[str, ...] = ()  # e.g. which port was picked and why
    id: str = ""
    reason: str = ""  # the first reason's kind, one of discover.model.REASONS
    fix: str = ""  # the action that would route it, when one is known
    routers: tuple[str, ...] = ()  # bare names of what it produced
    services: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    kind: str = "container"  # ContainerInfo.kind

    def discovered(self, provider: str = "docker") -> Discovered:
        """The record as the API lists it: names qualified with the provider's."""
        return Discovered(
            provider=provider,
            kind=self.kind,
            name=self.name,
            id=self.id,
            routed=self.routed,
            reason=self.reason,
            # why it is left out, then what was said about it (a port picked, h2c proxied as HTTP/1.1)
            detail="; ".join((*self.reasons, *self.warnings)),
            fix=self.fix,
            routers=tuple(f"{r}@{provider}" for r in self.routers),
            services=tuple(f"{s}@{provider}" for s in self.services),
            networks=self.networks,
        )
