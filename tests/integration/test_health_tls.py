"""Health checks connect with the service's transport: an HTTPS backend with a self-signed certificate
behind ``serversTransport.insecureSkipVerify`` is proxied *and* health-checked as healthy; without
``insecureSkipVerify`` the check fails and the service answers 503 (what the test would catch if the
check ignored the transport)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web

from router.tls import self_signed, server_context
from tests.integration.harness import Dockroute, wait_for

pytestmark = pytest.mark.integration


class TlsBackend:
    """An aiohttp server on 127.0.0.1:<port 0> with a fresh self-signed certificate; counts /health."""

    def __init__(self) -> None:
        self.health_probes = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> TlsBackend:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/{tail:.*}", self._hello)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        ctx = server_context(self_signed("backend.test", ("backend.test",)))
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _health(self, request: web.Request) -> web.Response:
        self.health_probes += 1
        return web.Response(text="ok")

    async def _hello(self, request: web.Request) -> web.Response:
        return web.Response(text="hello over tls")


def static(tmp_path, insecure: bool) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "entryPoints": {"web": {"address": "127.0.0.1:0"}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml"), "watch": True}},
        "log": {"level": "INFO"},
    }
    if insecure:
        cfg["serversTransport"] = {"insecureSkipVerify": True}
    return cfg


def dynamic(port: int) -> dict[str, Any]:
    return {
        "http": {
            "routers": {"secure": {"rule": "Host(`tls.test`)", "service": "secure"}},
            "services": {
                "secure": {
                    "loadBalancer": {
                        "servers": [{"url": f"https://127.0.0.1:{port}"}],
                        "healthCheck": {"path": "/health", "interval": "100ms", "timeout": "2s"},
                    }
                }
            },
        }
    }


async def status(http: aiohttp.ClientSession, dr: Dockroute) -> int:
    async with http.get(dr.url("/"), headers={"Host": "tls.test"}) as resp:
        await resp.read()
        return resp.status


async def test_self_signed_https_backend_behind_insecure_skip_verify_stays_healthy(tmp_path):
    backend = await TlsBackend().start()
    dr = await Dockroute(
        tmp_path, static=static(tmp_path, insecure=True), dynamic=dynamic(backend.port)
    ).start()
    try:
        async with aiohttp.ClientSession() as http:
            await wait_for(lambda: backend.health_probes >= 1, timeout=10)
            # over several health intervals every request is served by the backend
            start = backend.health_probes
            codes = []

            async def several_rounds() -> bool:
                codes.append(await status(http, dr))
                return backend.health_probes >= start + 5

            await wait_for(several_rounds, timeout=10, interval=0.05)
            assert set(codes) == {200}, codes
        assert "is unhealthy" not in dr.log()
    finally:
        await dr.stop()
        await backend.stop()


async def test_without_insecure_skip_verify_the_check_fails_and_the_service_answers_503(tmp_path):
    backend = await TlsBackend().start()
    dr = await Dockroute(
        tmp_path, static=static(tmp_path, insecure=False), dynamic=dynamic(backend.port)
    ).start()
    try:
        async with aiohttp.ClientSession() as http:
            await wait_for(lambda: "is unhealthy" in dr.log(), timeout=10)
            await wait_for(lambda: _is(http, dr, 503), timeout=10)
        assert backend.health_probes == 0  # the handshake failed: no probe reached the handler
    finally:
        await dr.stop()
        await backend.stop()


async def _is(http: aiohttp.ClientSession, dr: Dockroute, code: int) -> bool:
    return await status(http, dr) == code
