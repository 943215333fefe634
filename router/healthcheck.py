"""Active health checks: ``loadBalancer.healthCheck``.

One task per checked service probes every server each ``interval`` (first probe at once). A server is
healthy when it answers with the expected status, or with any 2xx/3xx when none is set (Traefik's rule).
Transitions are logged once. Checks use aiohttp's client: they are off the request path, so clarity wins.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import aiohttp

from discover.model import HealthCheck, Service
from router.balancer import Balancer, ServiceBalancer, Upstream

log = logging.getLogger("dockroute.healthcheck")


class HealthChecker:
    def __init__(
        self, balancers: Mapping[str, Balancer], services: Mapping[str, Service], ssl: object = None
    ):
        self._jobs: list[tuple[ServiceBalancer, HealthCheck]] = []
        for name, bal in balancers.items():
            svc = services.get(name)
            if (
                isinstance(bal, ServiceBalancer)
                and svc is not None
                and svc.load_balancer is not None
                and svc.load_balancer.health_check is not None
            ):
                self._jobs.append((bal, svc.load_balancer.health_check))
        self._ssl = ssl
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        if not self._jobs:
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
            self._tasks.append(loop.create_task(self._run(bal, hc)))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self, bal: ServiceBalancer, hc: HealthCheck) -> None:
        while True:
            await asyncio.gather(*(self._probe(bal, hc, up) for up in bal.servers), return_exceptions=True)
            await asyncio.sleep(hc.interval)

    def _url(self, hc: HealthCheck, up: Upstream) -> str:
        scheme = hc.scheme or up.scheme
        port = hc.port or up.port
        path = hc.path if hc.path.startswith("/") else "/" + hc.path
        return f"{scheme}://{up.host}:{port}{path}"

    async def _probe(self, bal: ServiceBalancer, hc: HealthCheck, up: Upstream) -> None:
        assert self._session is not None
        headers = dict(hc.headers)
        if hc.hostname:
            headers["Host"] = hc.hostname
        why = ""
        try:
            async with self._session.request(
                hc.method,
                self._url(hc, up),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=hc.timeout),
                allow_redirects=hc.follow_redirects,
            ) as resp:
                status = resp.status
            ok = status == hc.status if hc.status else 200 <= status < 400
            if not ok:
                why = f"status {status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            ok = False
            why = str(exc) or type(exc).__name__
        if ok != up.healthy:
            up.healthy = ok
            if ok:
                log.info("service %s: server %s is healthy again", bal.name, up.url)
            else:
                log.warning("service %s: server %s failed its health check (%s)", bal.name, up.url, why)
