"""One Docker container → its part of the dynamic configuration, with Traefik's Docker defaults.

The labels (already a tree, :mod:`discover.docker_label_tree`) become the nested dict of a dynamic
configuration file, completed as Traefik's Docker provider completes it: one load-balancer service of the
implicit name when the labels define none, its server from the container's address and port, one router
with the default rule, and a router without ``service`` bound to the only service. The dict then goes
through :func:`discover.parse.parse_dynamic_with_warnings`, the same parser as a file, so labels and files
land on one model.

A container that cannot contribute raises :class:`LeftOut` (its message is the container's reason); a
bad label raises :class:`~discover.readers.ConfigError`, which the caller maps back to the label.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from discover.docker_label_tree import Labels, bind_only_service, collect, label_for, map_at, to_data
from discover.docker_model import ContainerInfo, DockerSettings, Reach
from discover.docker_options import ANY, MIDDLEWARE_OPTIONS, middleware_options
from discover.docker_template import RuleTemplate, TemplateError, normalize
from discover.middlewares.registry import OPTION_TYPES, read_middleware_options
from discover.model import DynamicConfig, Service, frozen_map
from discover.parse import MIDDLEWARE_TYPES, h2c_scheme, h2c_url, parse_dynamic_with_warnings, preserve_path
from discover.readers import At, ConfigError, Key
from discover.values import BOOL_WORDS, find_key, fold_key, parse_bool

__all__ = ["Built", "Ctx", "LeftOut", "build_one", "enabled", "implicit_name", "label_flag"]

_COMPOSE_PROJECT = "com.docker.compose.project"
_COMPOSE_SERVICE = "com.docker.compose.service"
_SERVER_KEYS = ("port", "preservepath", "scheme", "url", "weight")


class LeftOut(Exception):
    """The container contributes nothing; the message is the record's reason, ``reason`` its kind (one of
    :data:`discover.model.REASONS`) and ``fix`` the action that would route it, when one is known."""

    def __init__(self, message: str, reason: str = "error", fix: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.fix = fix


def implicit_name(c: ContainerInfo) -> str:
    """Traefik's ``getServiceName``: ``normalize(service + "_" + project)`` for a compose container (both
    labels non-empty), else ``normalize(its service name)``: the container's name, a swarm task's service's
    name."""
    project, service = c.labels.get(_COMPOSE_PROJECT), c.labels.get(_COMPOSE_SERVICE)
    if project and service:
        return normalize(f"{service}_{project}")
    return normalize(c.service_name or c.name)


def label_flag(found: tuple[str, str] | None, default: bool) -> bool:
    """A boolean label's ``(value, label)`` read with Go's boolean words, ``default`` when it is not set;
    a non-boolean leaves the container (or service) out, naming the label."""
    if found is None:
        return default
    value, label = found
    b = parse_bool(value)
    if b is None:
        raise LeftOut(f"label {label}: expected {BOOL_WORDS}, got {value!r}", "malformed-label")
    return b


def enabled(lab: Labels, settings: DockerSettings) -> bool:
    """``traefik.enable``, else ``exposedByDefault``; a non-boolean leaves it out."""
    return label_flag(lab.enable, settings.exposed_by_default)


@dataclass
class Ctx:
    """What every container's build may look at: the settings and the other containers."""

    settings: DockerSettings
    reach: Reach
    containers: Sequence[ContainerInfo]


@dataclass
class Built:
    """One container's configuration (bare names) and what to say about it in its record."""

    cfg: DynamicConfig
    warnings: list[str]
    reasons: list[str]
    has_servers: bool
    router_labels: dict[str, str]  # router name → where it came from, for messages
    network: str | None = None  # the network its address is on (None: the host's address, or no server)
    unreachable: str = ""  # why dockroute cannot reach that network (its servers carry it too)
    fix: str = ""  # what would make it reachable


# -- addresses ------------------------------------------------------------------------------------------


def _find_container(containers: Sequence[ContainerInfo], ref: str) -> ContainerInfo | None:
    for c in containers:
        if c.name == ref.lstrip("/"):
            return c
    for c in containers:
        if ref and c.id.startswith(ref):
            return c
    return None


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip


def _wanted(lab: Labels, settings: DockerSettings) -> tuple[str, str] | None:
    if lab.network is not None and lab.network[0].strip():
        return lab.network[0].strip(), f"label {lab.network[1]}"
    if settings.network:
        return settings.network, f"providers.{settings.provider}.network"
    return None


def _address(
    c: ContainerInfo, wanted: tuple[str, str] | None, ctx: Ctx, warnings: list[str], depth: int = 0
) -> tuple[str, str | None]:
    """The IP the container is reached at (Traefik's getIPAddress) and the network it is on (None for the
    host's address); ``wanted`` is (network, where from)."""
    mode = c.network_mode or ""
    if mode == "host":
        if wanted is not None and c.networks.get(wanted[0]):  # Traefik looks at the wanted network first
            return c.networks[wanted[0]], wanted[0]
        return _host_address(c, ctx.reach, ctx.settings), None
    if mode.startswith("container:"):
        ref = mode.split(":", 1)[1]
        target = _find_container(ctx.containers, ref)
        if target is None or depth > 4:
            raise LeftOut(f"network_mode {mode}: that container is not running; no IP address", "not-running")
        # Traefik: the target's traefik.docker.network (its default: providers.docker.network), else ours.
        tlab = collect(target.labels)
        if tlab.network is not None:
            twanted: tuple[str, str] | None = (tlab.network[0], f"label {tlab.network[1]} of {target.name}")
        elif ctx.settings.network:
            twanted = (ctx.settings.network, f"providers.{ctx.settings.provider}.network")
        else:
            twanted = wanted
        return _address(target, twanted, ctx, warnings, depth + 1)
    nets = {k: v for k, v in c.networks.items() if v}
    if not nets:
        raise LeftOut(
            f"no IP address: the container is on no network (network_mode {mode or 'none'})",
            "unreachable-network",
            _fix_connect(ctx.reach, c, None),
        )
    if wanted is not None:
        name, source = wanted
        if name in nets:
            return nets[name], name
        hint = ""
        if c.compose_project and not name.startswith(c.compose_project + "_"):
            hint = f" (missing the compose project prefix: {c.compose_project}_{name}?)"
        warnings.append(
            f"network {name!r} ({source}) is not one of the container's networks "
            f"({', '.join(sorted(nets))}){hint}; choosing another"
        )
    if len(nets) == 1:
        ((only, ip),) = nets.items()
        return ip, only
    shared = sorted(n for n in nets if ctx.reach.reachable(n))
    if shared:
        return nets[shared[0]], shared[0]
    first = sorted(nets)[0]
    if not ctx.reach.judged:  # when judged, the record says unreachable, with the fix
        warnings.append(
            f"several networks ({', '.join(sorted(nets))}) and none shared with dockroute; using {first!r} "
            f"(set traefik.{ctx.settings.provider}.network to choose)"
        )
    return nets[first], first


def _host_address(c: ContainerInfo, reach: Reach, settings: DockerSettings) -> str:
    """Where a ``network_mode: host`` container is reached: from dockroute's own container, Traefik's
    ``host.docker.internal`` (127.0.0.1 there is the container's own loopback: Traefik falls back to it
    and proxies to itself); elsewhere the host's address."""
    if not reach.container:
        return settings.host_address
    if reach.host:
        return reach.host
    raise LeftOut(
        f"network_mode host: dockroute runs in container {reach.container}, where host.docker.internal "
        "does not resolve and 127.0.0.1 is its own",
        "unreachable-network",
        f"recreate {reach.container} with --add-host host.docker.internal:host-gateway (compose: "
        f'extra_hosts: ["host.docker.internal:host-gateway"]), or run {c.name} on a network it is on',
    )


def _binding(c: ContainerInfo, port: int) -> tuple[str, int] | None:
    """Traefik's getIPPort with ``useBindPortIP``: the host IP and port of the first binding of ``port``,
    or None (the container's own address and port are used) when it has none, or when its host IP is
    empty or unspecified (``0.0.0.0``, ``::``): that says nothing about an address to reach it at."""
    for b in c.ports:
        if b.port != port or not b.host_port:
            continue
        try:
            ip = ipaddress.ip_address(b.host_ip or "")
        except ValueError:
            return None
        return None if ip.is_unspecified else (str(ip), b.host_port)
    return None


def _fix_connect(reach: Reach, c: ContainerInfo, network: str | None) -> str:
    """The action that makes ``c`` reachable: the label naming a network dockroute shares with it, else
    connecting dockroute (in a container) to its network, else connecting it to one dockroute is on."""
    shared = sorted(n for n in c.networks if reach.judged and reach.reachable(n))
    if shared:
        return f"set the label traefik.docker.network={shared[0]} on {c.name}"
    if reach.container and network:
        return f"docker network connect {network} {reach.container}"
    if network is None:  # network_mode none: docker network connect refuses it, it must be recreated
        on = sorted(reach.networks)[0] if reach.container and reach.networks else "bridge"
        return f"recreate {c.name} on a network dockroute reaches (docker run --network {on} ...)"
    return (
        f"run dockroute in a container on {network} (docker network connect {network} <dockroute's "
        f"container>), or connect {c.name} to a bridge network (docker network connect bridge {c.name})"
    )


def _default_port(c: ContainerInfo, service: str, warnings: list[str]) -> int:
    tcp = sorted({p.port for p in c.ports if p.protocol == "tcp"})
    if not tcp:
        label = f"traefik.http.services.{service}.loadbalancer.server.port"
        raise LeftOut(
            f"service {service}: no exposed TCP port; set {label}", "no-port", f"set the label {label}=<port>"
        )
    if len(tcp) > 1:
        note = (
            f"several exposed ports ({', '.join(map(str, tcp))}); "
            f"using the lowest, {tcp[0]} (Traefik's rule); "
            f"set traefik.http.services.{service}.loadbalancer.server.port to choose"
        )
        if note not in warnings:
            warnings.append(note)
    return tcp[0]


# -- one container ----------------------------------------------------------------------------------------


def _allow_empty(d: dict[Key, Any], k: Key, keys: tuple[Key, ...], path: str) -> None:
    """``sticky=true``-style labels for Traefik's ``allowEmpty`` sections: true → present and empty,
    false → absent (Go's boolean words)."""
    value = parse_bool(d[k])
    if value is None:
        raise ConfigError(path, f"expected sub-keys or {BOOL_WORDS}, got {d[k]!r}", keys=(*keys, k))
    if value:
        d[k] = {}
    else:
        del d[k]


@dataclass
class _Builder:
    """The state of one container's build: what it says (warnings, reasons) and its address, found once."""

    c: ContainerInfo
    lab: Labels
    ctx: Ctx
    with_servers: bool
    name: str = ""
    warnings: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    has_servers: bool = False
    address: str | None = None
    network: str | None = None
    unreachable: str = ""
    fix: str = ""
    derived: set[str] = field(default_factory=set)  # server URLs made from the container's address

    def alias(self, synthetic: tuple[Key, ...], real: tuple[Key, ...]) -> None:
        """Errors at a synthesized path (``...servers[0]``) are reported against the label they came from."""
        label = label_for(self.lab.origins, real[1:])
        if label is not None:
            self.lab.origins[tuple(fold_key(k) for k in synthetic[1:])] = label

    def services(self, http: dict[Key, Any], root: tuple[Key, ...]) -> dict[Key, Any]:
        """Complete ``http.services``: the implicit one when none is defined, and every load balancer."""
        found = map_at(http, "services", root, "http")
        if found is None or not found[1]:
            skey = found[0] if found else "services"
            http[skey] = {self.name: {"loadBalancer": {}}}
            services = http[skey]
        else:
            skey, services = found
        for sname, svc in services.items():
            skeys = (*root, skey, sname)
            spath = f"http.services.{sname}"
            if not isinstance(svc, dict):
                raise ConfigError(spath, f"expected sub-keys, got {svc!r}", keys=skeys)
            lbf = map_at(svc, "loadBalancer", skeys, spath)
            if lbf is None:
                raise LeftOut(
                    f"service {sname}: only loadbalancer services can be defined with labels",
                    "malformed-label",
                )
            lbkey, lb = lbf
            self.load_balancer(str(sname), lb, (*skeys, lbkey), f"{spath}.loadBalancer")
        return services

    def load_balancer(self, sname: str, lb: dict[Key, Any], lkeys: tuple[Key, ...], lpath: str) -> None:
        """Label-only forms of a load balancer → the file form: ``server.*`` → ``servers``, boolean
        sections → present or absent; options Traefik's labels accept but dockroute does not use are
        warned about by name."""
        for k in list(lb):
            low = fold_key(str(k))
            if low == "servers":
                raise ConfigError(f"{lpath}.servers", "use loadbalancer.server.* in labels", keys=(*lkeys, k))
            if low == "responseforwarding":
                self.warnings.append(f"service {sname}: responseforwarding is not supported; ignored")
                del lb[k]
            elif low in ("healthcheck", "sticky") and isinstance(lb[k], str):
                _allow_empty(lb, k, lkeys, f"{lpath}.{k}")
        stf = find_key(lb, "sticky")
        if stf is not None and isinstance(lb[stf], dict):
            ck = find_key(lb[stf], "cookie")
            if ck is not None and isinstance(lb[stf][ck], str):
                _allow_empty(lb[stf], ck, (*lkeys, stf), f"{lpath}.sticky.cookie")
        server: dict[Key, Any] = {}
        srv_key = find_key(lb, "server")
        if srv_key is not None:
            server = lb.pop(srv_key)
            if not isinstance(server, dict):
                raise ConfigError(
                    f"{lpath}.server", f"expected sub-keys, got {server!r}", keys=(*lkeys, srv_key)
                )
        self.server(sname, lb, server, lkeys, (*lkeys, srv_key or "server"), lpath)

    def server(
        self,
        sname: str,
        lb: dict[Key, Any],
        server: dict[Key, Any],
        lkeys: tuple[Key, ...],
        srv_keys: tuple[Key, ...],
        lpath: str,
    ) -> None:
        """``loadbalancer.server.{url|port,scheme}`` → the one server of the service (none when the
        container is not healthy and ``allowEmptyServices`` keeps its service empty)."""
        fields: dict[str, tuple[Key, Any]] = {}  # folded name → (key as written, value)
        for k, v in server.items():
            low = fold_key(str(k))
            if low not in _SERVER_KEYS:
                raise ConfigError(
                    f"{lpath}.server.{k}",
                    f"unknown key {k!r}; expected one of {', '.join(_SERVER_KEYS)}",
                    keys=(*srv_keys, k),
                )
            fields[low] = (k, v)
        if "preservepath" in fields:
            self.preserve_path(sname, fields.pop("preservepath"), srv_keys, lpath)
        entry: dict[str, Any] = {}
        if "weight" in fields:
            entry["weight"] = fields["weight"][1]
        if "url" in fields:
            if "port" in fields or "scheme" in fields:
                raise ConfigError(
                    f"{lpath}.server.url",
                    "defining scheme or port is not allowed when url is defined",
                    keys=(*srv_keys, fields["url"][0]),
                )
            url = fields["url"][1]
            if isinstance(url, str):
                url = h2c_url(url, f"service {sname}", self.warnings)
            entry["url"] = url
            lb["servers"] = [entry] if self.with_servers else []
            self.has_servers = self.has_servers or self.with_servers
            self.alias((*lkeys, "servers", 0), (*srv_keys, fields["url"][0]))
            return
        port = _port_label(fields, srv_keys, lpath)
        if not self.with_servers:
            lb["servers"] = []
            return
        scheme = fields["scheme"][1] if "scheme" in fields else "http"
        if isinstance(scheme, str) and scheme.lower() == "h2c":
            scheme = h2c_scheme(f"service {sname}", self.warnings)
        entry["url"] = self.server_url(sname, port, scheme)
        lb["servers"] = [entry]
        self.has_servers = True
        if "port" in fields:
            self.alias((*lkeys, "servers", 0), (*srv_keys, fields["port"][0]))
        elif "scheme" in fields:
            self.alias((*lkeys, "servers", 0), (*srv_keys, fields["scheme"][0]))

    def preserve_path(
        self, sname: str, field: tuple[Key, Any], srv_keys: tuple[Key, ...], lpath: str
    ) -> None:
        """``server.preservePath`` from a label: Go's boolean words, then
        :func:`discover.parse.preserve_path`."""
        key, value = field
        flag = parse_bool(value) if isinstance(value, str) else None
        if flag is None:
            raise ConfigError(
                f"{lpath}.server.{key}", f"expected {BOOL_WORDS}, got {value!r}", keys=(*srv_keys, key)
            )
        preserve_path(flag, f"service {sname}: server.preservePath", self.warnings)

    def server_url(self, sname: str, port: int | None, scheme: str) -> str:
        """``scheme://address:port`` of the container (or of the host port it is published on, with
        ``useBindPortIP``)."""
        settings = self.ctx.settings
        if port is None:
            port = _default_port(self.c, sname, self.warnings)
        if self.address is None:
            self.address, self.network = _address(
                self.c, _wanted(self.lab, settings), self.ctx, self.warnings
            )
        if settings.use_bind_port_ip:
            bound = _binding(self.c, port)
            if bound is not None:
                return f"{scheme}://{_host(bound[0])}:{bound[1]}"  # an address the user published on
            note = (
                f"useBindPortIP: port {port} is not published on a specific address (not published, or on "
                "all of the host's); using the container's address and port, as Traefik"
            )
            if note not in self.warnings:
                self.warnings.append(note)
        url = f"{scheme}://{_host(self.address)}:{port}"
        if self.network is not None and not self.derived:
            self.unreachable = self.ctx.reach.why(self.network)
            if self.unreachable:
                self.fix = _fix_connect(self.ctx.reach, self.c, self.network)
        self.derived.add(url)
        return url

    def routers(
        self,
        http: dict[Key, Any],
        root: tuple[Key, ...],
        services: Mapping[Key, Any],
        template: RuleTemplate | TemplateError,
    ) -> dict[str, str]:
        """Complete ``http.routers``: the default router when none is defined, the default rule and the
        only service where they are missing. Returns router name → the label it came from."""
        found = map_at(http, "routers", root, "http")
        if found is None or not found[1]:
            rkey = found[0] if found else "routers"
            if len(services) > 1:
                self.reasons.append(
                    "no router: the container defines several services "
                    f"({', '.join(sorted(map(str, services)))}) and no router"
                )
                http.pop(rkey, None)
                return {}
            http[rkey] = {self.name: {}}
        else:
            rkey = found[0]
        routers = http[rkey]
        router_labels: dict[str, str] = {}
        for rname in list(routers):
            router = routers[rname]
            if router is None or (isinstance(router, str) and not router.strip()):
                router = routers[rname] = {}
            if not isinstance(router, dict):
                continue  # the parser reports it
            if self.complete_router(str(rname), router, services, template):
                router_labels[str(rname)] = label_for(self.lab.origins, (rkey, rname)) or "default router"
            else:
                del routers[rname]
        return router_labels

    def complete_router(
        self,
        rname: str,
        router: dict[Key, Any],
        services: Mapping[Key, Any],
        template: RuleTemplate | TemplateError,
    ) -> bool:
        """The default rule and the only service where missing; False when the router is left out. A
        default rule that did not compile (``template`` is its error) leaves out the routers needing it."""
        rule_key = find_key(router, "rule")
        if rule_key is None or router[rule_key] is None or not str(router[rule_key]).strip():
            try:
                if isinstance(template, TemplateError):
                    raise template
                rule = template.render(self.name, self.c.name, self.c.labels)
            except TemplateError as exc:
                # Traefik drops only this router; the services stay (another router may use them)
                self.reasons.append(
                    f"router {rname}: default rule {self.ctx.settings.default_rule!r}: {exc}; router left out"
                )
                return False
            if not rule.strip():
                self.reasons.append(f"router {rname}: the default rule is empty; router left out")
                return False
            router[rule_key or "rule"] = rule
        why = bind_only_service(router, services)
        if why:
            self.reasons.append(f"router {rname}: {why}; router left out")
            return False
        return True


def _port_label(fields: Mapping[str, tuple[Key, Any]], srv_keys: tuple[Key, ...], lpath: str) -> int | None:
    if "port" not in fields:
        return None
    pk, pv = fields["port"]
    text = pv.strip() if isinstance(pv, str) else ""
    if not text:
        return None  # Traefik: an empty port label means the container's port
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ConfigError(
            f"{lpath}.server.port", f"expected a port number (1-65535), got {pv!r}", keys=(*srv_keys, pk)
        )
    return int(text)


def _middlewares(http: dict[Key, Any], root: tuple[Key, ...]) -> None:
    """Middleware options from label strings to typed values (files give them typed already)."""
    found = map_at(http, "middlewares", root, "http")
    if found is None:
        return
    mkey, middlewares = found
    for mname, mw in middlewares.items():
        if not isinstance(mw, dict) or len(mw) != 1:
            continue  # the parser reports it
        ((tkey, opts),) = mw.items()
        mtype = find_key(MIDDLEWARE_TYPES, str(tkey))
        if mtype is None:
            continue
        keys, path = (*root, mkey, mname, tkey), f"http.middlewares.{mname}.{mtype}"
        if isinstance(opts, str) and parse_bool(opts) is False:
            options = None
        elif mtype in OPTION_TYPES:
            # The typed reader takes label strings itself; read here too so that a bad option leaves
            # the container out naming its label, as every other bad label does.
            read_middleware_options(mtype, opts, At(path, keys))
            continue
        else:
            options = middleware_options(opts, MIDDLEWARE_OPTIONS.get(mtype, ANY), keys, path)
        if options is None:
            raise ConfigError(
                path, "false leaves the middleware without a type; remove its labels", keys=keys
            )
        mw[tkey] = options


def build_one(
    c: ContainerInfo,
    lab: Labels,
    ctx: Ctx,
    template: RuleTemplate | TemplateError,
    with_servers: bool,
) -> Built:
    """One container's configuration. Raises LeftOut or ConfigError (mapped to a label by the caller)."""
    b = _Builder(c, lab, ctx, with_servers, name=implicit_name(c), warnings=list(lab.warnings))
    http = to_data(lab.http, ("http",), "http") if lab.http.children else {}
    if not isinstance(http, dict):
        raise ConfigError("http", "expected sub-keys", keys=("http",))
    root: tuple[Key, ...] = ("http",)
    st_key = find_key(http, "serversTransports")
    if st_key is not None:  # Traefik's labels cannot set them either
        raise ConfigError(
            "http.serversTransports",
            "a serversTransport cannot be defined with labels; define it in a file and reference it "
            "with loadbalancer.serverstransport=<name>@file",
            keys=(*root, st_key),
        )
    services = b.services(http, root)
    router_labels = b.routers(http, root, services, template)
    _middlewares(http, root)
    cfg, parse_warnings = parse_dynamic_with_warnings({"http": http}, references=False)
    b.warnings.extend(parse_warnings)
    if b.unreachable:
        cfg = _mark_unreachable(cfg, b.derived, b.unreachable)
    return Built(cfg, b.warnings, b.reasons, b.has_servers, router_labels, b.network, b.unreachable, b.fix)


def _mark_unreachable(cfg: DynamicConfig, urls: set[str], why: str) -> DynamicConfig:
    """The servers at the container's address carry why dockroute cannot reach them: requests picking one
    are answered 502 at once instead of waiting out the dial timeout (a ``url`` label is the user's word,
    and left alone)."""
    services: dict[str, Service] = {}
    for name, svc in cfg.services.items():
        lb = svc.load_balancer
        if lb is not None and any(s.url in urls for s in lb.servers):
            servers = tuple(replace(s, unreachable=why) if s.url in urls else s for s in lb.servers)
            svc = replace(svc, load_balancer=replace(lb, servers=servers))
        services[name] = svc
    return replace(cfg, services=frozen_map(services))
