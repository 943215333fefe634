"""The ``udp`` section of the dynamic configuration: UDP routers and services.

A UDP router has no rule (a datagram carries nothing to route on): it binds UDP entry points to one
service. Names are bare inside one provider; :func:`merge_udp` qualifies them as :func:`merge` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from discover.model_base import EMPTY, frozen_map, qualify


@dataclass(frozen=True, slots=True)
class UDPRouter:
    """``udp.routers.<name>``: every datagram reaching one of ``entry_points`` goes to ``service``."""

    name: str
    service: str
    entry_points: tuple[str, ...] = ()  # empty: every UDP entry point
    origin: str = ""


@dataclass(frozen=True, slots=True)
class UDPServer:
    """``host:port`` of one backend. Traefik's UDP servers have no weight (weights are on the services of
    a ``weighted`` service); ``unreachable`` is the Docker provider's reason it cannot reach the network."""

    address: str
    unreachable: str = ""


@dataclass(frozen=True, slots=True)
class UDPLoadBalancer:
    servers: tuple[UDPServer, ...] = ()


@dataclass(frozen=True, slots=True)
class UDPWeightedRef:
    name: str
    weight: int = 1


@dataclass(frozen=True, slots=True)
class UDPWeighted:
    services: tuple[UDPWeightedRef, ...] = ()


@dataclass(frozen=True, slots=True)
class UDPService:
    """``udp.services.<name>``: exactly one of ``load_balancer`` or ``weighted``."""

    name: str
    load_balancer: UDPLoadBalancer | None = None
    weighted: UDPWeighted | None = None


@dataclass(frozen=True, slots=True)
class UDPConfig:
    routers: Mapping[str, UDPRouter] = field(default_factory=lambda: EMPTY)
    services: Mapping[str, UDPService] = field(default_factory=lambda: EMPTY)


def merge_udp(configs: Mapping[str, UDPConfig]) -> UDPConfig:
    """Several providers' ``udp`` sections as one, names qualified with their provider (sorted order)."""
    routers: dict[str, UDPRouter] = {}
    services: dict[str, UDPService] = {}
    for provider in sorted(configs):
        cfg = configs[provider]
        for name, r in cfg.routers.items():
            qn = qualify(name, provider)
            routers[qn] = replace(r, name=qn, service=qualify(r.service, provider))
        for name, s in cfg.services.items():
            qn = qualify(name, provider)
            weighted = s.weighted
            if weighted is not None:
                weighted = replace(
                    weighted,
                    services=tuple(replace(w, name=qualify(w.name, provider)) for w in weighted.services),
                )
            services[qn] = replace(s, name=qn, weighted=weighted)
    return UDPConfig(routers=frozen_map(routers), services=frozen_map(services))
