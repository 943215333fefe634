"""What the static configuration turns into: frozen settings the app wires up, and the one error type.

These are plain data so that the rest of the program never sees the merged tree, its origins or its
spelling; the entry points and the default ``serversTransport`` are the router's own types.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from acme_client.settings import InternalCASettings, ResolverSettings
from discover.docker_model import DockerSettings
from discover.kubernetes.settings import KubernetesIngressSettings
from discover.model_tcp import TCPServersTransport
from discover.swarm_model import SwarmSettings
from router.accesslog import AccessLogOptions
from router.settings import ApiSettings, EntryPoint, PingSettings, PrometheusSettings, Transport

__all__ = [
    "PY_LEVELS",
    "AccessLogSettings",
    "DockerProviderSettings",
    "FileProviderSettings",
    "LogSettings",
    "StaticConfig",
    "StaticConfigError",
]


class StaticConfigError(Exception):
    """A problem in the static configuration; ``str(e)`` is one line starting with the key path."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key


@dataclass(frozen=True)
class FileProviderSettings:
    """``providers.file``: exactly one of ``filename`` and ``directory``."""

    filename: str | None = None
    directory: str | None = None
    watch: bool = True


@dataclass(frozen=True)
class DockerProviderSettings(DockerSettings):
    """``providers.docker``: the provider's own settings plus whether the user asked for it."""

    explicit: bool = True  # False only for the embedded default (enabled when the socket exists)


# Traefik's level names → Python's; Traefik has no level between ERROR and its fatal ones.
PY_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "FATAL": logging.CRITICAL,
    "PANIC": logging.CRITICAL,
}


@dataclass(frozen=True)
class LogSettings:
    """``log``: the process log."""

    level: str = "INFO"  # one of PY_LEVELS, upper case
    format: str = "common"  # common | json
    file_path: str | None = None

    @property
    def python_level(self) -> int:
        return PY_LEVELS.get(self.level, logging.INFO)


@dataclass(frozen=True)
class AccessLogSettings:
    """``accessLog``: present only when the section is (Traefik's access log is off by default)."""

    file_path: str | None = None  # None = stdout
    format: str = "common"  # common | genericCLF | json
    options: AccessLogOptions = field(default_factory=AccessLogOptions)  # filters, fields, buffering


@dataclass(frozen=True)
class StaticConfig:
    """The whole static configuration, checked and typed."""

    entry_points: tuple[EntryPoint, ...] = ()
    transport: Transport = field(default_factory=Transport)
    tcp_transport: TCPServersTransport = field(default_factory=TCPServersTransport)  # tcpServersTransport
    file_provider: FileProviderSettings | None = None
    docker_provider: DockerProviderSettings | None = None
    kubernetes_ingress: KubernetesIngressSettings | None = None  # providers.kubernetesIngress
    swarm_provider: SwarmSettings | None = None  # providers.swarm
    log: LogSettings = field(default_factory=LogSettings)
    access_log: AccessLogSettings | None = None  # None = off (Traefik: off unless the section exists)
    # ``certificatesResolvers``, typed and checked at start: name -> ACME or internal CA settings.
    resolvers: Mapping[str, ResolverSettings | InternalCASettings] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # ``api``, ``ping``, ``metrics.prometheus``: None when the section is absent (off, as in Traefik)
    api: ApiSettings | None = None
    ping: PingSettings | None = None
    metrics: PrometheusSettings | None = None
    metrics_add_internals: bool = False  # metrics.addInternals: count requests to internal services too
    # Traefik's internal entry point (the API's), spelled as the user's entry point is (``Traefik``): names
    # are case-insensitive here, so that one is it. The internal provider's routers use this spelling.
    internal_entry_point: str = "traefik"
    source: str | None = None  # the file it came from
    # Key paths of Traefik sections and keys that were set but are not acted on ("api",
    # "providers.kubernetesCRD", "certificatesResolvers.le.acme.preferredChain"): the app warns about
    # each by name.
    ignored: tuple[str, ...] = ()
    # Whole warnings for the start's log, each naming its key or variable: a DNS provider's variable that
    # is set and not read (a typo would otherwise go unnoticed), a deprecated key read as its successor.
    warnings: tuple[str, ...] = ()
    providers_throttle_duration: float = 2.0  # providers.providersThrottleDuration (Traefik: 2s)
