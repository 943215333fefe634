"""Plain records of what the Docker provider sees, independent of the docker SDK's dict shapes.

The provider's thread turns the engine's answers into these; the label logic (``docker_labels.py``) turns
them into the dynamic-config model. Keeping the two apart means every defaulting rule can be tested table
by table without an engine, and the engine-facing code stays small.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from discover.model import EMPTY


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
    host_address: str = "127.0.0.1"  # where `host` network-mode containers are reached


@dataclass(frozen=True, slots=True)
class ContainerRecord:
    """Why a container is routed or not: shown by the dashboard, logged once per change."""

    name: str
    routed: bool
    reasons: tuple[str, ...] = ()  # why not routed (or parts left out)
    warnings: tuple[str, ...] = ()  # e.g. which port was picked and why
