"""What the API shows, as one immutable snapshot the app replaces after each configuration it applies.

The router defines this shape and reads nothing else: the app (``dockroute/``) fills it from the merged
configuration, the compile's results, the balancers (server health, read when asked) and the certificate
resolvers (through :class:`CertificateReport`, which ``acme_client`` data is turned into by the app).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from discover.model import DynamicConfig
from router.settings import ApiSettings, EntryPoint
from router.udp.table import UDPCompiled

__all__ = ["ApiSource", "ApiState", "CertificateReport"]


@dataclass(frozen=True, slots=True)
class CertificateReport:
    """One certificate dockroute serves: from a resolver (ACME, its internal CA) or a file."""

    domains: tuple[str, ...]  # the main name first, then the other SANs
    resolver: str  # the resolver's name; "" for a file certificate
    source: str  # "acme", "internalCA", "file", "default"
    issuer: str  # the issuer's common name (or the whole DN when it has none)
    not_after: float  # UNIX seconds
    not_before: float = 0.0
    next_renewal: float | None = None  # UNIX seconds when the resolver will renew it (None: it never does)
    last_error: str = ""  # the resolver's last failure for these names, if the latest attempt failed
    last_error_at: float | None = None


@dataclass(frozen=True)
class ApiState:
    """The API's view of the running proxy at one configuration."""

    version: str
    settings: ApiSettings
    entry_points: tuple[EntryPoint, ...]
    addresses: Mapping[str, tuple[str, ...]]  # entry point → where it listens ("127.0.0.1:8080"), bound
    config: DynamicConfig  # merged: every router, service, middleware of every provider, qualified
    errors: Mapping[str, str] = field(default_factory=dict)  # router → why it is not routed (compile)
    routed_on: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # router → its entry points
    balancers: Mapping[str, Any] = field(default_factory=dict)  # service → balancer: health read live
    internal_services: tuple[str, ...] = ()  # the internal services this process serves
    # the certificates served now (called when asked; cheap: no parsing, the app keeps the reports)
    certificates: Callable[[], Sequence[CertificateReport]] = lambda: ()
    applied_at: float = 0.0  # UNIX seconds the configuration was applied
    providers: tuple[str, ...] = ()  # the providers running ("file", "docker", "internal")
    service_errors: Mapping[str, str] = field(default_factory=dict)  # service → why it is not usable
    # middleware → why it could not be built (a regex RE2 refuses...); options the reader refused are in
    # the configuration itself (``Middleware.error``)
    middleware_errors: Mapping[str, str] = field(default_factory=dict)
    udp: UDPCompiled | None = None  # the UDP routers' compile: where each is used, why one is not
    tcp: Any = None  # router.tcp.compile.CompiledTCP: where each TCP router is used, why one is not


ApiSource = Callable[[], ApiState | None]  # the latest state (None before the first configuration)
