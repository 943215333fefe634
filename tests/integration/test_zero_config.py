"""A safe zero-config default, through the real process and a real Docker engine: with no provider
configured, only containers that opt in are routed, and the log names the hostnames that became routed."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.integration import docker_env
from tests.integration.harness import wait_for

pytestmark = pytest.mark.integration


async def test_no_configuration_routes_only_containers_that_opt_in_and_logs_their_hosts(
    client, containers, proxy, tmp_path
):
    plain = containers(docker_env.unique("plain"))  # exposes port 80, no label at all
    opted = containers(docker_env.unique("opted"))
    host = f"{opted}.test"
    # Nothing but an entry point: no providers section (the harness adds only the throttle flag).
    dr = await proxy(static={"entryPoints": {"web": {"address": "127.0.0.1:0"}}})
    await asyncio.to_thread(docker_env.run, client, plain)
    labels = {"dockroute.enable": "true", f"dockroute.http.routers.{opted}.rule": f"Host(`{host}`)"}
    await asyncio.to_thread(docker_env.run, client, opted, labels)

    async with aiohttp.ClientSession() as s:

        async def status(host: str) -> tuple[int, str]:
            async with s.get(dr.url("/"), headers={"Host": host}) as r:
                return r.status, (await r.text()).strip()

        async def opted_served() -> bool:
            return await status(host) == (200, opted)

        await wait_for(opted_served, timeout=10)
        # the unlabelled one was seen (it started first) and left out: its default rule answers nothing
        await wait_for(lambda: f"container {plain} is not routed" in dr.log(), timeout=5)
        assert (await status(plain))[0] == 404
    log = dr.log()
    assert f"routing {host} → router {opted}@docker (container {opted}), entry points web" in log
    assert plain not in "".join(line for line in log.splitlines() if "routing" in line and "→" in line)
    assert "only containers with traefik.enable=true or dockroute.enable=true are routed" in log
