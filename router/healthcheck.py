"""Active health checks: ``loadBalancer.healthCheck``.

One task per checked service probes all its servers concurrently every ``interval``, the first round at once.
A reload hands the checker the new balancers (:meth:`HealthChecker.update`): a service whose balancer is the
same object (its definition did not change, see ``build_balancers``) and whose ``serversTransport`` settings
did not change keeps its task, schedule and up/down state; only new or changed services get a new task (and
an immediate first probe), and removed ones stop.
A server is healthy when it answers with the expected status, or with any 2xx/3xx when none is set
(Traefik's rule: ``200 <= status < 400``). Each transition is logged once. The probes use aiohttp's client:
they are off the request path, so clarity wins over speed. They connect with the TLS settings of the
service's ``serversTransport`` (``tls_for``, the proxy's own ``Pool.tls_for``), so a backend is probed the
way it is proxied: ``insecureSkipVerify``, ``rootCAs``, ``serverName`` and client certificates alike.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from discover.model import HealthCheck, ServersTransport, Service
from router.balancer import Balancer, ServiceBalancer, Upstream
from router.passive_health import UNTIL_CHECK

log = logging.getLogger("dockroute.healthcheck")


def is_healthy(status: int, expected: int | None) -> bool:
    """Traefik's rule: the expected status if one is set, else any 2xx or 3xx."""
    if expected:
        return status == expected
    return 200 <= status < 400


def probe_url(hc: HealthCheck, up: Upstream) -> str:
    """The URL probed for ``up``: its URL with ``scheme``, ``port`` and ``path`` replaced as Traefik does
    (the port stays the server URL's own, explicit or implied by the new scheme, unless ``port`` is set)."""
    scheme = (hc.scheme or up.scheme).lower()
    if hc.port:
        port: int | None = hc.port
    else:
        try:
            port = urlsplit(up.url).port
        except ValueError:
            port = up.port
    netloc = up.host if port is None else f"{up.host}:{port}"
    path = hc.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    return f"{scheme}://{netloc}{path}"


TlsFor = Callable[[str | None], tuple[ssl_module.SSLContext, str | None]]


@dataclass(eq=False)
class _Job:
    """The checks of one service: which balancer they report into, with which settings, and the task."""

    name: str
    bal: ServiceBalancer
    hc: HealthCheck
    transport_name: str | None
    transport: ServersTransport | None  # the named transport's settings when the job started
    ssl: ssl_module.SSLContext | bool
    server_hostname: str | None
    task: asyncio.Task[None] | None = field(default=None)


class HealthChecker:
    """Runs the active checks of every ``loadBalancer`` service that has a ``healthCheck``.

    ``tls_for(transport name)`` gives the (context, server name) to probe https servers with, the same the
    proxy connects with; without it, the system's trust store is used.
    """

    def __init__(self, logger: logging.Logger | None = None, tls_for: TlsFor | None = None) -> None:
        self._tls_for = tls_for
        self._log = logger or log
        self._jobs: dict[str, _Job] = {}
        self._session: aiohttp.ClientSession | None = None
        self._stopped = False

    @property
    def _tasks(self) -> list[asyncio.Task[None]]:
        return [j.task for j in self._jobs.values() if j.task is not None]

    def update(
        self,
        balancers: Mapping[str, Balancer],
        services: Mapping[str, Service],
        transports: Mapping[str, ServersTransport] | None = None,
    ) -> tuple[int, int]:
        """Check what ``balancers`` need (called on the event loop when a snapshot is applied).

        A job survives when its service's balancer is the same object and its named transport's settings
        are equal; everything else is started afresh or stopped. Returns (kept, started) for the log.
        """
        if self._stopped:
            return 0, 0
        transports = transports or {}
        wanted: dict[str, tuple[ServiceBalancer, HealthCheck, str | None]] = {}
        for name, bal in balancers.items():
            svc = services.get(name)
            lb = svc.load_balancer if svc is not None else None
            if (
                isinstance(bal, ServiceBalancer)
                and lb is not None
                and lb.health_check is not None
                and bal.servers
            ):
                wanted[name] = (bal, lb.health_check, lb.servers_transport)
        kept = started = 0
        for name in list(self._jobs):
            job = self._jobs[name]
            new = wanted.get(name)
            if (
                new is not None
                and new[0] is job.bal
                and new[1] == job.hc
                and new[2] == job.transport_name
                and transports.get(new[2] or "") == job.transport
            ):
                kept += 1
                del wanted[name]
                continue
            del self._jobs[name]
            if job.task is not None:
                job.task.cancel()  # its late results go nowhere: the job is no longer listed
        for name, (bal, hc, tname) in wanted.items():
            ctx, server_hostname = self._tls(tname)
            job = _Job(name, bal, hc, tname, transports.get(tname or ""), ctx, server_hostname)
            self._jobs[name] = job
            job.task = asyncio.get_running_loop().create_task(self._run(job), name=f"healthcheck {name}")
            started += 1
        return kept, started

    def _tls(self, transport: str | None) -> tuple[ssl_module.SSLContext | bool, str | None]:
        if self._tls_for is not None:
            return self._tls_for(transport)
        return True, None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                connector=aiohttp.TCPConnector(force_close=True),
            )
        return self._session

    async def stop(self) -> None:
        """Cancel the checks and close the client session. Results still in flight are dropped."""
        self._stopped = True
        tasks = self._tasks
        self._jobs.clear()
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self, job: _Job) -> None:
        loop = asyncio.get_running_loop()
        interval = max(job.hc.interval, 0.01)
        due = loop.time()
        while True:
            await asyncio.gather(*(self._probe(job, up) for up in job.bal.servers))
            # A fixed schedule: slow probes do not stretch the interval, and a late round is not repeated.
            due += interval
            now = loop.time()
            if due < now:
                due = now
            await asyncio.sleep(due - now)

    async def _probe(self, job: _Job, up: Upstream) -> None:
        if self._stopped or up.unreachable:
            # A provider knows the proxy cannot reach it (a Docker network it is not on): a probe would
            # only wait out its timeout. It stays as it is, so requests still get the 502 with the reason.
            return
        hc = job.hc
        headers = dict(hc.headers)
        if hc.hostname:
            headers["Host"] = hc.hostname
        url = probe_url(hc, up)
        extra: dict[str, Any] = {"ssl": job.ssl}
        if job.server_hostname is not None:
            extra["server_hostname"] = job.server_hostname
        why = ""
        try:
            async with self._client().request(
                hc.method or "GET",
                url,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=hc.timeout if hc.timeout > 0 else None),
                allow_redirects=hc.follow_redirects,
                **extra,
            ) as resp:
                status = resp.status
            ok = is_healthy(status, hc.status)
            if not ok:
                why = f"status {status}"
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            ok, why = False, f"no answer in {hc.timeout:g}s"
        except aiohttp.ClientConnectorError as exc:
            # Its str() embeds the SSL context object's repr; the OS error is what a user can act on.
            ok, why = False, f"cannot connect: {exc.os_error.strerror or exc.os_error}"
        except Exception as exc:  # noqa: BLE001 - any failure to get an answer means unhealthy
            ok, why = False, str(exc) or type(exc).__name__
        if self._stopped or self._jobs.get(job.name) is not job:
            return  # stopped, or a newer job owns these servers now
        up.why = why
        if ok and up.down_until == UNTIL_CHECK:
            # Out after passive failures: with an active check, its next pass brings it back (Traefik).
            up.down_until = 0.0
            self._log.info(
                "service %s: server %s is back (active check passed after passive failures)",
                job.bal.name,
                up.url,
            )
        if ok != up.healthy:
            up.healthy = ok
            if ok:
                self._log.info("service %s: server %s is healthy again", job.bal.name, up.url)
            else:
                self._log.warning(
                    "service %s: server %s is unhealthy, out of rotation (%s %s: %s)",
                    job.bal.name,
                    up.url,
                    hc.method or "GET",
                    url,
                    why,
                )
