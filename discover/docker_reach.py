"""Which Docker networks dockroute can open connections into: its own container's, or the host's view.

Runs in the provider's worker thread (engine calls, ``/proc`` reads), never on the event loop.

A wrong verdict fails requests that would have worked (a server judged unreachable is answered 502 at
once), so every verdict needs evidence and doubt means nothing is judged:

- dockroute's own container is identified only from the files the engine bind-mounts into it
  (``/etc/hostname``, ``/etc/hosts``, ``/etc/resolv.conf``, whose source path holds the container's id) or
  from its cgroup's leaf, and confirmed by the engine (the container's hostname is ours). Any 64-hex string
  elsewhere in ``/proc/self/mountinfo`` is not evidence: on the engine's host it lists other containers'
  mounts (``--ipc=shareable`` adds ``/var/lib/docker/containers/<id>/mounts/shm``);
- "on the engine's host" needs one of the engine's bridge networks routed here (its ``docker0``-style
  route in ``/proc/net/route``): that is what makes bridges reachable. Without it (rootless Docker, Docker
  Desktop, a container of another engine, a system without ``/proc``) nothing is judged;
- on the host, a network of a driver the host usually cannot reach (overlay, macvlan, ipvlan) is judged
  unreachable only when no local route covers its subnet: a macvlan "shim" interface makes it reachable;
- in a container, ``127.0.0.1`` is the container's own: a ``network_mode: host`` container is reached at
  ``host.docker.internal`` (Traefik's choice), which resolves only when the container was given it
  (``--add-host host.docker.internal:host-gateway``; Docker Desktop answers it by DNS).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from docker.errors import DockerException, NotFound

from discover.docker_model import HOST_UNREACHABLE_DRIVERS, Reach

__all__ = [
    "HOST_NAME",
    "Network",
    "find_own_container",
    "find_reach",
    "host_gateway",
    "local_routes",
    "own_ids",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# The files the engine bind-mounts from /var/lib/docker/containers/<id>/ into every container it runs
_OWN_FILES = frozenset({"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"})
_ID = re.compile(r"[0-9a-f]{64}")
# A cgroup path's leaf naming the container: .../docker/<id>, .../docker-<id>.scope
_CGROUP_LEAF = re.compile(r"(?:^|[/-])([0-9a-f]{64})(?:\.scope)?$")
_LOCAL_TCP = ("tcp://127.0.0.1:", "tcp://localhost:", "tcp://[::1]:")
_FOLLOW = 4  # network_mode container:<x> hops followed at most
HOST_NAME = "host.docker.internal"  # where Traefik reaches network_mode host containers from a container


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""


def own_ids(mountinfo: str, cgroup: str) -> list[str]:
    """Container ids that can be this process's own: from the source of the mounts at ``/etc/hostname``,
    ``/etc/hosts`` and ``/etc/resolv.conf`` (mountinfo fields 4 and 5: root, mount point), then the cgroup
    leaves."""
    ids: list[str] = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] in _OWN_FILES:
            ids.extend(m for m in _ID.findall(fields[3]) if m not in ids)
    for line in cgroup.splitlines():
        m = _CGROUP_LEAF.search(line.split(":", 2)[-1].strip())
        if m and m.group(1) not in ids:
            ids.append(m.group(1))
    return ids


def find_own_container(
    client: Any,
    hostname: str | None = None,
    read: Callable[[str], str] = _read,
    exists: Callable[[str], bool] = os.path.exists,
) -> str | None:
    """The id of the container dockroute runs in, confirmed by this engine; "" when it runs in no
    container; None when it seems to run in one (mounted ids, ``/.dockerenv``) that this engine cannot
    confirm as its own (another engine's container, or doubt)."""
    hostname = socket.gethostname() if hostname is None else hostname
    ids = own_ids(read("/proc/self/mountinfo"), read("/proc/self/cgroup"))
    if not ids and not exists("/.dockerenv"):
        return ""
    for cid in (*ids, hostname):
        try:
            info = client.inspect_container(cid)
        except (NotFound, DockerException):
            continue
        full = str(info.get("Id", ""))
        # its hostname is ours (Docker's default hostname is the short id: 12 hex digits)
        if (info.get("Config") or {}).get("Hostname") == hostname or (
            len(hostname) >= 12 and full.startswith(hostname)
        ):
            return full
    return None


def _resolve(name: str) -> list[str]:
    try:
        return [str(a[4][0]) for a in socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)]
    except OSError:
        return []


def host_gateway(read: Callable[[str], str] = _read, resolve: Callable[[str], list[str]] = _resolve) -> str:
    """The address of :data:`HOST_NAME` from here, "" when it does not resolve: ``/etc/hosts`` first (what
    ``--add-host``/``extra_hosts`` write, read without a query), then the resolver (Docker Desktop answers
    the name by DNS). The provider asks once per own container: a query can wait on the resolver's
    timeout, and a container's ``/etc/hosts`` entries are fixed when it is created."""
    for line in read("/etc/hosts").splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) > 1 and HOST_NAME in fields[1:]:
            return fields[0]
    found = resolve(HOST_NAME)
    return found[0] if found else ""


def _hex4(text: str) -> ipaddress.IPv4Address:
    """/proc/net/route's addresses: 8 hex digits, little-endian."""
    return ipaddress.IPv4Address(int.from_bytes(bytes.fromhex(text), "little"))


def local_routes(read: Callable[[str], str] = _read) -> list[Network]:
    """The destinations of this network namespace's routes (IPv4 and IPv6), the default routes left out:
    a default route says nothing about whether a container's subnet is reachable."""
    routes: list[Network] = []
    for line in read("/proc/net/route").splitlines()[1:]:
        f = line.split()
        try:
            dest, mask = _hex4(f[1]), _hex4(f[7])
            net = ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)
        except (IndexError, ValueError):
            continue
        if net.prefixlen:
            routes.append(net)
    for line in read("/proc/net/ipv6_route").splitlines():
        f = line.split()
        try:
            net6 = ipaddress.IPv6Network((int(f[0], 16), int(f[1], 16)), strict=False)
        except (IndexError, ValueError):
            continue
        if net6.prefixlen and not net6.is_link_local and not net6.is_multicast:
            routes.append(net6)
    return routes


def _subnets(net: Mapping[str, Any]) -> list[Network]:
    out: list[Network] = []
    for conf in (net.get("IPAM") or {}).get("Config") or ():
        try:
            out.append(ipaddress.ip_network((conf or {}).get("Subnet", ""), strict=False))
        except ValueError:
            continue
    return out


def _routed(net: Mapping[str, Any], routes: Iterable[Network]) -> bool:
    """A local route covers (part of) one of the network's subnets."""
    routes = list(routes)
    return any(s.version == r.version and s.overlaps(r) for s in _subnets(net) for r in routes)  # type: ignore[arg-type]


def _container_reach(client: Any, own_id: str, host: str) -> Reach | None:
    """Reach from dockroute's own container: its networks, those of the container whose network it uses
    (``network_mode: container:<x>``), the host at ``host``; None when it uses the host's network (judged
    as on the host)."""
    info = client.inspect_container(own_id)  # NotFound: the caller looks for its container again
    for _ in range(_FOLLOW):
        mode = str((info.get("HostConfig") or {}).get("NetworkMode") or "")
        if not mode.startswith("container:"):
            break
        try:
            info = client.inspect_container(mode.split(":", 1)[1])
        except (NotFound, DockerException):
            return Reach()
    else:
        return Reach()
    if mode == "host":
        return None
    nets = frozenset(((info.get("NetworkSettings") or {}).get("Networks") or {}).keys())
    if not nets:  # network_mode none, or a shape not understood: no verdict
        return Reach()
    return Reach(judged=True, container=str(info.get("Name", "")).lstrip("/"), networks=nets, host=host)


def find_reach(
    client: Any, endpoint: str, own_id: str | None, routes: Iterable[Network], host: str = ""
) -> Reach:
    """Which networks dockroute reaches (see the module's docstring); ``own_id`` as
    :func:`find_own_container` found it, ``routes`` as :func:`local_routes` reads them, ``host`` as
    :func:`host_gateway` found it in that container."""
    if own_id:
        reach = _container_reach(client, own_id, host)
        if reach is not None:
            return reach
    if not (endpoint.startswith("unix://") or endpoint.startswith(_LOCAL_TCP)):
        return Reach()  # a remote engine: its networks are not this machine's
    routes = list(routes)
    networks = client.networks()
    if not any(n.get("Driver") == "bridge" and _routed(n, routes) for n in networks):
        return Reach()  # no bridge of this engine routed here: not its host as far as anyone can tell
    blocked = {
        str(n.get("Name", "")): HOST_UNREACHABLE_DRIVERS[n.get("Driver", "")]
        for n in networks
        if n.get("Driver") in HOST_UNREACHABLE_DRIVERS and not _routed(n, routes)
    }
    return Reach(judged=True, blocked=blocked)
