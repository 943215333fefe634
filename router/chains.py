"""What a router's routes lead to: its service (or static files), behind its middlewares.

A router's handler is composed here once per configuration, for each entry point it is on: the entry
point's ``http.middlewares`` first, then the router's own (Traefik's order), then the service. A router
without middlewares gets its service's target itself, so its requests pay nothing for the feature.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from discover.model import DynamicConfig, Mirroring, Router, qualify
from router.balancer import ServiceBalancer, WeightedBalancer
from router.exchange import Handler
from router.internal import InternalTarget
from router.middlewares import BuildContext, Built, build_chain, split
from router.mirroring import InFlight, MirroringTarget, Mirrors
from router.settings import EntryPoint
from router.static import StaticError, build_static
from router.targets import MiddlewareTarget, ServiceTarget

__all__ = ["Built", "Chains"]

log = logging.getLogger("dockroute.router")


class Chains:
    """The targets of one compile; ``built`` collects the middlewares built (for the next compile)."""

    def __init__(
        self,
        cfg: DynamicConfig,
        balancers: Mapping[str, ServiceBalancer | WeightedBalancer],
        previous: Built | None,
        internal: Mapping[str, Handler] | None = None,
    ) -> None:
        self.cfg = cfg
        self.internal = internal or {}
        self.balancers = balancers
        self.previous = previous
        self.built: Built = {}
        self.middleware_errors: dict[str, str] = {}  # middleware → why it could not be built
        self.shared: dict[Any, Any] = {}
        self.service_errors: Mapping[str, str] = {}  # service → why it is left out (the compile's)

    def final(self, router: str, service: str) -> Any:
        """The target serving ``service`` for ``router`` (a static service or a balancer), or why not."""
        serve = self.internal.get(service)
        if serve is not None:
            return InternalTarget(router, service, serve)
        svc = self.cfg.services.get(service)
        if svc is not None and svc.static is not None:
            try:
                return build_static(service, router, svc.static)
            except StaticError as exc:
                return f"service {service}: {exc}"
        if svc is not None and svc.mirroring is not None:
            return self.mirroring(router, service, svc.mirroring)
        balancer = self.balancers.get(service)
        if balancer is None:
            return f"service {service} does not exist or is not usable"
        return ServiceTarget(router=router, service=service, balancer=balancer)

    def mirroring(self, router: str, service: str, spec: Mirroring) -> MirroringTarget | str:
        """A mirroring service's target (checked by the compile: no cycle, every child usable), its state
        shared by all the routers using it."""
        if service in self.service_errors:
            return f"service {service} is not usable (see the error logged for it)"
        main = self.final(router, spec.service)
        if isinstance(main, str):
            return main
        mirrors = {}
        for ref in spec.mirrors:
            target = self.final(router, ref.name)
            if isinstance(target, str):
                return target
            mirrors[ref.name] = target
        state = self.shared.get(("mirroring", service))
        if state is None:
            state = self.shared[("mirroring", service)] = Mirrors(service, spec, self._in_flight(service))
        return MirroringTarget(router, service, main, mirrors, state)

    def _in_flight(self, service: str) -> InFlight:
        """The copies in flight of mirroring service ``service``, carried over from the previous compile
        (in ``built``, under a key no middleware has): copies still waiting on a slow mirror keep counting
        against the bounds after a reload, instead of a fresh count letting as many more pile up."""
        key = (service, ("mirroring",), -1)
        old = (self.previous or {}).get(key)
        flight = old[2] if old is not None and isinstance(old[2], InFlight) else InFlight(service)
        self.built[key] = ("mirroring", None, flight)
        return flight

    def targets(self, router: Router, entry_points: list[EntryPoint]) -> dict[str, Any] | str:
        """Entry point name → the router's target there; or why the router cannot be served at all. An
        entry point whose own middlewares cannot be built leaves the router out there only, with a line."""
        final = self.final(router.name, router.service)
        if isinstance(final, str):
            return final
        out: dict[str, Any] = {}
        refused: dict[str, list[str]] = {}
        by_names: dict[tuple[str, ...], Any] = {}
        for ep in entry_points:
            names = (*self.entry_point_middlewares(router.name, ep), *router.middlewares)
            if names not in by_names:
                by_names[names] = self.wrap(router.name, names, final)
            target = by_names[names]
            if isinstance(target, str):
                refused.setdefault(target, []).append(ep.name)
            else:
                out[ep.name] = target
        for why, eps in refused.items():
            if not out:  # routed nowhere: the caller logs it once
                return why if len(entry_points) == 1 else f"{why} (on entry points {', '.join(eps)})"
            log.error("router %s is not routed on entry points %s: %s", router.name, ", ".join(eps), why)
        return out

    def wrap_entry_point(self, router: str, ep: EntryPoint, final: Any) -> Any:
        """``final`` (an internal router's target) behind entry point ``ep``'s middlewares."""
        return self.wrap(router, self.entry_point_middlewares(router, ep), final)

    def wrap(self, router: str, names: tuple[str, ...], final: Any) -> Any:
        """``final`` behind middlewares ``names`` (qualified), or why not; ``final`` itself when none."""
        if not names:
            return final
        ctx = BuildContext("", router, self.cfg, self.service_handler, self.shared)
        handler = build_chain(names, final.serve, ctx, self.previous, self.built, self.middleware_errors)
        if isinstance(handler, str):
            return handler
        steps, after = split(handler)
        return MiddlewareTarget(router, handler, final, steps, after)

    def entry_point_middlewares(self, router: str, ep: EntryPoint) -> tuple[str, ...]:
        """``ep``'s middleware names, qualified for ``router``: a bare name resolves in the router's
        provider; for dockroute's own routers (``@internal``), in the one provider that defines it."""
        provider = router.partition("@")[2]
        out = []
        for name in ep.middlewares:
            if "@" in name:
                out.append(name)
            elif provider and provider != "internal":
                out.append(qualify(name, provider))
            else:
                found = [m for m in self.cfg.middlewares if m.partition("@")[0] == name]
                out.append(found[0] if len(found) == 1 else name)
        return tuple(out)

    def service_handler(self, service: str) -> Handler | None:
        """The handler serving ``service`` at the end of a chain (``errors`` fetches pages with it)."""
        final = self.final("", service)
        return None if isinstance(final, str) else final.serve
