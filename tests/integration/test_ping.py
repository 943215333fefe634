"""``ping`` and ``dockroute healthcheck`` through the real process: ``/ping`` answers 200 ``OK``, then
``terminatingStatusCode`` once a graceful shutdown began (while the entry points still accept), and the
``healthcheck`` command exits 0 or 1 as Traefik's does."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.integration.harness import ROOT, Dockroute, wait_for

pytestmark = pytest.mark.integration


def _static(tmp_path: Path, ping: dict | None, grace: str | None = None) -> dict:
    entry_points: dict = {"web": {"address": "127.0.0.1:0"}, "traefik": {"address": "127.0.0.1:0"}}
    if grace is not None:
        for ep in entry_points.values():
            ep["transport"] = {"lifeCycle": {"requestAcceptGraceTimeout": grace, "graceTimeOut": "1s"}}
    static: dict = {
        "entryPoints": entry_points,
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
        "log": {"level": "DEBUG"},
    }
    if ping is not None:
        static["ping"] = ping
    return static


async def _status(url: str, method: str = "GET") -> tuple[int, str] | None:
    """(status, body), or None when nothing answers (a new connection every time)."""
    try:
        async with aiohttp.ClientSession() as s, s.request(method, url) as resp:
            return resp.status, await resp.text()
    except aiohttp.ClientError:
        return None


async def test_ping_answers_ok_then_503_during_graceful_shutdown(proxy, tmp_path):
    dr = await proxy(static=_static(tmp_path, {}, grace="6s"))
    assert await _status(dr.url("/ping", "traefik")) == (200, "OK")
    assert (await _status(dr.url("/ping", "traefik"), "HEAD") or (0,))[0] == 200
    # /ping is on the ping entry point only (Traefik's router), not on the others
    assert (await _status(dr.url("/ping")) or (0,))[0] == 404
    dr.terminate()  # SIGTERM: requestAcceptGraceTimeout keeps accepting for 6 s

    async def terminating() -> bool:
        return await _status(dr.url("/ping", "traefik")) == (503, "Service Unavailable")

    await wait_for(terminating, timeout=5)
    assert dr.proc is not None and dr.proc.poll() is None  # still serving: the 503 is what a LB sees


async def test_terminating_status_code_and_entry_point(proxy, tmp_path):
    static = _static(tmp_path, {"entryPoint": "web", "terminatingStatusCode": 204}, grace="6s")
    del static["entryPoints"]["traefik"]
    dr = await proxy(static=static)
    assert await _status(dr.url("/ping")) == (200, "OK")
    dr.terminate()

    async def terminating() -> bool:
        return (await _status(dr.url("/ping")) or (0,))[0] == 204

    await wait_for(terminating, timeout=5)


async def test_manual_routing_serves_ping_only_through_a_user_router(proxy, tmp_path):
    dynamic = {
        "http": {
            "routers": {
                "health": {"rule": "Path(`/healthz`)", "service": "ping@internal", "entryPoints": ["web"]}
            }
        }
    }
    dr = await proxy(dynamic, static=_static(tmp_path, {"manualRouting": True}))
    assert await _status(dr.url("/healthz")) == (200, "OK")
    assert (await _status(dr.url("/ping", "traefik")) or (0,))[0] == 404


async def test_without_ping_a_router_to_ping_internal_is_left_out(proxy, tmp_path):
    dynamic = {"http": {"routers": {"health": {"rule": "Path(`/healthz`)", "service": "ping@internal"}}}}
    dr = await proxy(dynamic, static=_static(tmp_path, None))
    assert (await _status(dr.url("/healthz")) or (0,))[0] == 404
    assert (await _status(dr.url("/ping", "traefik")) or (0,))[0] == 404


# -- dockroute healthcheck ------------------------------------------------------------------------------


async def _healthcheck(dr: Dockroute, *flags: str) -> subprocess.CompletedProcess[str]:
    """The command with the proxy's own static file, the bound port given as a flag (the file says 0)."""
    args = [sys.executable, "-m", "dockroute", "healthcheck", "--config", str(dr.static_path), *flags]
    return await asyncio.to_thread(
        subprocess.run, args, capture_output=True, text=True, cwd=str(ROOT), timeout=30, check=False
    )


async def test_healthcheck_exit_codes(proxy, tmp_path):
    dr = await proxy(static=_static(tmp_path, {}, grace="6s"))
    port_flag = f"--entrypoints.traefik.address=127.0.0.1:{dr.ports['traefik']}"
    ok = await _healthcheck(dr, port_flag)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.strip() == f"OK: http://127.0.0.1:{dr.ports['traefik']}/ping"
    # the web entry point's port: the proxy answers there, but ping is not routed on web (404)
    down = await _healthcheck(dr, f"--entrypoints.traefik.address=127.0.0.1:{dr.ports['web']}")
    assert down.returncode == 1 and "Bad healthcheck status: 404" in down.stdout
    dr.terminate()

    async def unhealthy() -> bool:
        return await _status(dr.url("/ping", "traefik")) == (503, "Service Unavailable")

    await wait_for(unhealthy, timeout=5)
    bad = await _healthcheck(dr, port_flag)
    assert bad.returncode == 1 and bad.stdout.strip() == "Bad healthcheck status: 503 Service Unavailable"


async def test_healthcheck_without_ping_or_listener(tmp_path):
    cfg = tmp_path / "dockroute.yml"
    cfg.write_text("entryPoints:\n  traefik: {address: '127.0.0.1:1'}\n")
    base = [sys.executable, "-m", "dockroute", "healthcheck", "--config", str(cfg)]
    off = subprocess.run(base, capture_output=True, text=True, cwd=str(ROOT), timeout=30, check=False)
    assert off.returncode == 1 and "please enable `ping`" in off.stdout
    refused = subprocess.run([*base, "--ping"], capture_output=True, text=True, cwd=str(ROOT), timeout=30)
    assert refused.returncode == 1 and refused.stdout.startswith("Error calling healthcheck: ")
