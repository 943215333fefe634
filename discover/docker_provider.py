"""The Docker provider: containers with labels become routes, driven by the engine's events.

The docker SDK is synchronous, so it lives in threads: one thread follows the event stream, list calls run
in an executor, and so does building the configuration from the labels and comparing it with the last one
(milliseconds per hundred containers, which would stall every request). The asyncio side only coalesces
wake-ups and publishes. The sequence on every (re)connect
is: open the event stream, then list; so an event that happens while listing is never lost, it just causes
one more (cheap) rebuild. A burst of events (``docker compose up`` of 25 services) costs one rebuild: the
rebuild waits a few milliseconds for the burst to settle and then reads the state once.

When the engine goes away (restart, socket gone) the stream simply ends: the thread reconnects with
exponential backoff and jitter, and the last published configuration keeps serving meanwhile; nothing is
published until a full list succeeds again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

from discover.bursts import settle
from discover.docker_hints import unreachable_hint
from discover.docker_labels import build_docker_config
from discover.docker_model import ContainerInfo, ContainerRecord, DockerSettings, PortBinding, Reach
from discover.engine_provider import EngineProvider, record_lines
from discover.model import DynamicConfig

log = logging.getLogger("dockroute.docker")

# Container events that can change what is routed; health_status comes as "health_status: healthy".
_CONTAINER_ACTIONS = frozenset(
    {"start", "die", "stop", "kill", "destroy", "pause", "unpause", "rename", "update", "restart"}
)
_NETWORK_ACTIONS = frozenset({"connect", "disconnect"})
_DELIBERATE = ("not enabled", "left out by the constraints", "health: starting", "state: ")
_LISTED_STATES = ("running", "paused", "restarting")
# Events that take a backend away skip the burst wait below: every request routed to a container that is
# gone hangs or fails, while a new container can wait for the burst to settle. (The app's
# providersThrottleDuration still applies to what this provider publishes, as in Traefik.)
_URGENT = frozenset({"die", "stop", "kill", "destroy", "pause", "health_status: unhealthy", "disconnect"})


def _health(status: str) -> str | None:
    """Health from the list call's human status ("Up 3 seconds (healthy)"): no inspect per container."""
    if "(healthy)" in status:
        return "healthy"
    if "(unhealthy)" in status:
        return "unhealthy"
    if "(health: starting)" in status:
        return "starting"
    return None


def container_from_list(c: dict[str, Any]) -> ContainerInfo:
    """One entry of ``GET /containers/json`` → :class:`ContainerInfo`."""
    names = c.get("Names") or [c.get("Id", "")[:12]]
    ports: dict[tuple[int, str], PortBinding] = {}
    for p in c.get("Ports") or ():
        key = (int(p["PrivatePort"]), p.get("Type", "tcp"))
        if key not in ports or (ports[key].host_port is None and p.get("PublicPort")):
            ports[key] = PortBinding(
                port=key[0], protocol=key[1], host_ip=p.get("IP"), host_port=p.get("PublicPort")
            )
    networks = {
        # IPv4 first, the global IPv6 address on an IPv6-only network (Traefik's getIPAddress)
        name: (net or {}).get("IPAddress") or (net or {}).get("GlobalIPv6Address") or ""
        for name, net in ((c.get("NetworkSettings") or {}).get("Networks") or {}).items()
    }
    return ContainerInfo(
        id=c.get("Id", ""),
        name=names[0].lstrip("/"),
        labels=dict(c.get("Labels") or {}),
        state=c.get("State", ""),
        health=_health(c.get("Status", "")),
        ports=tuple(sorted(ports.values(), key=lambda b: (b.port, b.protocol))),
        networks={k: v for k, v in networks.items() if v},
        network_mode=(c.get("HostConfig") or {}).get("NetworkMode", "bridge"),
    )


class DockerProvider(EngineProvider):
    """``providers.docker``: follows the engine's events (see the module); the shared engine access, rebuild
    step and log are :class:`discover.engine_provider.EngineProvider`'s."""

    def __init__(
        self,
        settings: DockerSettings,
        debounce: float = 0.03,
        quiet: float = 0.1,
        max_wait: float = 1.0,
        backoff: tuple[float, float] = (0.25, 10.0),
    ) -> None:
        super().__init__(settings, debounce, backoff, log, "containers")
        self.quiet = quiet
        self.max_wait = max_wait
        self._since: str | None = None
        self._reach = Reach()
        self._connected = False
        self._urgent = False

    # -- engine access (threads) --------------------------------------------------------------------

    def _list(self) -> list[ContainerInfo]:
        def calls(client: Any) -> list[dict[str, Any]]:
            # paused and restarting (a crash loop) too: not routed, but listed with that reason
            raw = client.containers(filters={"status": list(_LISTED_STATES)})
            self._reach = self._find_reach(client)
            return raw

        return [container_from_list(c) for c in self._listing(calls)]

    def _events_thread(self) -> None:
        delay = self.backoff[0]
        down_logged = False
        while not self._stop.is_set():
            try:
                client = self._client()
                client.ping()
                stream = client.events(
                    decode=True, filters={"type": ["container", "network"]}, since=self._since
                )
                self._stream = stream
                if down_logged or not self._connected:
                    log.info("provider docker: connected to %s", self.settings.endpoint)
                self._connected = True
                down_logged = False
                delay = self.backoff[0]
                self._trigger()  # full resync after every (re)connect
                for ev in stream:
                    self._on_event(ev)
                    if self._stop.is_set():
                        return
                if self._stop.is_set():
                    return
                # INFO: a socket proxy's idle timeout (tecnativa's HAProxy: 10 min) ends it on a quiet
                # engine; if the engine is really gone, the reconnect's "cannot reach" warning says so
                log.info(
                    "provider docker: event stream ended (engine restarted, or a proxy's idle timeout); "
                    "reconnecting"
                )
            except Exception as exc:  # the SDK raises many types; all mean "not reachable now"
                if self._stop.is_set():
                    return
                if not down_logged:
                    hint = unreachable_hint(self.settings.endpoint, exc)
                    log.warning(
                        "provider docker: cannot reach %s (%s); %sretrying, the last routes keep serving",
                        self.settings.endpoint,
                        exc,
                        f"{hint}; " if hint else "",
                    )
                    down_logged = True
            # Exponential backoff with full jitter, never a tight loop.
            self._stop.wait(random.uniform(delay / 2, delay))
            delay = min(delay * 2, self.backoff[1])

    def _on_event(self, ev: dict[str, Any]) -> None:
        tn = ev.get("timeNano")
        if tn:
            self._since = f"{tn // 1_000_000_000}.{tn % 1_000_000_000:09d}"
        action = ev.get("Action") or ev.get("status") or ""
        kind = ev.get("Type", "container")
        if (kind == "container" and (action in _CONTAINER_ACTIONS or action.startswith("health_status"))) or (
            kind == "network" and action in _NETWORK_ACTIONS
        ):
            self.events_seen += 1
            self._trigger(urgent=action in _URGENT)

    def _trigger(self, urgent: bool = False) -> None:
        loop = self._loop
        if loop is not None and self._wake is not None:
            try:
                loop.call_soon_threadsafe(self._wake_up, urgent)
            except RuntimeError:  # loop closed during shutdown
                pass

    def _wake_up(self, urgent: bool) -> None:
        self._urgent = self._urgent or urgent
        assert self._wake is not None
        self._wake.set()

    # -- asyncio side -------------------------------------------------------------------------------

    async def run(self, publish: Callable[[DynamicConfig], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        thread = threading.Thread(target=self._events_thread, name="docker-events", daemon=True)
        thread.start()
        wake = self._wake
        try:
            while True:
                await wake.wait()
                # A burst is a run of events less than `quiet` apart: it costs one rebuild, made when the
                # engine falls quiet, or after `max_wait` at most so a long `compose up` routes its first
                # containers while the rest still start. Removals skip this wait: requests sent to a
                # container that is gone hang or fail. providersThrottleDuration is applied by the app.
                await settle(wake, self.quiet, self.max_wait, lambda: self._urgent, self.debounce)
                self._urgent = False
                await self._rebuild(publish)
                if not self.settings.watch:
                    return
        finally:
            self._shut()

    def _list_and_build(self) -> tuple[int, DynamicConfig | None] | None:
        """In a worker thread: the number of containers listed and the new configuration, or None for no
        change; None altogether when the list or the build failed (logged here; the last routes stay)."""
        try:
            containers = self._list()
        except Exception as exc:
            log.debug("provider docker: list failed (%s); keeping the last routes", exc)
            return None
        try:
            cfg, records = build_docker_config(
                containers, self.settings, constraints=self._compiled_constraints(), reach=self._reach
            )
        except Exception:
            log.exception("provider docker: could not build a configuration; keeping the last routes")
            return None
        self._report(records)
        return len(containers), self._changed(cfg)

    @staticmethod
    def _lines(rec: ContainerRecord) -> dict[str, int]:
        """What the log says about a container: line → level."""
        deliberate = all(r.startswith(_DELIBERATE) for r in rec.reasons)
        return record_lines(rec, f"container {rec.name}", deliberate)
