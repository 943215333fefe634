"""Docker discovery against a real engine: labelled containers become routes through the real process."""

from __future__ import annotations

import asyncio
import collections
import os
import re
import signal
import subprocess
import time

import aiohttp
import pytest

from tests.integration import docker_env
from tests.integration.harness import wait_for

pytestmark = pytest.mark.integration


def docker_static(tmp_path, **docker_opts) -> dict:
    return {
        "entryPoints": {"web": {"address": "127.0.0.1:0"}},
        "providers": {"docker": docker_opts or {}},
        "log": {"level": "DEBUG"},
    }


async def fetch(session: aiohttp.ClientSession, dr, host: str) -> tuple[int, str]:
    async with session.get(dr.url("/"), headers={"Host": host}) as r:
        return r.status, (await r.text()).strip()


async def quick(session: aiohttp.ClientSession, dr, host: str) -> tuple[int, str] | None:
    """``fetch`` for polls: a request that reached a container just killed may hang until the kernel gives
    up on its address; a short timeout keeps such a request from stalling the poll's clock."""
    try:
        async with asyncio.timeout(0.3):
            return await fetch(session, dr, host)
    except TimeoutError:
        return None


@pytest.mark.timing  # bounds on time and on bursts of events: run alone
async def test_labelled_container_is_routed_within_a_second_and_gone_after_stop(
    client, containers, proxy, tmp_path
):
    name = containers(docker_env.unique("web1"))
    host = f"{name}.test"
    dr = await proxy(static=docker_static(tmp_path))
    async with aiohttp.ClientSession() as s:
        assert (await fetch(s, dr, host))[0] == 404
        c = await asyncio.to_thread(
            docker_env.run, client, name, {f"traefik.http.routers.{name}.rule": f"Host(`{host}`)"}
        )
        t_run = time.monotonic()

        async def served() -> bool:
            return await fetch(s, dr, host) == (200, name)

        await wait_for(served, timeout=5)
        assert time.monotonic() - t_run < 1.0, f"routed after {time.monotonic() - t_run:.2f}s"

        await asyncio.to_thread(c.stop, timeout=1)
        t_stop = time.monotonic()

        async def gone() -> bool:
            return (await quick(s, dr, host) or (0,))[0] == 404

        await wait_for(gone, timeout=5)
        assert time.monotonic() - t_stop < 1.0, f"route gone after {time.monotonic() - t_stop:.2f}s"


async def test_exposed_by_default_and_enable_false(client, containers, proxy, tmp_path):
    docker_env.remove(client, "plain")
    plain = containers("plain")
    off = containers(docker_env.unique("off"))
    dr = await proxy(static=docker_static(tmp_path))
    await asyncio.to_thread(docker_env.run, client, plain)
    await asyncio.to_thread(docker_env.run, client, off, {"traefik.enable": "false"})
    async with aiohttp.ClientSession() as s:

        async def plain_served() -> bool:
            return await fetch(s, dr, "plain") == (200, "plain")

        await wait_for(plain_served, timeout=5)
        await wait_for(lambda: re.search(rf"container {off} is not routed", dr.log()), timeout=5)
        assert (await fetch(s, dr, off))[0] == 404


async def test_compose_service_is_one_balanced_service(client, containers, proxy, tmp_path):
    project = docker_env.unique("proj")
    names = [containers(f"{project}-web-{i}") for i in (1, 2, 3)]
    labels = {"com.docker.compose.project": project, "com.docker.compose.service": "web"}
    dr = await proxy(static=docker_static(tmp_path))
    cs = await asyncio.gather(*(asyncio.to_thread(docker_env.run, client, n, labels) for n in names))
    host = f"web-{project}"  # Traefik's implicit name: normalize(service + "_" + project)
    async with aiohttp.ClientSession() as s:

        async def all_three() -> bool:
            seen = {await fetch(s, dr, host) for _ in range(9)}
            return seen == {(200, n) for n in names}

        await wait_for(all_three, timeout=10)
        counts = collections.Counter([(await fetch(s, dr, host))[1] for _ in range(30)])
        assert all(counts[n] >= 7 for n in names), counts

        await asyncio.to_thread(cs[0].stop, timeout=1)

        async def two_left() -> bool:
            seen = {await quick(s, dr, host) for _ in range(6)}
            return seen == {(200, names[1]), (200, names[2])}

        await wait_for(two_left, timeout=5)
        results = [await fetch(s, dr, host) for _ in range(30)]
        assert all(st == 200 and body in names[1:] for st, body in results), results


async def test_server_port_label_and_malformed_labels_isolated(client, containers, proxy, tmp_path):
    bad = containers(docker_env.unique("bad"))
    good = containers(docker_env.unique("p8080"))
    dr = await proxy(static=docker_static(tmp_path))
    await asyncio.to_thread(
        docker_env.run,
        client,
        bad,
        {
            f"traefik.http.routers.{bad}.rule": f"Host(`{bad}.test`)",
            f"traefik.http.services.{bad}.loadbalancer.server.port": "eighty",
        },
    )
    await asyncio.to_thread(
        docker_env.run,
        client,
        good,
        {
            f"traefik.http.routers.{good}.rule": f"Host(`{good}.test`)",
            f"traefik.http.services.{good}.loadbalancer.server.port": "8080",
        },
        command=docker_env.serve_cmd(8080, "on-8080"),
    )
    async with aiohttp.ClientSession() as s:

        async def good_served() -> bool:
            return await fetch(s, dr, f"{good}.test") == (200, "on-8080")

        await wait_for(good_served, timeout=5)
        assert (await fetch(s, dr, f"{bad}.test"))[0] == 404
    await wait_for(lambda: re.search(rf"container {bad} is not routed: .*eighty", dr.log()), timeout=3)


@pytest.mark.timing  # bounds on time and on bursts of events: run alone
async def test_burst_of_25_containers_is_routed_with_few_rebuilds(client, containers, proxy, tmp_path):
    prefix = docker_env.unique("burst")
    names = [containers(f"{prefix}-{i:02d}") for i in range(25)]
    dr = await proxy(static=docker_static(tmp_path))
    t0 = time.monotonic()
    await asyncio.gather(
        *(
            asyncio.to_thread(
                docker_env.run, client, n, {f"traefik.http.routers.{n}.rule": f"Host(`{n}.test`)"}
            )
            for n in names
        )
    )
    async with aiohttp.ClientSession() as s:

        async def all_routed() -> bool:
            results = await asyncio.gather(*(fetch(s, dr, f"{n}.test") for n in names))
            return all(r == (200, n) for r, n in zip(results, names, strict=True))

        await wait_for(all_routed, timeout=10)
    assert time.monotonic() - t0 < 10
    stats = re.findall(r"rebuild (\d+), (\d+) events so far", dr.log())
    rebuilds, events = int(stats[-1][0]), int(stats[-1][1])
    assert events >= 25
    assert rebuilds * 3 <= events, (rebuilds, events)


@pytest.mark.serial
async def test_engine_restart_keeps_proxy_and_restores_routes(client, containers, proxy, tmp_path):
    """Stops and restarts dockerd itself: run alone (``-m serial``), never beside other Docker tests, and
    only where that is allowed (CI sets ALLOW_DOCKERD_RESTART_IN_TESTS=1): on a workstation it would stop
    every container without a restart policy."""
    if os.environ.get("ALLOW_DOCKERD_RESTART_IN_TESTS") != "1":
        pytest.skip("set ALLOW_DOCKERD_RESTART_IN_TESTS=1 to let this test restart dockerd")
    pid = int(subprocess.check_output(["pidof", "dockerd"]).split()[0])
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        cmdline = fh.read().split(b"\0")[:-1]
    name = containers(docker_env.unique("always"))
    host = f"{name}.test"
    dr = await proxy(static=docker_static(tmp_path))
    await asyncio.to_thread(
        docker_env.run,
        client,
        name,
        {f"traefik.http.routers.{name}.rule": f"Host(`{host}`)"},
        restart_policy={"Name": "always"},
    )
    async with aiohttp.ClientSession() as s:

        async def served() -> bool:
            return await fetch(s, dr, host) == (200, name)

        await wait_for(served, timeout=5)
        os.kill(pid, signal.SIGTERM)
        await wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout=30)
        await wait_for(lambda: "cannot reach" in dr.log() or "event stream ended" in dr.log(), timeout=10)
        assert dr.proc.poll() is None  # the proxy keeps running without its engine
        with open(tmp_path / "dockerd.log", "ab") as log:
            subprocess.Popen(cmdline, stdout=log, stderr=log, start_new_session=True)
        await wait_for(lambda: docker_env.engine() is not None, timeout=30)
        t_up = time.monotonic()
        await wait_for(served, timeout=15)
        assert time.monotonic() - t_up < 10
    assert dr.proc.poll() is None


async def test_container_gets_traffic_only_once_healthy(client, containers, proxy, tmp_path):
    name = containers(docker_env.unique("hc"))
    host = f"{name}.test"
    dr = await proxy(static=docker_static(tmp_path))
    c = await asyncio.to_thread(
        docker_env.run,
        client,
        name,
        {f"traefik.http.routers.{name}.rule": f"Host(`{host}`)"},
        healthcheck={
            "test": ["CMD", "/bin/busybox", "test", "-f", "/tmp/ready"],
            "interval": 100_000_000,  # 100 ms, in nanoseconds
            "timeout": 1_000_000_000,
            "retries": 1,
            # Failures inside the start period keep it "starting" (not "unhealthy") until the first
            # success, so the test sees that state however late the provider lists it.
            "start_period": 60_000_000_000,
        },
    )
    async with aiohttp.ClientSession() as s:
        await wait_for(
            lambda: re.search(rf"container {name} is not routed: health: starting", dr.log()), timeout=5
        )
        assert (await fetch(s, dr, host))[0] == 404
        await asyncio.to_thread(c.exec_run, ["/bin/busybox", "touch", "/tmp/ready"])

        async def served() -> bool:
            return await fetch(s, dr, host) == (200, name)

        await wait_for(served, timeout=5)  # the health_status event brings it in
        await asyncio.to_thread(c.exec_run, ["/bin/busybox", "rm", "/tmp/ready"])

        async def gone() -> bool:
            return (await quick(s, dr, host) or (0,))[0] == 404

        await wait_for(gone, timeout=5)  # unhealthy: out again


async def test_gos_boolean_words_in_labels_route(client, containers, proxy, tmp_path):
    """``traefik.enable=1`` (with exposedByDefault false) and ``loadbalancer.passhostheader=T`` route, as in
    Traefik (Go's strconv.ParseBool); ``passhostheader=F`` routes too and sends the backend's own address.
    The busybox backend's CGI echoes the Host header it received."""
    keep = containers(docker_env.unique("keep"))
    drop = containers(docker_env.unique("drop"))
    hidden = containers(docker_env.unique("hidden"))
    dr = await proxy(static=docker_static(tmp_path, exposedByDefault=False))

    def labels(name: str, enable: str, pass_host: str) -> dict[str, str]:
        return {
            "traefik.enable": enable,
            f"traefik.http.routers.{name}.rule": f"Host(`{name}.test`)",
            f"traefik.http.services.{name}.loadbalancer.passhostheader": pass_host,
        }

    run = docker_env.run
    await asyncio.to_thread(run, client, keep, labels(keep, "1", "T"), command=docker_env.host_echo_cmd())
    c_drop = await asyncio.to_thread(
        run, client, drop, labels(drop, "True", "F"), command=docker_env.host_echo_cmd()
    )
    await asyncio.to_thread(
        run, client, hidden, {f"traefik.http.routers.{hidden}.rule": f"Host(`{hidden}.test`)"}
    )
    await asyncio.to_thread(c_drop.reload)
    drop_ip = c_drop.attrs["NetworkSettings"]["IPAddress"]
    async with aiohttp.ClientSession() as s:

        async def host_seen(name: str) -> tuple[int, str]:
            async with s.get(dr.url("/cgi-bin/host"), headers={"Host": f"{name}.test"}) as r:
                return r.status, (await r.text()).strip()

        async def both_routed() -> bool:
            return (await host_seen(keep))[0] == 200 and (await host_seen(drop))[0] == 200

        await wait_for(both_routed, timeout=10)  # the provider throttle (2 s) plus container start
        assert await host_seen(keep) == (200, f"host={keep}.test")  # passhostheader=T: the client's Host
        status, body = await host_seen(drop)  # passhostheader=F: the backend's address
        assert status == 200 and body.startswith(f"host={drop_ip}"), body
        await wait_for(
            lambda: re.search(rf"container {hidden} is not routed: not enabled", dr.log()), timeout=5
        )
        assert (await fetch(s, dr, f"{hidden}.test"))[0] == 404
    assert not re.search(rf"container ({keep}|{drop}) is not routed", dr.log())
