"""Traefik's UDP API: ``/api/udp/routers``, ``/api/udp/services`` (and one by name), their counts in
``/api/overview`` and ``udpRouters``/``udpServices`` in ``/api/rawdata``.

Shapes as Traefik's ``UDPRouterInfo`` / ``UDPServiceInfo`` representations: a router has its
``entryPoints``, ``service``, ``status``, ``using`` (the UDP entry points it really serves) and ``error``
when something is wrong; a service its ``loadBalancer`` or ``weighted`` part, ``status``, ``usedBy`` and
``type``. Built with the rest of the view (off the loop), from the configuration and the UDP compile's
results (:class:`router.udp.table.UDPCompiled`); nothing here is read live (UDP servers have no health).
"""

from __future__ import annotations

from typing import Any

from discover.model_udp import UDPConfig, UDPService
from router.api.l4 import L4View, weighted_json, with_status
from router.api.render import DISABLED, ENABLED, WARNING, Json, provider_of
from router.udp.table import UDPCompiled

__all__ = ["LISTS", "UDPView"]

# list path → Traefik's not-found noun
LISTS = {"udp/routers": "router", "udp/services": "service"}


class UDPView(L4View):
    """The UDP routers' and services' JSON of one state: list items (with ``name``, ``provider`` and, for
    services, ``type``) by list path, sorted by name, and rawdata's (without them) by kind."""

    routers_path = "udp/routers"

    def __init__(self, cfg: UDPConfig, compiled: UDPCompiled | None) -> None:
        errors = compiled.errors if compiled is not None else {}
        warnings = compiled.warnings if compiled is not None else {}
        using = compiled.entry_points if compiled is not None else {}
        service_errors = compiled.service_errors if compiled is not None else {}
        self.raw_routers: dict[str, Json] = {}
        used_by: dict[str, list[str]] = {}
        for name in sorted(cfg.routers):
            r = cfg.routers[name]
            used_by.setdefault(r.service, []).append(name)
            raw: Json = {"service": r.service}
            if r.entry_points:
                raw["entryPoints"] = list(r.entry_points)
            problems = [errors[name]] if name in errors else list(warnings.get(name, ()))
            if problems:
                raw["error"] = problems
            raw["status"] = DISABLED if name in errors else WARNING if problems else ENABLED
            if using.get(name):
                raw["using"] = list(using[name])
            self.raw_routers[name] = raw
        self.raw_services: dict[str, Json] = {
            name: _service(cfg.services[name], service_errors.get(name), used_by.get(name, ()))
            for name in sorted(cfg.services)
        }
        self.items: dict[str, list[Json]] = {
            "udp/routers": [
                {**raw, "name": n, "provider": provider_of(n)} for n, raw in self.raw_routers.items()
            ],
            "udp/services": [
                {**raw, "name": n, "provider": provider_of(n), "type": _type(cfg.services[n])}
                for n, raw in self.raw_services.items()
            ],
        }
        self.by_name = {path: {i["name"]: i for i in items} for path, items in self.items.items()}

    def rawdata(self) -> Json:
        """``/api/rawdata``'s UDP keys (left out when empty, as Go's ``omitempty``)."""
        out: Json = {}
        if self.raw_routers:
            out["udpRouters"] = self.raw_routers
        if self.raw_services:
            out["udpServices"] = self.raw_services
        return out


def _service(svc: UDPService, error: str | None, used_by: Any) -> Json:
    out: Json = {}
    if svc.load_balancer is not None:
        out["loadBalancer"] = {"servers": [{"address": s.address} for s in svc.load_balancer.servers]}
    elif svc.weighted is not None:
        out["weighted"] = weighted_json(svc.weighted)
    return with_status(out, error, "usedBy", sorted(used_by))


def _type(svc: UDPService) -> str:
    return "loadbalancer" if svc.load_balancer is not None else "weighted"
