"""Active health checks: ``loadBalancer.healthCheck``.

One task per checked service probes all its servers concurrently every ``interval``, the first round at once.
A server is healthy when it answers with the expected status, or with any 2xx/3xx when none is set
(Traefik's rule: ``200 <= status < 400``). Each transition is logged once. The probes use aiohttp's client:
they are off the request path, so clarity wins over speed.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp

from discover.model import HealthCheck, Service
from router.balancer import Balancer, ServiceBalancer, Upstream

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


class HealthChecker:
    """Runs the active checks of every ``loadBalancer`` service that has a ``healthCheck``."""

    def __init__(
        self,
        balancers: Mapping[str, Balancer],
        services: Mapping[str, Service],
        ssl: ssl_module.SSLContext | bool | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._jobs: list[tuple[ServiceBalancer, HealthCheck]] = []
        for name, bal in balancers.items():
            svc = services.get(name)
            if (
                isinstance(bal, ServiceBalancer)
                and svc is not None
                and svc.load_balancer is not None
                and svc.load_balancer.health_check is not None
                and bal.servers
            ):
                self._jobs.append((bal, svc.load_balancer.health_check))
        self._ssl = ssl
        self._log = logger or log
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._stopped = False

    def start(self) -> None:
        """Start one task per checked service; the first round of probes runs at once."""
        if not self._jobs or self._tasks:
            return
        self._session = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            connector=aiohttp.TCPConnector(
                force_close=True, ssl=self._ssl if self._ssl is not None else True
            ),
        )
        loop = asyncio.get_running_loop()
        for bal, hc in self._jobs:
            self._tasks.append(loop.create_task(self._run(bal, hc), name=f"healthcheck {bal.name}"))

    async def stop(self) -> None:
        """Cancel the checks and close the client session. Results still in flight are dropped."""
        self._stopped = True
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self, bal: ServiceBalancer, hc: HealthCheck) -> None:
        loop = asyncio.get_running_loop()
        interval = max(hc.interval, 0.01)
        due = loop.time()
        while True:
            await asyncio.gather(*(self._probe(bal, hc, up) for up in bal.servers))
            # A fixed schedule: slow probes do not stretch the interval, and a late round is not repeated.
            due += interval
            now = loop.time()
            if due < now:
                due = now
            await asyncio.sleep(due - now)

    async def _probe(self, bal: ServiceBalancer, hc: HealthCheck, up: Upstream) -> None:
        session = self._session
        if session is None:
            return
        headers = dict(hc.headers)
        if hc.hostname:
            headers["Host"] = hc.hostname
        url = probe_url(hc, up)
        why = ""
        try:
            async with session.request(
                hc.method or "GET",
                url,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=hc.timeout if hc.timeout > 0 else None),
                allow_redirects=hc.follow_redirects,
            ) as resp:
                status = resp.status
            ok = is_healthy(status, hc.status)
            if not ok:
                why = f"status {status}"
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            ok, why = False, f"no answer in {hc.timeout:g}s"
        except Exception as exc:  # noqa: BLE001 - any failure to get an answer means unhealthy
            ok, why = False, str(exc) or type(exc).__name__
        if self._stopped:
            return  # a newer checker owns these servers now
        if ok != up.healthy:
            up.healthy = ok
            if ok:
                self._log.info("service %s: server %s is healthy again", bal.name, up.url)
            else:
                self._log.warning(
                    "service %s: server %s is unhealthy, out of rotation (%s %s: %s)",
                    bal.name,
                    up.url,
                    hc.method or "GET",
                    url,
                    why,
                )
