"""The swarm provider: swarm services with ``deploy.labels`` become routes to their running tasks.

Traefik polls the swarm every ``refreshSeconds`` (its code: "Linked to Swarm events docker/docker#23827"),
because a task starting on another node makes no event on this one. dockroute polls at that interval too,
and also rebuilds at once when the engine says something changed: ``service`` events (create, update,
remove: Docker 17.06+ emits them on managers), ``node`` events, and the ``container`` events of task
containers on this node (``com.docker.swarm.service.id`` among their attributes). A task is reported
running by its node's agent a moment after its container starts, so an event is followed by two more
rebuilds a second and three seconds later: a scale-up is routed in seconds even with a long interval.

The docker SDK is synchronous: the event stream is read in a thread, and the three list calls and the
build run in the executor; the loop only waits and publishes, and publishes only a configuration that
differs from the last. When the engine cannot be reached (or is no swarm manager) the last routes keep
serving, one line says so, and the next attempt backs off (doubling, at most ``refreshSeconds``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from discover.docker_hints import unreachable_hint
from discover.docker_labels import build_docker_config
from discover.docker_model import ContainerRecord, Reach
from discover.engine_provider import EngineProvider, record_lines
from discover.model import DynamicConfig
from discover.swarm_model import SwarmSettings
from discover.swarm_tasks import swarm_containers

__all__ = ["SwarmProvider"]

log = logging.getLogger("dockroute.swarm")

_TASK_ACTIONS = frozenset({"start", "die", "stop", "kill", "destroy", "pause", "unpause"})
_FOLLOW_UPS = (1.0, 3.0)  # seconds after an event: the task's state reaches the manager a moment later


def _is_task_event(ev: dict[str, Any]) -> bool:
    kind = ev.get("Type", "")
    if kind in ("service", "node"):
        return True
    attrs = (ev.get("Actor") or {}).get("Attributes") or {}
    action = str(ev.get("Action") or ev.get("status") or "")
    return (
        kind == "container"
        and "com.docker.swarm.service.id" in attrs
        and (action in _TASK_ACTIONS or action.startswith("health_status"))
    )


class SwarmProvider(EngineProvider):
    """``providers.swarm``: poll every ``refresh_seconds``, and sooner on events (see the module); the
    shared engine access, rebuild step and log are :class:`discover.engine_provider.EngineProvider`'s."""

    def __init__(
        self,
        settings: SwarmSettings,
        debounce: float = 0.1,
        backoff: tuple[float, float] = (0.5, 10.0),
    ) -> None:
        super().__init__(settings, debounce, backoff, log, "tasks and services")
        self.settings: SwarmSettings = settings
        self._warned: frozenset[str] = frozenset()
        self._down: str | None = None  # the failure last logged, None while the engine answers

    def describe(self) -> str:
        """The start line: where it looks, how often, and what it routes."""
        s = self.settings
        return (
            f"provider swarm: {s.endpoint}, polling every {s.refresh_seconds:g}s"
            + (" and on its events" if s.watch else " (watch off: listed once)")
            + ("" if s.exposed_by_default else "; only services with traefik.enable=true are routed")
        )

    # -- engine access (threads) --------------------------------------------------------------------

    def _list(self) -> tuple[list[Any], list[Any], list[Any], Reach]:
        """Services, their tasks meant to run, the swarm networks, and what dockroute reaches: one call
        each (Traefik lists the tasks service by service; one call for all is the same answer)."""

        def calls(client: Any) -> tuple[list[Any], list[Any], list[Any], Reach]:
            services = client.services()
            tasks = client.tasks(filters={"desired-state": "running"})
            networks = client.networks(filters={"scope": "swarm"})
            return services, tasks, networks, self._find_reach(client)

        return self._listing(calls)

    def _events_thread(self) -> None:
        delay = self.backoff[0]
        while not self._stop.is_set():
            try:
                client = self._client()
                stream = client.events(decode=True, filters={"type": ["service", "node", "container"]})
                self._stream = stream
                delay = self.backoff[0]
                for ev in stream:
                    if self._stop.is_set():
                        return
                    if _is_task_event(ev):
                        self.events_seen += 1
                        self._trigger()
            except Exception as exc:  # the poll reports an engine that is down; this only retries
                log.debug("provider swarm: event stream failed (%s); polling meanwhile", exc)
            if self._stop.is_set():
                return
            self._stop.wait(random.uniform(delay / 2, delay))
            delay = min(delay * 2, self.backoff[1])

    def _trigger(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # loop closed during shutdown
                pass

    # -- asyncio side -------------------------------------------------------------------------------

    async def run(self, publish: Callable[[DynamicConfig], None]) -> None:
        """Rebuild now, then at every ``refreshSeconds``, on events (a burst settles for ``debounce``,
        then two follow-ups), and after a failure with backoff. ``watch: false``: one successful list."""
        self._loop = loop = asyncio.get_running_loop()
        self._wake = wake = asyncio.Event()
        if self.settings.watch:
            threading.Thread(target=self._events_thread, name="swarm-events", daemon=True).start()
        refresh = max(self.settings.refresh_seconds, 0.1)
        delay = self.backoff[0]
        follow_ups: list[float] = []
        try:
            while True:
                ok = await self._rebuild(publish)
                if ok and not self.settings.watch:
                    return
                wait = refresh if ok else min(delay, refresh)
                delay = self.backoff[0] if ok else min(delay * 2, self.backoff[1])
                if follow_ups:
                    wait = min(wait, max(follow_ups.pop(0) - loop.time(), 0.0))
                try:
                    async with asyncio.timeout(wait):
                        await wake.wait()
                    await asyncio.sleep(self.debounce)  # a burst (a scale of many tasks) costs one rebuild
                    follow_ups = [loop.time() + d for d in _FOLLOW_UPS]
                except TimeoutError:
                    pass
                wake.clear()
        finally:
            self._shut()

    def _list_and_build(self) -> tuple[int, DynamicConfig | None] | None:
        """In a worker thread: the records built and the new configuration (None: unchanged); None
        altogether when the engine failed (logged once; the last routes stay)."""
        try:
            services, tasks, networks, reach = self._list()
        except Exception as exc:
            self._engine_down(exc)
            return None
        if self._down is not None:
            log.info("provider swarm: %s answers again", self.settings.endpoint)
        self._down = None
        try:
            view = swarm_containers(services, tasks, networks, self.settings)
            cfg, records = build_docker_config(
                view.containers, self.settings, constraints=self._compiled_constraints(), reach=reach
            )
        except Exception:
            log.exception("provider swarm: could not build a configuration; keeping the last routes")
            return None
        for note in view.notes:
            records.setdefault(note.name, note)
        notes = tuple(n.discovered("swarm") for n in view.notes)
        cfg = replace(cfg, discovered=cfg.discovered + notes)
        self._warn(view.warnings)
        self._report(records)
        return len(view.containers), self._changed(cfg)

    def _engine_down(self, exc: Exception) -> None:
        text = str(exc)
        if "not a swarm manager" in text or ("swarm" in text.lower() and "503" in text):
            line = (
                f"provider swarm: {self.settings.endpoint} is not a swarm manager (docker swarm init, or "
                "point providers.swarm.endpoint at a manager); retrying, the last routes keep serving"
            )
        else:
            hint = unreachable_hint(self.settings.endpoint, exc)
            line = (
                f"provider swarm: cannot reach {self.settings.endpoint} ({text}); "
                f"{hint + '; ' if hint else ''}retrying, the last routes keep serving"
            )
        if self._down is None:
            log.warning("%s", line)
        self._down = line

    def _warn(self, warnings: tuple[str, ...]) -> None:
        """The swarm-wide warnings, each logged once while it holds."""
        for w in warnings:
            if w not in self._warned:
                log.warning("%s", w)
        self._warned = frozenset(warnings)

    @staticmethod
    def _lines(rec: ContainerRecord) -> dict[str, int]:
        """What the log says about a task or service: line → level. Deliberate omissions are INFO."""
        deliberate = rec.reason in ("disabled", "constraint", "not-running")
        return record_lines(rec, f"swarm {rec.kind} {rec.name}", deliberate)
