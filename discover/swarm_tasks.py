"""Swarm services and their tasks (the engine's API dicts) → the Docker provider's container records.

Traefik's swarm provider reads a service's labels from its spec (compose ``deploy.labels``, not the
containers' labels) and turns every running task into one record with those labels, named
``<service>.<slot>`` (``<service>.<task id>`` for a global service), whose implicit service name is the
swarm service's: the tasks merge into one load balancer of their addresses on the swarm networks. With
``lbswarm=true`` the service itself is the one record, at its virtual IP: swarm balances. From there the
labels, defaults and merging are the Docker provider's (:func:`discover.docker_labels.build_docker_config`).

Pure functions, table-tested without an engine; :mod:`discover.swarm_provider` makes the calls. The
records the build cannot make itself (``lbswarm`` unreadable, a service on no swarm network) are returned
as :class:`~discover.docker_model.ContainerRecord` notes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from discover.docker_container import LeftOut, enabled, label_flag
from discover.docker_label_tree import collect
from discover.docker_model import ContainerInfo, ContainerRecord, DockerSettings

__all__ = ["NO_TASK", "SwarmView", "swarm_containers"]

# What a service without a running task says: its state (not routed), or with ``allowEmptyServices`` its
# "health" (its service is kept with no servers: 503 rather than 404 while it restarts or scales up).
NO_TASK = "no running task"


@dataclass(frozen=True, slots=True)
class SwarmView:
    """What one list of the swarm gives the build: records to build, notes on services it cannot build,
    and service-level lines to log (once)."""

    containers: tuple[ContainerInfo, ...] = ()
    notes: tuple[ContainerRecord, ...] = ()
    warnings: tuple[str, ...] = ()


def _ip(addr: Any) -> str:
    """``10.0.1.5/24`` → ``10.0.1.5`` (the API gives CIDR notation)."""
    return str(addr or "").split("/", 1)[0]


def _network_names(networks: Iterable[Mapping[str, Any]], wanted: str | None) -> dict[str, str]:
    """Network id → name for the swarm-scoped networks (Traefik's networkMap). The ingress network (the
    routing mesh's) is left out unless asked for by name: every task publishing a port is on it, and an
    address there is not where its service is meant to be reached."""
    out: dict[str, str] = {}
    for n in networks:
        name = str(n.get("Name") or "")
        if n.get("Ingress") and name != wanted:
            continue
        nid = str(n.get("Id") or n.get("ID") or "")
        if nid and name:
            out[nid] = name
    return out


def _task_networks(task: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, str]:
    nets: dict[str, str] = {}
    for att in task.get("NetworksAttachments") or ():
        name = names.get(str(((att or {}).get("Network") or {}).get("ID") or ""))
        addrs = [_ip(a) for a in (att.get("Addresses") or ()) if _ip(a)]
        if name and addrs:
            nets[name] = addrs[0]
    return nets


def _vips(service: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, str]:
    nets: dict[str, str] = {}
    for vip in (service.get("Endpoint") or {}).get("VirtualIPs") or ():
        name = names.get(str((vip or {}).get("NetworkID") or ""))
        if name and _ip(vip.get("Addr")):
            nets[name] = _ip(vip.get("Addr"))
    return nets


def _mode(service: Mapping[str, Any]) -> str:
    spec = (
        (service.get("Spec") or {}).get("EndpointSpec") or (service.get("Endpoint") or {}).get("Spec") or {}
    )
    return str(spec.get("Mode") or "vip")


def _note(service: Mapping[str, Any], name: str, reason: str, message: str, fix: str = "") -> ContainerRecord:
    return ContainerRecord(
        name=name,
        routed=False,
        reasons=(message,),
        id=str(service.get("ID", "")),
        reason=reason,
        fix=fix,
        kind="service",
    )


@dataclass
class _Out:
    containers: list[ContainerInfo]
    notes: list[ContainerRecord]
    warnings: list[str]


def _one_service(
    service: Mapping[str, Any],
    tasks: Sequence[Mapping[str, Any]],
    networks: Sequence[Mapping[str, Any]],
    settings: DockerSettings,
    out: _Out,
) -> None:
    spec = service.get("Spec") or {}
    name = str(spec.get("Name") or service.get("ID", "")[:12])
    labels = dict(spec.get("Labels") or {})
    base = ContainerInfo(
        id=str(service.get("ID", "")),
        name=name,
        labels=labels,
        service_name=name,
        kind="service",
        network_mode="",
    )
    lab = collect(labels, swarm=True)
    try:
        if lab.error is not None or not enabled(lab, settings):
            out.containers.append(base)  # the build records why (a bad label, not enabled)
            return
        # traefik.swarm.lbswarm (or the deprecated traefik.docker.lbswarm)
        lbswarm = label_flag(lab.lbswarm, False)
    except LeftOut as exc:
        out.notes.append(_note(service, name, exc.reason, str(exc)))
        return
    wanted = lab.network[0].strip() if lab.network and lab.network[0].strip() else settings.network
    names = _network_names(networks, wanted)
    if lbswarm:
        if _mode(service) == "dnsrr":
            # Traefik logs that it falls back to its own balancing; dockroute does, over the tasks
            out.warnings.append(
                f"swarm service {name}: lbswarm=true, but its endpoint mode is dnsrr (no virtual IP); "
                "balancing over its tasks instead"
            )
        else:
            vips = _vips(service, names)
            if vips:
                out.containers.append(replace(base, networks=vips))
            else:
                out.notes.append(
                    _note(
                        service,
                        name,
                        "unreachable-network",
                        "lbswarm=true, but the service has no virtual IP on a swarm network",
                        f"docker service update --network-add <an overlay network dockroute is on> {name}",
                    )
                )
            return
    _tasks(service, name, tasks, names, base, settings, out)


def _tasks(
    service: Mapping[str, Any],
    name: str,
    tasks: Sequence[Mapping[str, Any]],
    names: Mapping[str, str],
    base: ContainerInfo,
    settings: DockerSettings,
    out: _Out,
) -> None:
    """The service's running tasks, one record each (Traefik's listTasks/parseTasks)."""
    is_global = "Global" in ((service.get("Spec") or {}).get("Mode") or {})
    running = [t for t in tasks if ((t.get("Status") or {}).get("State")) == "running"]
    found = 0
    for task in sorted(running, key=lambda t: (int(t.get("Slot") or 0), str(t.get("ID")))):
        nets = _task_networks(task, names)
        if not nets:
            continue  # Traefik skips a task on no swarm network
        found += 1
        suffix = str(task.get("ID", "")) if is_global or not task.get("Slot") else str(task.get("Slot"))
        out.containers.append(
            replace(base, id=str(task.get("ID", "")), name=f"{name}.{suffix}", kind="task", networks=nets)
        )
    if found:
        return
    if running:
        out.notes.append(
            _note(
                service,
                name,
                "unreachable-network",
                f"its {len(running)} running task(s) are on no swarm network (the host's network, or "
                "only the ingress network)",
                f"docker service update --network-add <an overlay network dockroute is on> {name}",
            )
        )
        return
    # No running task: not routed; with allowEmptyServices its service stays, with no servers (503).
    if settings.allow_empty_services:
        out.containers.append(replace(base, health=NO_TASK))
    else:
        out.containers.append(replace(base, state=NO_TASK))


def swarm_containers(
    services: Sequence[Mapping[str, Any]],
    tasks: Sequence[Mapping[str, Any]],
    networks: Sequence[Mapping[str, Any]],
    settings: DockerSettings,
) -> SwarmView:
    """``GET /services``, ``GET /tasks`` (desired state running) and ``GET /networks`` (scope swarm) →
    the records to build. A service that cannot be read costs only itself."""
    by_service: dict[str, list[Mapping[str, Any]]] = {}
    for t in tasks:
        if str(t.get("DesiredState") or "running") == "running":
            by_service.setdefault(str(t.get("ServiceID", "")), []).append(t)
    out = _Out([], [], [])
    for service in sorted(services, key=lambda s: str((s.get("Spec") or {}).get("Name", ""))):
        try:
            _one_service(service, by_service.get(str(service.get("ID", "")), []), networks, settings, out)
        except Exception as exc:  # a shape not understood: that service only
            name = str((service.get("Spec") or {}).get("Name") or service.get("ID", ""))
            out.notes.append(
                _note(service, name, "error", f"could not be read ({type(exc).__name__}: {exc})")
            )
    return SwarmView(tuple(out.containers), tuple(out.notes), tuple(out.warnings))
