"""The UDP entry points of one process, as the app drives them: bound at start, given new tables on each
reload, drained on shutdown. The HTTP entry points (:class:`router.server.EntryPointServer`) are the
others; a UDP entry point never gets one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from router.settings import EntryPoint
from router.udp.endpoint import SessionBudget, UDPEntryPoint, session_limit
from router.udp.lookup import HostLookups
from router.udp.table import UDPCompiled

__all__ = ["UDPEntryPoints"]

log = logging.getLogger("dockroute")


class UDPEntryPoints:
    """Every entry point whose address ends in ``/udp``."""

    def __init__(self, entry_points: Iterable[EntryPoint]) -> None:
        """One session cap for all of them, from the open-file limit (raised to the hard limit at start,
        before this), and one host-name lookup per host for all of them."""
        self.budget = SessionBudget(session_limit())
        self.lookups = HostLookups()
        self.endpoints = [
            UDPEntryPoint(ep, budget=self.budget, lookups=self.lookups) for ep in entry_points if ep.udp
        ]
        if self.endpoints:
            log.debug("UDP sessions: at most %d, all UDP entry points together", self.budget.limit)

    async def start(self) -> None:
        """Bind each; a port that cannot be bound stops the start, naming the entry point (as for TCP)."""
        for ep in self.endpoints:
            try:
                await ep.start()
            except OSError as exc:
                where = f"{ep.name} ({ep.entry_point.address}/udp)"
                raise SystemExit(f"dockroute: cannot listen on entry point {where}: {exc}") from exc
            for host, port in ep.addresses:
                log.info(
                    "entrypoint %s listening on %s:%d (udp, sessions idle %ss are closed)",
                    ep.name,
                    host,
                    port,
                    f"{ep.timeout:g}",
                )

    def apply(self, compiled: UDPCompiled | None) -> None:
        """On the loop, after a build: each entry point's new table (None: no UDP router there)."""
        tables = compiled.tables if compiled is not None else {}
        for ep in self.endpoints:
            ep.set_table(tables.get(ep.name))

    def stop_accepting(self) -> None:
        for ep in self.endpoints:
            ep.stop_accepting()

    async def shutdown(self) -> None:
        """Each entry point waits up to its own ``transport.lifeCycle.graceTimeOut`` for its sessions to go
        idle (Traefik's UDP Shutdown), then closes them."""
        eps = self.endpoints
        await asyncio.gather(
            *(ep.shutdown(ep.entry_point.grace_timeout) for ep in eps), return_exceptions=True
        )
        self.lookups.close()
