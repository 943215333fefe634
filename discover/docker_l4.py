"""A container's ``traefik.tcp.*`` and ``traefik.udp.*`` labels → its ``tcp`` and ``udp`` sections, with
Traefik's Docker defaults.

As Traefik's Docker provider (``buildTCPServiceConfiguration``, ``BuildTCPRouterConfiguration`` and their
UDP twins): a container whose labels define no TCP (UDP) service gets one of its implicit name; each
load balancer gets one server at the container's address and ``loadbalancer.server.port`` (else the
container's lowest exposed port, whatever its protocol), none while it is not healthy; a router without
``service`` is bound to the only service (several: the router is left out, naming them); a TCP router
without a rule is left out ("Empty rule"). TCP/UDP routers have no default rule, and a container with
only TCP/UDP labels gets no HTTP router. The address is found as for HTTP (the chosen network,
``useBindPortIP``, reachability), by the same builder. The sections then go through the file parser
(:func:`discover.parse.parse_dynamic_with_warnings`): one model for files and labels.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from discover.docker_container import Built, Ctx, LeftOut, _Builder, implicit_name
from discover.docker_label_tree import Labels, bind_only_service, label_for, map_at, to_data
from discover.docker_model import ContainerInfo
from discover.model_base import frozen_map
from discover.parse import parse_dynamic_with_warnings
from discover.readers import ConfigError, Key
from discover.values import find_key, fold_key, parse_bool

__all__ = ["build_l4"]

_SERVER_KEYS = {"tcp": ("port", "tls"), "udp": ("port",)}


def build_l4(c: ContainerInfo, lab: Labels, ctx: Ctx, with_servers: bool, http: Built | None) -> Built:
    """``http`` (the container's HTTP part, None when it has none) with its ``tcp`` and ``udp`` sections.
    Raises LeftOut naming the label at fault."""
    b = _Builder(c, lab, ctx, with_servers, name=implicit_name(c))
    data: dict[str, Any] = {}
    try:
        for proto in ("tcp", "udp"):
            found = lab.l4.children.get(proto)
            if found is None:
                continue
            section = to_data(found[1], (proto,), proto)
            if not isinstance(section, dict):
                raise ConfigError(proto, "expected sub-keys", keys=(proto,))
            services = _services(b, proto, section)
            _routers(b, proto, section, services)
            data[proto] = section
        cfg, warnings = parse_dynamic_with_warnings(data, references=False)
    except ConfigError as exc:
        label = label_for(lab.l4_origins, exc.keys) if exc.keys else None
        raise LeftOut(f"label {label or exc.path}: {exc.message}", "malformed-label") from None
    warnings = [*b.warnings, *warnings]
    if b.unreachable:  # requests to them fail at once (as the HTTP servers at that address)
        cfg = replace(cfg, tcp=_unreachable(cfg.tcp, "tcp", b), udp=_unreachable(cfg.udp, "udp", b))
    if http is None:
        return Built(
            cfg, [*lab.warnings, *warnings], b.reasons, b.has_servers, {}, b.network, b.unreachable, b.fix
        )
    http.warnings.extend(w for w in warnings if w not in http.warnings)
    http.reasons.extend(b.reasons)
    http.has_servers = http.has_servers or b.has_servers
    return replace(
        http,
        cfg=replace(http.cfg, tcp=cfg.tcp, udp=cfg.udp),
        network=http.network or b.network,
        unreachable=http.unreachable or b.unreachable,
        fix=http.fix or b.fix,
    )


def _unreachable(section: Any, proto: str, b: _Builder) -> Any:
    services = {}
    for name, svc in section.services.items():
        lb = svc.load_balancer
        if lb is not None and any(f"{proto}://{s.address}" in b.derived for s in lb.servers):
            servers = tuple(
                replace(s, unreachable=b.unreachable) if f"{proto}://{s.address}" in b.derived else s
                for s in lb.servers
            )
            svc = replace(svc, load_balancer=replace(lb, servers=servers))
        services[name] = svc
    return replace(section, services=frozen_map(services))


def _services(b: _Builder, proto: str, section: dict[Key, Any]) -> dict[Key, Any]:
    """``<proto>.services`` completed: the implicit one when none is defined, each load balancer's server."""
    found = map_at(section, "services", (proto,), proto)
    if found is None or not found[1]:
        key = found[0] if found else "services"
        section[key] = {b.name: {"loadBalancer": {}}}
        found = (key, section[key])
    skey, services = found
    for sname, svc in services.items():
        keys, path = (proto, skey, sname), f"{proto}.services.{sname}"
        if not isinstance(svc, dict):
            raise ConfigError(path, f"expected sub-keys, got {svc!r}", keys=keys)
        lbf = map_at(svc, "loadBalancer", keys, path)
        if lbf is None:
            raise ConfigError(path, "only loadbalancer services can be defined with labels", keys=keys)
        _load_balancer(b, proto, str(sname), lbf[1], (*keys, lbf[0]), f"{path}.loadBalancer")
    return services


def _load_balancer(
    b: _Builder, proto: str, sname: str, lb: dict[Key, Any], keys: tuple[Key, ...], path: str
) -> None:
    """``loadbalancer.server.{port,tls}`` → the one server at the container's address (none when it is not
    healthy); ``proxyprotocol=true`` is the section with its defaults, as Traefik's ``allowEmpty``."""
    if find_key(lb, "servers") is not None:
        raise ConfigError(f"{path}.servers", "use loadbalancer.server.* in labels", keys=(*keys, "servers"))
    for section in ("proxyProtocol", "healthCheck"):  # Traefik's allowEmpty sections: =true is present
        key = find_key(lb, section)
        if key is not None and isinstance(lb[key], str) and parse_bool(lb[key]) is not None:
            if parse_bool(lb[key]):
                lb[key] = {}
            else:
                del lb[key]
    server: dict[Key, Any] = {}
    skey = find_key(lb, "server")
    if skey is not None:
        server = lb.pop(skey)
        if not isinstance(server, dict):
            raise ConfigError(f"{path}.server", f"expected sub-keys, got {server!r}", keys=(*keys, skey))
    entry: dict[str, Any] = {}
    port: int | None = None
    for k, v in server.items():
        low = fold_key(str(k))
        if low not in _SERVER_KEYS[proto]:
            expected = " or ".join(_SERVER_KEYS[proto])
            raise ConfigError(
                f"{path}.server.{k}", f"unknown key {k!r}; expected {expected}", keys=(*keys, skey, k)
            )
        if low == "tls":
            entry["tls"] = v
        elif str(v).strip():  # an empty port label means the container's port, as in Traefik
            text = str(v).strip()
            if not text.isdigit() or not 1 <= int(text) <= 65535:
                raise ConfigError(
                    f"{path}.server.port", f"expected a port number, got {v!r}", keys=(*keys, skey, k)
                )
            port = int(text)
    if not b.with_servers:
        lb["servers"] = []
        return
    if port is None:
        port = _lowest_port(b.c, proto, sname)
    entry["address"] = b.server_url(sname, port, proto).partition("://")[2]
    lb["servers"] = [entry]
    b.has_servers = True


def _lowest_port(c: ContainerInfo, proto: str, sname: str) -> int:
    """Traefik's getPort without a port label: the lowest exposed port, whatever its protocol."""
    ports = sorted({p.port for p in c.ports})
    if not ports:
        label = f"traefik.{proto}.services.{sname}.loadbalancer.server.port"
        raise LeftOut(
            f"{proto} service {sname}: no exposed port; set {label}", "no-port", f"set the label {label}"
        )
    return ports[0]


def _routers(b: _Builder, proto: str, section: dict[Key, Any], services: dict[Key, Any]) -> None:
    """A router without ``service`` is bound to the only service; a TCP router without a rule is left out."""
    found = map_at(section, "routers", (proto,), proto)
    if found is None:
        return
    for rname in list(found[1]):
        router = found[1][rname]
        if router is None or isinstance(router, str):
            router = found[1][rname] = {}
        if not isinstance(router, dict):
            continue  # the parser names it
        rule = find_key(router, "rule")
        if proto == "tcp" and (rule is None or not str(router[rule] or "").strip()):
            b.reasons.append(
                f"tcp router {rname}: no rule label (traefik.tcp.routers.{rname}.rule); left out"
            )
            del found[1][rname]
            continue
        why = bind_only_service(router, services)
        if why:
            b.reasons.append(f"{proto} router {rname}: {why}; left out")
            del found[1][rname]
            continue
