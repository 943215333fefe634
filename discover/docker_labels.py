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
4. containers (sorted by name) merge: equal definitions of a router/middleware merge, a service's servers
   are appended; a conflicting definition is reported in both records and the first one is kept.

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

from discover.constraints import parse_constraints
from discover.docker_container import Built, Ctx, LeftOut, build_one, enabled, implicit_name
from discover.docker_label_tree import PREFIXES, Labels, collect, label_for
from discover.docker_model import ContainerInfo, ContainerRecord, DockerSettings, Reach
from discover.docker_options import MIDDLEWARE_OPTIONS
from discover.docker_template import RuleTemplate, TemplateError, normalize
from discover.model import DynamicConfig, Middleware, Router, Service, frozen_map
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


Matcher = Callable[[Mapping[str, str]], bool]


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
    if lab.tcp_udp and not lab.http.children:
        raise LeftOut("only TCP/UDP labels, and TCP/UDP routing is not supported")
    if c.state != "running":
        raise LeftOut(f"state: {c.state or 'unknown'} (not running)", "not-running")
    if c.health not in (None, "healthy") and not settings.allow_empty_services:
        raise LeftOut(f"health: {c.health}", "unhealthy")
    return None


def _build(
    c: ContainerInfo, lab: Labels, ctx: Ctx, template: RuleTemplate | TemplateError, healthy: bool
) -> Built:
    try:
        return build_one(c, lab, ctx, template, with_servers=healthy)
    except ConfigError as exc:
        label = label_for(lab.origins, exc.keys[1:]) if exc.keys[1:] else None
        where = f"label {label}" if label else (exc.path or "labels")
        raise LeftOut(f"{where}: {exc.message}", "malformed-label") from None


def _add(
    merged: _Merged, states: Mapping[str, _State], c: ContainerInfo, built: Built, healthy: bool
) -> None:
    """One container's definitions into the merged ones; a conflicting definition keeps the first. A
    container dockroute cannot reach contributes its definitions (its servers fail fast) but is not
    routed."""
    healthy = healthy and not built.unreachable
    if healthy:
        merged.contributed.add(c.name)
    for sname, svc in built.cfg.services.items():
        if sname not in merged.services:
            merged.services[sname] = (svc, c.name)
        else:
            first, owner = merged.services[sname]
            combined = _merge_service(first, svc)
            if combined is None:
                _conflict(states, "service", sname, owner, c.name)
                continue
            merged.services[sname] = (combined, owner)
    for kind, into, items in (
        ("router", merged.routers, built.cfg.routers),
        ("middleware", merged.middlewares, built.cfg.middlewares),
    ):
        for name, value in items.items():
            if name not in into:
                into[name] = (value, c.name)
            elif into[name][0] != value:
                _conflict(states, kind, name, into[name][1], c.name)


def _entry_points_overlap(a: Router, b: Router) -> bool:
    return not a.entry_points or not b.entry_points or bool(set(a.entry_points) & set(b.entry_points))


def _drop_clashing_routers(routers: dict[str, tuple[Router, str]], states: Mapping[str, _State]) -> None:
    """Two routers from different containers with the same rule and priority: the later one is left out."""
    seen: list[tuple[Router, str]] = []
    for rname, (router, owner) in list(routers.items()):
        clash = next(
            (
                (other, o)
                for other, o in seen
                if o != owner
                and other.rule == router.rule
                and other.effective_priority == router.effective_priority
                and _entry_points_overlap(other, router)
            ),
            None,
        )
        if clash is not None:
            other, o = clash
            states[owner].left(
                "conflict",
                f"router {rname}: same rule {router.rule!r} and priority as router {other.name} of "
                f"container {o}; router left out (set a priority to choose)",
            )
            del routers[rname]
            continue
        seen.append((router, owner))


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
            _add(merged, states, c, built, c.health in (None, "healthy"))

    _drop_clashing_routers(merged.routers, states)
    cfg = DynamicConfig(
        # origin set last: routers are compared between containers above, and must compare on their own
        routers=frozen_map({n: replace(r, origin=f"container {o}") for n, (r, o) in merged.routers.items()}),
        services=frozen_map({n: s for n, (s, _) in merged.services.items()}),
        middlewares=frozen_map({n: m for n, (m, _) in merged.middlewares.items()}),
    )
    _reference_warnings(cfg, merged, states)
    # Routed: it contributed (kept, healthy, reachable) and at least one router it produced survived (its
    # own, or the same router of a replica). Servers alone route nothing: a container whose routers were all
    # left out (a default rule that failed, several services and no router, a clash) is not routed.
    records = {
        c.name: _record(
            c,
            states[c.name],
            c.name in merged.contributed and any(r in merged.routers for r in states[c.name].routers),
        )
        for c in ordered
    }
    return replace(cfg, discovered=tuple(r.discovered() for r in records.values())), records


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
    lab = collect(c.labels)
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
    )


def _merge_service(a: Service, b: Service) -> Service | None:
    """Traefik's ServersLoadBalancer.Merge: equal settings → servers appended (deduplicated by URL)."""
    if a.load_balancer is None or b.load_balancer is None:
        return a if a == b else None
    if replace(a.load_balancer, servers=()) != replace(b.load_balancer, servers=()):
        return None
    urls = {s.url for s in a.load_balancer.servers}
    extra = tuple(s for s in b.load_balancer.servers if s.url not in urls)
    return replace(a, load_balancer=replace(a.load_balancer, servers=a.load_balancer.servers + extra))


def _conflict(states: Mapping[str, _State], kind: str, name: str, first: str, later: str) -> None:
    msg = (
        f"{kind} {name} is defined differently by containers {first} and {later}; "
        f"the definition of {first} is used"
    )
    for owner in (first, later):
        states[owner].left("conflict", msg)
