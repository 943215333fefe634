"""The ``udp`` section compiled into one table per UDP entry point, as Traefik builds its UDP handlers.

Done in the build thread with the HTTP compile; the loop only swaps the tables in
(:meth:`router.udp.endpoint.UDPEntryPoint.set_table`). Traefik's rules, from its UDP router and service
managers:

- A UDP router has no rule: it takes every datagram of its entry points. One without ``entryPoints`` is on
  every UDP entry point (``asDefault`` plays no part). An entry point it names that is not a UDP one
  "doesn't exist" for it: logged by name, the router stays on the others, or is not routed at all.
- One router per entry point: with several, Traefik warns and uses the first that builds in descending
  name order; the others are reported here as not used there.
- ``loadBalancer``: Traefik's interleaved weighted round robin
  (:class:`~router.interleaved_wrr.InterleavedWRR`, shared with TCP), all weights 1, over the servers in
  a shuffled order (Traefik shuffles once per build). ``weighted``: the same over services, with their
  weights. A session picks once, when it starts.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from discover.model_base import host_and_port
from discover.model_udp import UDPConfig, UDPService
from router.interleaved_wrr import InterleavedWRR
from router.settings import EntryPoint

__all__ = ["Target", "UDPCompiled", "UDPTable", "compile_udp"]

log = logging.getLogger("dockroute.udp")


@dataclass(frozen=True, slots=True)
class Target:
    """One backend: its address as configured (the session's key on reloads) and where to send.
    ``family`` is known for an IP address (the session's socket is opened at once); None for a host name,
    looked up when a session starts (one lookup shared by the sessions: router.udp.lookup)."""

    address: str
    host: str
    port: int
    family: int | None = None


def _target(address: str, host: str, port: int) -> Target:
    try:
        ip = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return Target(address, host, port)
    return Target(address, host, port, socket.AF_INET6 if ip.version == 6 else socket.AF_INET)


class _Servers:
    """A ``loadBalancer``: the next server, round robin."""

    __slots__ = ("wrr",)

    def __init__(self, targets: Iterable[Target]) -> None:
        self.wrr: InterleavedWRR[Target] = InterleavedWRR([(t, 1) for t in targets])

    def pick(self) -> Target | None:
        return self.wrr.next()

    def targets(self) -> Iterable[Target]:
        return self.wrr.items


class _Weighted:
    """A ``weighted`` service: the next service by weight, then its own pick."""

    __slots__ = ("wrr",)

    def __init__(self, children: Iterable[tuple[_Servers | _Weighted, int]]) -> None:
        self.wrr: InterleavedWRR[_Servers | _Weighted] = InterleavedWRR(list(children))

    def pick(self) -> Target | None:
        child = self.wrr.next()
        return child.pick() if child is not None else None

    def targets(self) -> Iterable[Target]:
        for child in self.wrr.items:
            yield from child.targets()


Picker = _Servers | _Weighted


@dataclass(frozen=True)
class UDPTable:
    """What one UDP entry point does with a new client: ``pick`` a server for its session. ``addresses``
    are every server it can pick: a reload keeps the sessions whose server is still among them."""

    entry_point: str
    router: str
    service: str
    picker: Picker
    addresses: frozenset[str]

    def pick(self) -> Target | None:
        return self.picker.pick()


@dataclass
class UDPCompiled:
    tables: dict[str, UDPTable | None]  # every UDP entry point; None: no router there
    errors: dict[str, str] = field(default_factory=dict)  # router → why it is not routed
    warnings: dict[str, list[str]] = field(default_factory=dict)  # router → what is wrong (routed still)
    service_errors: dict[str, str] = field(default_factory=dict)  # service → why it cannot be built
    entry_points: dict[str, tuple[str, ...]] = field(default_factory=dict)  # router → where it is used


def compile_udp(
    cfg: UDPConfig, entry_points: Iterable[EntryPoint], rng: random.Random | None = None
) -> UDPCompiled:
    """The tables of the UDP entry points among ``entry_points`` (all of them: the names of the others
    make the "not a UDP entry point" message). Logs one line per router left out, by name."""
    eps = tuple(entry_points)
    udp_names = tuple(ep.name for ep in eps if ep.udp)
    other_names = {ep.name for ep in eps if not ep.udp}
    services = _Services(cfg.services, rng or random.Random())
    out = UDPCompiled(tables=dict.fromkeys(udp_names))
    by_ep: dict[str, list[str]] = {name: [] for name in udp_names}
    for name in sorted(cfg.routers):
        router = cfg.routers[name]
        wanted = router.entry_points or udp_names
        present = [ep for ep in wanted if ep in by_ep]
        missing = [ep for ep in wanted if ep not in by_ep]
        for ep in missing:
            what = "is not a UDP entry point" if ep in other_names else "does not exist"
            if present:
                log.warning("UDP router %s: entry point %s %s; routed on the others", name, ep, what)
                out.warnings.setdefault(name, []).append(f"entry point {ep} {what}")
        if not present:
            if missing:
                why = "its entry points are not UDP entry points or do not exist: " + ", ".join(missing)
            else:
                why = "there is no UDP entry point (an address ending in /udp)"
            out.errors[name] = why
            log.error("UDP router %s is not routed: %s", name, why)
            continue
        for ep in present:
            by_ep[ep].append(name)
    for ep, names in by_ep.items():
        out.tables[ep] = _choose(ep, names, cfg, services, out)
    for ep, table in out.tables.items():
        if table is not None:
            out.entry_points[table.router] = (*out.entry_points.get(table.router, ()), ep)
    for name in cfg.routers:
        if name not in out.entry_points and name not in out.errors:
            out.errors[name] = "not used: each of its entry points serves another UDP router"
    out.service_errors = services.errors
    return out


def _choose(
    ep: str, names: list[str], cfg: UDPConfig, services: _Services, out: UDPCompiled
) -> UDPTable | None:
    """The table of one entry point: its routers in descending name order, the first that builds wins
    (Traefik's "As UDP support only one router per entrypoint, we only take the first one")."""
    chosen: UDPTable | None = None
    for name in sorted(names, reverse=True):
        router = cfg.routers[name]
        picker = services.build(router.service)
        if isinstance(picker, str):
            out.errors[name] = picker
            log.error("UDP router %s is not routed: %s", name, picker)
            continue
        if chosen is None:
            addresses = frozenset(t.address for t in picker.targets())
            chosen = UDPTable(ep, name, router.service, picker, addresses)
    if len(names) > 1:
        used = f"only {chosen.router} is used" if chosen is not None else "none could be built"
        log.warning(
            "entry point %s has more than one UDP router (%s); %s (Traefik takes one, the first in "
            "descending name order)",
            ep,
            ", ".join(sorted(names, reverse=True)),
            used,
        )
    return chosen


class _Services:
    """Builds each router's service tree. A router gets its own pickers (Traefik builds a handler per
    router and entry point), so that two entry points never share a round-robin position."""

    def __init__(self, services: Mapping[str, UDPService], rng: random.Random) -> None:
        self.services = services
        self.rng = rng
        self.errors: dict[str, str] = {}

    def build(self, name: str, within: tuple[str, ...] = ()) -> Picker | str:
        """A picker for service ``name`` (``within``: the weighted services it is nested in), or why it
        cannot be built (also kept in :attr:`errors` for the service at fault)."""
        spec = self.services.get(name)
        if spec is None:
            return f"the UDP service {name!r} does not exist"
        if name in within:
            why = f"weighted services refer to each other in a cycle: {' → '.join((*within, name))}"
            self.errors.setdefault(name, why)
            return why
        if spec.load_balancer is not None:
            return _Servers(self._targets(name, spec))
        assert spec.weighted is not None
        children: list[tuple[Picker, int]] = []
        for ref in spec.weighted.services:
            child = self.build(ref.name, (*within, name))
            if isinstance(child, str):
                self.errors.setdefault(name, child)
                return child
            children.append((child, ref.weight))
        self.rng.shuffle(children)
        return _Weighted(children)

    def _targets(self, name: str, spec: UDPService) -> list[Target]:
        assert spec.load_balancer is not None
        targets = []
        for server in spec.load_balancer.servers:
            if server.unreachable:
                log.warning(
                    "UDP service %s: server %s left out: %s", name, server.address, server.unreachable
                )
                continue
            try:  # checked by parse_udp; an empty host is the local system, as Go dials it
                host, port = host_and_port(server.address)
            except ValueError:
                continue
            targets.append(_target(server.address, host or "127.0.0.1", port))
        self.rng.shuffle(targets)
        return targets
