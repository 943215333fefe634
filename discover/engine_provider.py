"""What the Docker and the swarm providers share: both read one Docker engine through the synchronous SDK.

Both open the engine the same way (``endpoint`` and ``tls``: Traefik's ``ClientConfig``), judge which
networks dockroute reaches from its own container, build with the same label logic, log each record's
problems once, and rebuild in an executor thread so that the event loop only publishes. What differs is
what they list and when they rebuild: the Docker provider follows the container events
(:mod:`discover.docker_provider`), the swarm provider polls and follows service, node and task events
(:mod:`discover.swarm_provider`). This base holds the shared part, once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import docker
from docker.errors import NotFound
from docker.tls import TLSConfig

from discover.docker_labels import Constraints, compile_constraints
from discover.docker_model import ContainerRecord, DockerSettings, Reach
from discover.docker_reach import find_own_container, find_reach, host_gateway, local_routes
from discover.model import DynamicConfig

__all__ = ["EngineProvider", "engine_tls", "record_lines"]

T = TypeVar("T")


def engine_tls(s: DockerSettings) -> TLSConfig | bool:
    """The ``tls`` section as the SDK's TLS settings (False: plain HTTP), as Traefik's
    ``ClientTLS.CreateTLSConfig``: the engine's certificate is checked against ``tls.ca``, or the system's
    roots when there is none (``verify=True`` without a CA file: requests' bundle), and never with
    ``tls.insecureSkipVerify``. Cert and key come together (start refuses one without the other)."""
    if not (s.tls_cert or s.tls_ca or s.tls_insecure_skip_verify):
        return False
    return TLSConfig(
        client_cert=(s.tls_cert, s.tls_key) if s.tls_cert and s.tls_key else None,
        ca_cert=s.tls_ca,
        verify=not s.tls_insecure_skip_verify,
    )


class EngineProvider:
    """The engine access, the rebuild step and the log-once reporting of a provider reading one engine.

    A subclass gives its logger and what it counts (for the debug line), and defines ``_list_and_build``
    (in a worker thread: the count and the new configuration, or None when the list or the build failed)
    and ``_lines`` (what the log says about one record)."""

    def __init__(
        self,
        settings: DockerSettings,
        debounce: float,
        backoff: tuple[float, float],
        logger: logging.Logger,
        counted: str,
    ) -> None:
        self._log = logger
        self._counted = counted
        self.settings = settings
        self.debounce = debounce
        self.backoff = backoff
        self.records: dict[str, ContainerRecord] = {}
        self.rebuilds = 0
        self.events_seen = 0
        self.call_timeout = 10.0  # seconds an engine call may take (the event stream is not bounded)
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._lock = threading.Lock()
        self._list_client: docker.APIClient | None = None
        self._stream: Any = None
        # dockroute's container, found once: "" when it runs in none, None when it cannot tell
        self._own_id: str | None = None
        self._own_looked = False
        self._host = ""  # in that container: host.docker.internal's address (network_mode host containers)
        self._logged: dict[str, set[tuple[str, int]]] = {}  # record id → the lines logged for it
        self._last: DynamicConfig | None = None
        self._constraints: Constraints | None = None

    # -- engine access (threads) --------------------------------------------------------------------

    def _client(self, timeout: float | None = None) -> docker.APIClient:
        """A client whose calls (the ``/version`` that ``version="auto"`` asks first, ping, the lists) give
        up after ``call_timeout`` (or ``timeout``): an engine that accepts and never answers costs a
        bounded wait, not a hung thread that stop cannot cut (its stream not set yet). The SDK reads the
        event stream itself with no timeout, so the events threads use this client too: a quiet engine
        does not end their stream."""
        timeout = self.call_timeout if timeout is None else timeout
        s = self.settings
        tls = engine_tls(s)
        base = s.endpoint.replace("tcp://", "https://" if tls else "http://", 1)
        return docker.APIClient(base_url=base, version="auto", timeout=timeout, tls=tls)

    def _listing(self, calls: Callable[[docker.APIClient], T]) -> T:
        """``calls`` on the list client, one list at a time; the client is kept between lists and made
        afresh after a failure (a fresh session after the engine comes back)."""
        with self._lock:
            if self._list_client is None:
                self._list_client = self._client()
            try:
                return calls(self._list_client)
            except Exception:
                self._list_client = None
                raise

    def _find_reach(self, client: docker.APIClient) -> Reach:
        """Which networks dockroute can reach now (:mod:`discover.docker_reach`; one engine call per
        rebuild: ``docker network connect`` of dockroute's own container is an event, and the next rebuild
        sees it). Its own container (on a swarm: a task of its own service), and where the host is from
        it, are looked for once."""
        if not self._own_looked:
            self._own_id = find_own_container(client)
            self._host = host_gateway() if self._own_id else ""
            self._own_looked = True
        try:
            return find_reach(client, self.settings.endpoint, self._own_id, local_routes(), self._host)
        except NotFound:
            self._own_looked = False  # recreated under another id: looked for again next time
            return Reach()

    def _compiled_constraints(self) -> Constraints:
        """The static ``constraints``, compiled once, by the first rebuild."""
        if self._constraints is None:
            self._constraints = compile_constraints(self.settings.constraints)
        return self._constraints

    def _changed(self, cfg: DynamicConfig) -> DynamicConfig | None:
        """``cfg``, or None when it equals the last one published (a deep compare: in the worker thread)."""
        return cfg if cfg != self._last else None

    def _list_and_build(self) -> tuple[int, DynamicConfig | None] | None:
        raise NotImplementedError

    # -- asyncio side -------------------------------------------------------------------------------

    async def _rebuild(self, publish: Callable[[DynamicConfig], None]) -> bool:
        """One rebuild: list, build and compare in an executor thread; the loop only publishes. False when
        the list or the build failed (the last routes stay).

        Building parses every container's labels and renders the rule templates, and comparing with the last
        configuration is a deep compare of the model: with a few hundred containers that is milliseconds the
        loop would not serve requests, so it happens where the list call already runs. Rebuilds never
        overlap (``run`` awaits each one), so the configuration published is always the newest list's.
        """
        t0 = time.monotonic()
        built = await asyncio.get_running_loop().run_in_executor(None, self._list_and_build)
        if built is None:
            return False
        count, cfg = built
        self.rebuilds += 1
        self._log.debug(
            "provider %s: rebuilt from %d %s in %.1f ms (rebuild %d, %d events so far)",
            self.settings.provider,
            count,
            self._counted,
            (time.monotonic() - t0) * 1000,
            self.rebuilds,
            self.events_seen,
        )
        if cfg is not None:
            self._last = cfg
            publish(cfg)
        return True

    def _shut(self) -> None:
        """At the end of ``run``: the events thread stops, its stream is closed under it."""
        self._stop.set()
        stream = self._stream
        if stream is not None:
            try:
                stream.close()
            except Exception:
                pass

    # -- the log ------------------------------------------------------------------------------------

    def _report(self, records: dict[str, ContainerRecord]) -> None:
        """Each record's problems logged once, never again on every event: the lines logged for a record
        are remembered by its id until it is gone from the list (destroyed or stopped), and only a line
        never logged for it is logged. A crash-looping container (restarting, running, restarting...)
        says each of its lines once, not on every cycle."""
        logged: dict[str, set[tuple[str, int]]] = {}
        for name, rec in records.items():
            key = rec.id or name
            seen = logged[key] = self._logged.get(key, set())
            for line, level in self._lines(rec).items():
                if (line, level) not in seen:
                    seen.add((line, level))
                    self._log.log(level, "%s", line)
        self._logged = logged  # a record gone from the list is forgotten
        self.records = records

    @staticmethod
    def _lines(rec: ContainerRecord) -> dict[str, int]:
        raise NotImplementedError


def record_lines(rec: ContainerRecord, who: str, deliberate: bool) -> dict[str, int]:
    """What the log says about a record (line → level): its warnings, and why it is routed in part or not
    at all. Left out on purpose (``deliberate``: enable=false, constraints, not running yet) is news, INFO;
    anything else (bad labels, no port, no address, a network dockroute is not on) is a WARNING."""
    lines = {f"{who}: {w}": logging.WARNING for w in rec.warnings}
    fix = f"; fix: {rec.fix}" if rec.fix else ""
    if rec.routed:
        if rec.reasons:
            lines[f"{who}: routed in part: {'; '.join(rec.reasons)}{fix}"] = logging.WARNING
    else:
        line = f"{who} is not routed: {'; '.join(rec.reasons) or 'no reason'}{fix}"
        lines[line] = logging.INFO if deliberate else logging.WARNING
    return lines
