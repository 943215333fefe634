"""Docker containers and their labels → the dynamic-configuration model, with Traefik's Docker semantics.

Pure functions over :class:`~discover.docker_model.ContainerInfo`; the engine-facing code is in
``docker_provider.py``. The steps follow Traefik's Docker provider:

1. filter: ``enable`` label or ``exposedByDefault``, the ``constraints`` expression, running state, health;
2. labels ``traefik.*`` and ``dockroute.*`` (``dockroute.`` wins on the same key) → the nested dict of a
   dynamic configuration file (keys case-insensitive, ``[n]`` list indexes, ``loadbalancer.server.*`` → the
   one server), then the defaults: one service of the implicit name, its server from the container's address
   and port, one router with the default rule, routers without ``service`` bound to the only service;
3. that dict goes through :func:`discover.parse.parse_dynamic_with_warnings`: the same parser as a file, so
   labels and files land on one model;
4. containers merge as in Traefik's ``provider.Merge``: equal definitions of a router/middleware merge (the
   replicas of a compose service), a service's servers are appended; a router, service or middleware that
   two containers define differently is left out altogether and reported on every container defining it
   (Traefik: "defined multiple times with different configurations"). Keeping the first by name would let
   any container take over another's router by choosing a name that sorts first; for the same reason two
   routers of different containers with the same rule and priority are both left out.

Every container seen gets a :class:`~discover.docker_model.ContainerRecord` saying whether it is routed and
why not.

Modules: labels → tree in ``docker_label_tree``, one container's completion in ``docker_container``,
middleware option types in ``docker_options``, the default-rule template in ``docker_template``; this one
filters, merges the containers and writes the records.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Any

from discover.constraints import parse_constraints
from discover.docker_container import Built, Ctx, LeftOut, build_one, enabled, implicit_name
from discover.docker_l4 import build_l4
from discover.docker_label_tree import PREFIXES, Labels, collect, label_for
from discover.docker_model import ContainerInfo, ContainerRecord, DockerSettings, Reach
from discover.docker_options import MIDDLEWARE_OPTIONS
from discover.docker_template import RuleTemplate, TemplateError, normalize
from discover.model import DynamicConfig, Middleware, Router, Service, frozen_map
from discover.model_tcp import TCPConfig
from discover.model_udp import UDPConfig
from discover.parse import check_references
from discover.readers import ConfigError

log = logging.getLogger("dockroute.docker")

__all__ = [
    "MIDDLEWARE_OPTIONS",
    "PREFIXES",
    "Constraints",
    "RuleTemplate",
    "TemplateError",
    "build_docker_config",
    "compile_constraints",
    "implicit_name",
    "normalize",
]


@dataclass
class _State:
    """What is known of one container so far."""

    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reason: str = ""  # the kind of the first reason (discover.model.REASONS)
    fix: str = ""
    routers: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    l4_routers: tuple[tuple[str, str], ...] = ()  # ("tcp router" or "udp router", name)

    def left(self, reason: str, message: str, fix: str = "") -> None:
        """One more thing left out of this container, of kind ``reason``; the first kind is its record's."""
        if message not in self.reasons:
            self.reasons.append(message)
        if not self.reason:
            self.reason, self.fix = reason, fix


@dataclass
class _Merged:
    """The containers' definitions merged so far, each with the container it came from."""

    routers: dict[str, tuple[Router, str]] = field(default_factory=dict)
    services: dict[str, tuple[Service, str]] = field(default_factory=dict)
    middlewares: dict[str, tuple[Middleware, str]] = field(default_factory=dict)
    contributed: set[str] = field(default_factory=set)  # kept, healthy containers
    # (kind, name) → every container defining it, in name order; the (kind, name) defined differently
    origins: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    conflicts: set[tuple[str, str]] = field(default_factory=set)
    dropped: set[tuple[str, str]] = field(default_factory=set)  # left out: a conflict or a clash
    # "tcp router", "tcp service", "tcp middleware", "udp router", "udp service" → name → (value, container)
    l4: dict[str, dict[str, tuple[Any, str]]] = field(default_factory=lambda: {k: {} for k in _L4_KINDS})

    def defined(self, kind: str, name: str, container: str) -> None:
        """``container`` defines ``kind`` ``name``: remembered so a conflict names every container."""
        owners = self.origins.setdefault((kind, name), [])
        if container not in owners:
            owners.append(container)


Matcher = Callable[[Mapping[str, str]], bool]

# the tcp and udp definitions a container may hold: (kind, section, attribute of that section)
_L4 = (
    ("tcp router", "tcp", "routers"),
    ("tcp service", "tcp", "services"),
    ("tcp middleware", "tcp", "middlewares"),
    ("udp router", "udp", "routers"),
    ("udp service", "udp", "services"),
)
_L4_KINDS = tuple(kind for kind, _, _ in _L4)


@dataclass(frozen=True, slots=True)
class Constraints:
    """``providers.docker.constraints`` compiled once, or why it cannot be used.

    The expression comes from the static configuration and never changes, so the provider compiles it (RE2
    included) once, off the event loop, and hands it to every rebuild. A bad expression is not fatal: every
    enabled container is left out with ``error`` as its reason (Traefik skips a container whose constraints
    cannot be evaluated, too).
    """

    matcher: Matcher | None = None
    error: str | None = None


def compile_constraints(expr: str | None) -> Constraints:
    """The constraints as a predicate over labels, or the reason they cannot be used."""
    if not expr:
        return Constraints()
    try:
        return Constraints(matcher=parse_constraints(expr))
    except ValueError as exc:
        return Constraints(error=str(exc))


def _filter(
    c: ContainerInfo,
    lab: Labels,
    settings: DockerSettings,
    constraints: Constraints,
) -> str | None:
    """Why the container is not enabled (a reason, not an error), or None. Raises LeftOut for errors."""
    if lab.error is not None:
        raise LeftOut(lab.error, "malformed-label")
    if not enabled(lab, settings):
        if lab.enable is None:
            return "not enabled: exposedByDefault is false and there is no traefik.enable=true label"
        return f"not enabled: label {lab.enable[1]}={lab.enable[0]}"
    if constraints.error is not None:
        raise LeftOut(constraints.error, "constraint")
    if constraints.matcher is not None and not constraints.matcher(c.labels):
        raise LeftOut(f"left out by the constraints {settings.constraints!r}", "constraint")
    if c.state != "running":
        raise LeftOut(f"state: {c.state or 'unknown'} (not running)", "not-running")
    if c.health not in (None, "healthy") and not settings.allow_empty_services:
        raise LeftOut(f"health: {c.health}", "unhealthy")
    return None


def _build(
    c: ContainerInfo, lab: Labels, ctx: Ctx, template: RuleTemplate | TemplateError, healthy: bool
) -> Built:
    try:
        # As Traefik: a container with only tcp/udp labels gets no HTTP service or router.
        http = (
            build_one(c, lab, ctx, template, with_servers=healthy)
            if lab.http.children or not lab.tcp_udp
            else None
        )
        return build_l4(c, lab, ctx, healthy, http) if lab.tcp_udp else http  # type: ignore[return-value]
    except ConfigError as exc:
        label = label_for(lab.origins, exc.keys[1:]) if exc.keys[1:] else None
        where = f"label {label}" if label else (exc.path or "labels")
        raise LeftOut(f"{where}: {exc.message}", "malformed-label") from None


def _add(merged: _Merged, c: ContainerInfo, built: Built, healthy: bool) -> None:
    """One container's definitions into the merged ones; a definition that differs from one already merged
    is marked as a conflict (left out by :func:`_drop_conflicts`, whoever came first). A container
    dockroute cannot reach contributes its definitions (its servers fail fast) but is not routed."""
    healthy = healthy and not built.unreachable
    if healthy:
        merged.contributed.add(c.name)
    for sname, svc in built.cfg.services.items():
        merged.defined("service", sname, c.name)
        if sname not in merged.services:
            merged.services[sname] = (svc, c.name)
            continue
        first, owner = merged.services[sname]
        combined = _merge_service(first, svc)
        if combined is None:
            merged.conflicts.add(("service", sname))
        else:
            merged.services[sname] = (combined, owner)
    for kind, section, attr in _L4:
        for name, value in getattr(getattr(built.cfg, section), attr).items():
            merged.defined(kind, name, c.name)
            into = merged.l4[kind]
            if name not in into:
                into[name] = (value, c.name)
                continue
            combined = _merge_service(into[name][0], value) if kind.endswith("service") else None
            if combined is not None:
                into[name] = (combined, into[name][1])
            elif into[name][0] != value:
                merged.conflicts.add((kind, name))
    for kind, into, items in (
        ("router", merged.routers, built.cfg.routers),
        ("middleware", merged.middlewares, built.cfg.middlewares),
    ):
        for name, value in items.items():
            merged.defined(kind, name, c.name)
            if name not in into:
                into[name] = (value, c.name)
            elif into[name][0] != value:
                merged.conflicts.add((kind, name))


# The conflicts logged by the last build: the provider rebuilds on every Docker event, and a conflict is
# logged once when it appears, not on each rebuild (each container's record still says it every time).
_logged_conflicts: frozenset[str] = frozenset()


def _drop_conflicts(merged: _Merged, states: Mapping[str, _State], provider: str = "docker") -> None:
    """Traefik's deleteConflicts: a definition two containers disagree on is used by neither; every
    container defining it gets a ``conflict`` reason naming them all, and the log one line."""
    global _logged_conflicts
    kept: dict[str, dict] = {
        "router": merged.routers,
        "service": merged.services,
        "middleware": merged.middlewares,
        **merged.l4,
    }
    lines: set[str] = set()
    for kind, name in sorted(merged.conflicts):
        owners = merged.origins[(kind, name)]
        kept[kind].pop(name, None)
        merged.dropped.add((kind, name))
        line = (
            f"{kind} {name} is defined differently by containers {', '.join(owners)}; "
            "left out of all of them (Traefik drops it too)"
        )
        proto, _, noun = kind.rpartition(" ")
        fix = (
            f"give the {kind} another name in the labels of one of them "
            f"(traefik.{proto or 'http'}.{noun}s.<another name>.*), or define it the same way in all of them"
        )
        for owner in owners:
            states[owner].left("conflict", line, fix)
        lines.add(line)
        if line not in _logged_conflicts:
            log.error("provider %s: %s", provider, line)
    _logged_conflicts = frozenset(lines)


def _entry_points_overlap(a: Router, b: Router) -> bool:
    return not a.entry_points or not b.entry_points or bool(set(a.entry_points) & set(b.entry_points))


def _drop_clashing_routers(merged: _Merged, states: Mapping[str, _State]) -> None:
    """Routers of different containers with the same rule and priority on a common entry point: all of them
    are left out. Which one Traefik serves is left to an unstable sort; keeping the first by name would let
    a container take over another's host by naming its router to sort first."""
    groups: dict[tuple[str, int], list[tuple[str, Router, list[str]]]] = {}
    for rname, (router, _) in merged.routers.items():
        owners = merged.origins[("router", rname)]  # the replicas defining it, every one of them
        groups.setdefault((router.rule, router.effective_priority), []).append((rname, router, owners))
    for group in groups.values():
        for rname, router, owners in group:
            others = [
                f"router {oname} of container {', '.join(o)}"
                for oname, other, o in group
                if not set(o) & set(owners) and _entry_points_overlap(other, router)
            ]
            if not others:  # one container's own routers with one rule: its business, as before
                continue
            for owner in owners:
                states[owner].left(
                    "conflict",
                    f"router {rname}: same rule {router.rule!r} and priority as {'; '.join(others)}; "
                    "all of them left out",
                    "give one of the routers another rule, or a priority to choose",
                )
            merged.dropped.add(("router", rname))
    for kind, rname in merged.dropped:
        if kind == "router":
            merged.routers.pop(rname, None)


_REFERRER = re.compile(r"http\.(routers|services)\.([^.:]+)\.")


def _reference_warnings(cfg: DynamicConfig, merged: _Merged, states: Mapping[str, _State]) -> None:
    """Missing bare references, told to the container that defined the router or service using them."""
    for warning in check_references(cfg):
        m = _REFERRER.match(warning)
        if m is None:
            continue
        owners = merged.routers if m.group(1) == "routers" else merged.services
        if m.group(2) in owners:
            states[owners[m.group(2)][1]].warnings.append(warning)


def build_docker_config(
    containers: Sequence[ContainerInfo],
    settings: DockerSettings,
    own_networks: frozenset[str] = frozenset(),
    constraints: Constraints | None = None,
    reach: Reach | None = None,
) -> tuple[DynamicConfig, dict[str, ContainerRecord]]:
    """The Docker provider's dynamic configuration (bare names) and a record for every container seen (also
    in the configuration's ``discovered``, for the API).

    ``reach`` says which networks dockroute can reach (:class:`Reach`; by default: the networks in
    ``own_networks``, nothing judged unreachable): a container on several networks is reached through one
    dockroute reaches, and one it cannot reach is reported ``unreachable-network`` with its fix, its servers
    marked. ``constraints`` is ``settings.constraints`` already compiled (:func:`compile_constraints`); when
    omitted it is compiled here.
    """
    reach = reach or Reach(networks=own_networks)
    ordered = sorted((_own_health_ignored(c, reach) for c in containers), key=lambda c: c.name)
    ctx = Ctx(settings, reach, ordered)
    states = {c.name: _State() for c in ordered}
    if constraints is None:
        constraints = compile_constraints(settings.constraints)
    template: RuleTemplate | TemplateError
    try:
        template = RuleTemplate(settings.default_rule)
    except TemplateError as exc:
        template = exc

    merged = _Merged()
    for c in ordered:
        built = _one(c, states[c.name], ctx, constraints, template)
        if built is not None:
            _add(merged, c, built, c.health in (None, "healthy"))

    _drop_conflicts(merged, states, settings.provider)
    _drop_clashing_routers(merged, states)
    cfg = DynamicConfig(
        # origin set last: routers are compared between containers above, and must compare on their own
        routers=frozen_map({n: replace(r, origin=f"container {o}") for n, (r, o) in merged.routers.items()}),
        services=frozen_map({n: s for n, (s, _) in merged.services.items()}),
        middlewares=frozen_map({n: m for n, (m, _) in merged.middlewares.items()}),
        tcp=TCPConfig(**{attr: _l4_map(merged, k) for k, section, attr in _L4 if section == "tcp"}),
        udp=UDPConfig(**{attr: _l4_map(merged, k) for k, section, attr in _L4 if section == "udp"}),
    )
    _reference_warnings(cfg, merged, states)
    # Routed: it contributed (kept, healthy, reachable) and at least one router it produced survived (its
    # own, or the same router of a replica) with its service and middlewares. Servers alone route nothing: a
    # container whose routers were all left out (a default rule that failed, several services and no router,
    # a conflict or a clash) is not routed.
    records = {
        c.name: _record(
            c,
            states[c.name],
            c.name in merged.contributed
            and (
                any(_usable(r, merged, settings.provider) for r in states[c.name].routers)
                or any(name in merged.l4[kind] for kind, name in states[c.name].l4_routers)
            ),
        )
        for c in ordered
    }
    return replace(cfg, discovered=tuple(r.discovered(settings.provider) for r in records.values())), records


def _l4_map(merged: _Merged, kind: str) -> Mapping[str, Any]:
    """The merged definitions of one tcp/udp kind; routers with the container they came from."""
    items = merged.l4[kind]
    if kind.endswith("router"):
        return frozen_map({n: replace(r, origin=f"container {o}") for n, (r, o) in items.items()})
    return frozen_map({n: v for n, (v, _) in items.items()})


def _usable(rname: str, merged: _Merged, provider: str = "docker") -> bool:
    """The router survived the merge, and neither its service nor a middleware was left out by a conflict."""
    if rname not in merged.routers:
        return False
    router = merged.routers[rname][0]
    refs = [("service", router.service)] + [("middleware", m) for m in router.middlewares]
    return not any((kind, ref.removesuffix(f"@{provider}")) in merged.dropped for kind, ref in refs)


def _own_health_ignored(c: ContainerInfo, reach: Reach) -> ContainerInfo:
    """dockroute's own container is routed whatever its health: its health check is about this very
    process, and the routes on its labels (the dashboard behind a password) are what a user needs most when
    the check fails. Traefik's image has no health check, so Traefik's users never met that filter there."""
    if reach.container and c.name == reach.container and c.health is not None:
        return replace(c, health=None)
    return c


def _one(
    c: ContainerInfo, st: _State, ctx: Ctx, constraints: Constraints, template: RuleTemplate | TemplateError
) -> Built | None:
    """One container's definitions, or None when it contributes nothing; ``st`` gets why."""
    lab = collect(c.labels, swarm=ctx.settings.provider == "swarm")
    st.warnings.extend(lab.warnings)
    healthy = c.health in (None, "healthy")
    try:
        not_enabled = _filter(c, lab, ctx.settings, constraints)
        if not_enabled is not None:
            st.left("disabled", not_enabled)
            return None
        built = _build(c, lab, ctx, template, healthy)
    except LeftOut as exc:
        st.left(exc.reason, str(exc), exc.fix)
        return None
    except Exception as exc:  # a bug on one container's labels never costs every other container
        log.debug("container %s: building its configuration failed", c.name, exc_info=True)
        st.left("error", f"its labels could not be read ({type(exc).__name__}: {exc})")
        return None
    st.warnings.extend(w for w in built.warnings if w not in st.warnings)
    st.routers, st.services = tuple(built.cfg.routers), tuple(built.cfg.services)
    st.l4_routers = (
        *(("tcp router", n) for n in built.cfg.tcp.routers),
        *(("udp router", n) for n in built.cfg.udp.routers),
    )
    if built.unreachable:
        st.left(
            "unreachable-network",
            f"unreachable: {built.unreachable}; requests to it are answered 502 at once",
            built.fix,
        )
    for reason in built.reasons:
        st.left("error", reason)
    if not healthy:
        st.left("unhealthy", f"health: {c.health}; its service is kept with no servers (allowEmptyServices)")
    return built


def _record(c: ContainerInfo, st: _State, routed: bool) -> ContainerRecord:
    return ContainerRecord(
        name=c.name,
        routed=routed,
        reasons=tuple(st.reasons),
        warnings=tuple(st.warnings),
        id=c.id,
        reason=st.reason,
        fix=st.fix,
        routers=st.routers,
        services=st.services,
        networks=tuple(sorted(c.networks)),
        kind=c.kind,
    )


def _merge_service(a: Any, b: Any) -> Any:
    """Traefik's ServersLoadBalancer.Merge (and its TCP/UDP twins): equal settings → servers appended
    (deduplicated by URL, or by address for TCP/UDP)."""
    if a.load_balancer is None or b.load_balancer is None:
        return a if a == b else None
    if replace(a.load_balancer, servers=()) != replace(b.load_balancer, servers=()):
        return None
    key = attrgetter("url") if isinstance(a, Service) else attrgetter("address")
    urls = {key(s) for s in a.load_balancer.servers}
    extra = tuple(s for s in b.load_balancer.servers if key(s) not in urls)
    return replace(a, load_balancer=replace(a.load_balancer, servers=a.load_balancer.servers + extra))
