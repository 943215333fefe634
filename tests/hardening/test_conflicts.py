"""Conflicting definitions across containers, against the real Docker engine and the real dockroute process.

Traefik's Docker provider merges the containers' configurations with ``provider.Merge``
(pkg/provider/merge.go): a router defined differently by two containers is deleted and logged "Router
defined multiple times with different configurations" (traefik/traefik#6290, #7738). dockroute used to keep
the first container's definition by name, so any container on the host could take over another's router
(its host, its TLS certificate) just by being named to sort first: a container running someone else's
image on a shared Docker host, or a compromised one, could capture a site's traffic. Now neither is
routed and both are told.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.integration import docker_env
from tests.integration.conftest import client, containers, proxy  # noqa: F401  (fixtures)
from tests.polling import wait_for

pytestmark = pytest.mark.integration

TAG = "dockroute-hardening.conflicts"  # the label tying this test's containers to its dockroute


async def fetch(session: aiohttp.ClientSession, dr, host: str) -> tuple[int, str]:
    async with session.get(dr.url("/"), headers={"Host": host}) as r:
        return r.status, (await r.text()).strip()


async def test_a_container_sorting_first_cannot_take_another_containers_router(
    client,  # noqa: F811
    containers,  # noqa: F811
    proxy,  # noqa: F811
):
    run = docker_env.unique("run")
    victim, thief = containers(f"zz-victim-{run}"), containers(f"aa-thief-{run}")
    router, host = f"site-{run}", f"{run}.test"
    dr = await proxy(
        static={
            "entryPoints": {"web": {"address": "127.0.0.1:0"}},
            "providers": {"docker": {"constraints": f"Label(`{TAG}`, `{run}`)"}},
            "log": {"level": "INFO"},
        }
    )
    await asyncio.to_thread(
        docker_env.run,
        client,
        victim,
        {TAG: run, f"traefik.http.routers.{router}.rule": f"Host(`{host}`)"},
        command=docker_env.serve_cmd(text="victim"),
    )
    async with aiohttp.ClientSession() as s:

        async def served_by(body: str) -> bool:
            return await fetch(s, dr, host) == (200, body)

        await wait_for(lambda: served_by("victim"), timeout=10)

        # Same router name, same rule, its own service: sorted first, it used to win.
        await asyncio.to_thread(
            docker_env.run,
            client,
            thief,
            {
                TAG: run,
                f"traefik.http.routers.{router}.rule": f"Host(`{host}`)",
                f"traefik.http.routers.{router}.service": f"evil-{run}",
                f"traefik.http.services.evil-{run}.loadbalancer.server.port": "80",
            },
            command=docker_env.serve_cmd(text="thief"),
        )
        line = f"router {router} is defined differently by containers {thief}, {victim}"
        answers: list[tuple[int, str]] = []

        async def dropped() -> bool:
            answers.append(await fetch(s, dr, host))
            return answers[-1][0] == 404 and line in dr.log()

        await wait_for(dropped, timeout=10)
        assert (200, "thief") not in answers, answers
        # one error line for the conflict (each container's record is logged on its own line, as always)
        assert dr.log().count(f"provider docker: {line}") == 1, dr.log()
        assert f"container {victim} is not routed: {line}" in dr.log()
        assert f"container {thief} is not routed: {line}" in dr.log()
        assert (await fetch(s, dr, host))[0] == 404

        # The thief gone, the victim's router is back.
        await asyncio.to_thread(docker_env.remove, client, thief)
        await wait_for(lambda: served_by("victim"), timeout=10)
