"""Traefik's ``udp`` section, as a plain dict, → :mod:`discover.model_udp`.

The shapes are Traefik's ``UDPConfiguration``: ``routers.<name>`` with ``entryPoints`` and ``service`` (no
rule: a datagram carries nothing to route on), ``services.<name>`` with exactly one of
``loadBalancer.servers[].address`` or ``weighted.services[].name/weight``. Docker labels
(``traefik.udp.*``) reach this parser too, already turned into the same dict by the label module, so files
and labels land on one model. Keys are read with :mod:`discover.readers` (case-insensitive, scalars as
strings, comma lists), as every other section.
"""

from __future__ import annotations

from typing import Any

from discover.model_base import frozen_map, host_and_port, host_name_error
from discover.model_udp import (
    UDPConfig,
    UDPLoadBalancer,
    UDPRouter,
    UDPServer,
    UDPService,
    UDPWeighted,
    UDPWeightedRef,
)
from discover.readers import At, Fields, as_int, as_list, as_str, named, str_list

__all__ = ["parse_udp"]


def parse_udp(value: Any, at: At, warnings: list[str]) -> UDPConfig:
    """The ``udp`` section at ``at``; raises ConfigError on the first bad key, warnings as parse's."""
    f = Fields(value, at, ("routers", "services"))
    routers = {n: _router(n, v, rat) for n, v, rat in named(*f.get("routers"), "router")}
    services = {n: _service(n, v, sat, warnings) for n, v, sat in named(*f.get("services"), "service")}
    return UDPConfig(routers=frozen_map(routers), services=frozen_map(services))


def _router(name: str, value: Any, at: At) -> UDPRouter:
    """``udp.routers.<name>``: ``service`` is required (Traefik refuses the router without one); no
    ``entryPoints`` means every UDP entry point (Traefik's UDP routers ignore ``asDefault``)."""
    if value is None:
        raise at.error("a UDP router needs a service")
    f = Fields(value, at, ("entryPoints", "service"))
    service = as_str(*f.required("service")).strip()
    if not service:
        raise f.get("service")[1].error("must not be empty")
    return UDPRouter(name=name, service=service, entry_points=str_list(*f.get("entryPoints")))


def _service(name: str, value: Any, at: At, warnings: list[str]) -> UDPService:
    f = Fields(value, at, ("loadBalancer", "weighted"))
    if ("loadBalancer" in f) == ("weighted" in f):
        # Traefik: "multi-types service not supported" / "does not have any type defined"
        raise at.error("a UDP service needs exactly one of loadBalancer or weighted")
    if "loadBalancer" in f:
        return UDPService(name=name, load_balancer=_load_balancer(*f.get("loadBalancer"), warnings))
    return UDPService(name=name, weighted=_weighted(*f.get("weighted")))


def _load_balancer(value: Any, at: At, warnings: list[str]) -> UDPLoadBalancer:
    f = Fields(value, at, ("servers",))
    servers = []
    for v, sat in as_list(*f.get("servers")):
        sf = Fields(v, sat, ("address",))
        address, aat = sf.required("address")
        address = as_str(address, aat).strip()
        try:
            host, _ = host_and_port(address)
        except ValueError:
            # Traefik logs "Failed to split host port" and builds the service without this server.
            warnings.append(f"{aat.path}: expected host:port, got {address!r}; this server is left out")
            continue
        bad = host_name_error(host)
        if bad is not None:
            # Traefik would fail each session's dial; a name no lookup can take is left out at once.
            warnings.append(f"{aat.path}: {address!r}: {bad}; this server is left out")
            continue
        servers.append(UDPServer(address=address))
    return UDPLoadBalancer(servers=tuple(servers))


def _weighted(value: Any, at: At) -> UDPWeighted:
    f = Fields(value, at, ("services",))
    refs = []
    for v, wat in as_list(*f.get("services")):
        wf = Fields(v, wat, ("name", "weight"))
        ref_name = as_str(*wf.required("name")).strip()
        weight = as_int(*wf.get("weight"), minimum=0) if wf.present("weight") else 1
        refs.append(UDPWeightedRef(name=ref_name, weight=weight))
    return UDPWeighted(services=tuple(refs))
