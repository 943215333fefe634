"""Traefik's TCP API: ``/api/tcp/routers``, ``/api/tcp/services``, ``/api/tcp/middlewares`` (and one of
each by name), their counts in ``/api/overview`` and ``tcpRouters``/``tcpServices``/``tcpMiddlewares`` in
``/api/rawdata``.

Shapes as Traefik's ``TCPRouterInfo`` / ``TCPServiceInfo`` / ``TCPMiddlewareInfo``: a router has its rule,
service, entry points, middlewares, priority, ``tls``, ``status``, ``using`` (the entry points it really
serves) and ``error`` when it is not routed; a service its ``loadBalancer`` or ``weighted`` part, status,
``usedBy`` and ``type``; a middleware its options under its type. Built with the rest of the view (off the
loop) from the configuration and the TCP compile (:class:`router.tcp.compile.CompiledTCP`), the same way
as the UDP lists (:mod:`router.api.l4` holds their shared filters, sorts and counts).
"""

from __future__ import annotations

from typing import Any

from discover.model_tcp import TCPConfig, TCPInFlightConn, TCPIPAllowList, TCPRouter, TCPService
from router.api.l4 import L4View, weighted_json, with_status
from router.api.render import DISABLED, ENABLED, Json, provider_of
from router.api.server_state import DOWN, UP
from router.tcp.compile import CompiledTCP

__all__ = ["LISTS", "TCPView"]

# list path → Traefik's not-found noun
LISTS = {"tcp/routers": "router", "tcp/services": "service", "tcp/middlewares": "middleware"}


class TCPView(L4View):
    """The TCP lists' JSON of one state, by list path (sorted by name), and rawdata's by kind."""

    routers_path = "tcp/routers"

    def __init__(self, cfg: TCPConfig, compiled: CompiledTCP | None) -> None:
        errors = compiled.errors if compiled is not None else {}
        using = compiled.entry_points if compiled is not None else {}
        service_errors = compiled.service_errors if compiled is not None else {}
        usable_mw = compiled.middlewares if compiled is not None else {}
        self.balancers = compiled.balancers if compiled is not None else {}
        used_by: dict[str, list[str]] = {}
        for name in sorted(cfg.routers):
            for ref in (cfg.routers[name].service, *cfg.routers[name].middlewares):
                used_by.setdefault(ref, []).append(name)
        self.raw: dict[str, dict[str, Json]] = {
            "tcp/routers": {
                n: _router(cfg.routers[n], errors.get(n), using.get(n, ())) for n in sorted(cfg.routers)
            },
            "tcp/services": {
                n: _service(cfg.services[n], service_errors.get(n), used_by.get(n, ()))
                for n in sorted(cfg.services)
            },
            "tcp/middlewares": {
                n: _middleware(m, n in usable_mw, used_by.get(n, ()))
                for n, m in sorted(cfg.middlewares.items())
            },
        }
        self.items: dict[str, list[Json]] = {
            path: [
                {**raw, "name": n, "provider": provider_of(n), **_type(path, cfg, n)}
                for n, raw in kind.items()
            ]
            for path, kind in self.raw.items()
        }
        self.by_name = {path: {i["name"]: i for i in items} for path, items in self.items.items()}

    def rawdata(self) -> Json:
        """``/api/rawdata``'s TCP keys (left out when empty, as Go's ``omitempty``)."""
        keys = {
            "tcp/routers": "tcpRouters",
            "tcp/services": "tcpServices",
            "tcp/middlewares": "tcpMiddlewares",
        }
        out = {keys[path]: raw for path, raw in self.raw.items() if raw}
        if "tcpServices" in out:
            out["tcpServices"] = {n: {**item, **self._health(n)} for n, item in out["tcpServices"].items()}
        return out

    def live(self, path: str, item: Json) -> Json:
        """A TCP service completed with its servers' health, read now (:meth:`_health`)."""
        if path != "tcp/services":
            return item
        health = self._health(item["name"])
        return {**item, **health} if health else item

    def _health(self, name: str) -> Json:
        """A load balancer's ``serverStatus`` as Traefik's (each server ``UP`` until its health check finds
        it down), and ``serverStates`` saying why a server is down, as HTTP services have them
        (:mod:`router.api.server_state`): a provider knows it cannot be reached, or its check fails."""
        balancer = self.balancers.get(name)
        if balancer is None or not balancer.servers:
            return {}
        status: Json = {}
        states: Json = {}
        for s in balancer.servers:
            why = f"unreachable: {s.unreachable}" if s.unreachable else None
            if why is None and s.address in balancer.down:
                why = f"active check failed: {balancer.down[s.address] or 'no answer'}"
            status[s.address] = UP if why is None else DOWN
            states[s.address] = UP if why is None else f"{DOWN}: {why}"
        return {"serverStatus": status, "serverStates": states}


def _router(r: TCPRouter, error: str | None, using: tuple[str, ...]) -> Json:
    out: Json = {"service": r.service, "rule": r.rule}
    if r.entry_points:
        out["entryPoints"] = list(r.entry_points)
    if r.middlewares:
        out["middlewares"] = list(r.middlewares)
    if r.rule_syntax:
        out["ruleSyntax"] = r.rule_syntax
    if r.priority:
        out["priority"] = r.priority
    if r.tls is not None:
        tls: Json = {"passthrough": r.tls.passthrough}
        if r.tls.options:
            tls["options"] = r.tls.options
        if r.tls.cert_resolver:
            tls["certResolver"] = r.tls.cert_resolver
        if r.tls.domains:
            tls["domains"] = [
                {"main": d.main, **({"sans": list(d.sans)} if d.sans else {})} for d in r.tls.domains
            ]
        out["tls"] = tls
    return with_status(out, error, "using", using)


def _service(svc: TCPService, error: str | None, used_by: Any) -> Json:
    out: Json = {}
    lb = svc.load_balancer
    if lb is not None:
        servers = [{"address": s.address, **({"tls": True} if s.tls else {})} for s in lb.servers]
        part: Json = {"servers": servers}
        if lb.servers_transport:
            part["serversTransport"] = lb.servers_transport
        if lb.proxy_protocol_version:
            part["proxyProtocol"] = {"version": lb.proxy_protocol_version}
        if lb.termination_delay is not None:
            part["terminationDelay"] = int(lb.termination_delay * 1000)
        if lb.health_check is not None:
            hc = lb.health_check
            part["healthCheck"] = {
                k: v for k, v in (("port", hc.port), ("send", hc.send), ("expect", hc.expect)) if v
            } | {"interval": f"{hc.interval:g}s", "timeout": f"{hc.timeout:g}s"}
        out["loadBalancer"] = part
    elif svc.weighted is not None:
        out["weighted"] = weighted_json(svc.weighted)
    return with_status(out, error, "usedBy", sorted(used_by))


def _middleware(mw: Any, usable: bool, used_by: Any) -> Json:
    out: Json = {}
    if isinstance(mw.options, TCPIPAllowList):
        out[mw.type] = {"sourceRange": list(mw.options.source_range)}
    elif isinstance(mw.options, TCPInFlightConn):
        out[mw.type] = {"amount": mw.options.amount}
    if not usable:
        out["error"] = [mw.error or f"middleware type {mw.type} cannot be used"]
    out["status"] = ENABLED if usable else DISABLED
    if used_by:
        out["usedBy"] = sorted(used_by)
    return out


def _type(path: str, cfg: TCPConfig, name: str) -> Json:
    """Services and middlewares carry their ``type`` in lists, as Traefik's API does."""
    if path == "tcp/services":
        return {"type": "loadbalancer" if cfg.services[name].load_balancer is not None else "weighted"}
    if path == "tcp/middlewares":
        return {"type": cfg.middlewares[name].type.lower()}
    return {}
