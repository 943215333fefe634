"""Acceptance for ``providers.swarm``: dockroute deployed as a swarm service on a real single-node swarm.

``docker swarm init --advertise-addr 127.0.0.1`` (only when the engine is not a swarm yet; it leaves the
swarm afterwards only then), an attachable overlay network, dockroute from the offline-built image
``dockroute:local`` as a service with the engine's socket mounted, and two labelled busybox services of 3
and 2 replicas, each task answering with its own hostname (its container's short id). Asserted: both
routed, requests balanced over every task; a scale to 1 followed within ``refreshSeconds``; a removed
service's route gone (404).

dockroute's port is published with ``mode=host``: the ingress routing mesh refuses connections on this
machine (measured: ``--publish published=P,target=80`` gives "connection refused" on 127.0.0.1:P while
the task runs and routes; with ``mode=host`` it answers).

Marked ``serial``: swarm init adds the ingress and docker_gwbridge networks to the engine every other test
uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import aiohttp
import pytest

from tests.e2e import compose
from tests.integration import docker_env
from tests.polling import wait_for
from tests.unavailable import require_tools

pytestmark = [pytest.mark.integration, pytest.mark.serial]

REFRESH = 3.0  # providers.swarm.refreshSeconds for this test: the bound a scale must be followed within
REPLICAS = {"a": 3, "b": 2}


def docker(*args: str, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if check and done.returncode:
        raise RuntimeError(f"docker {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def swarm() -> Iterator[None]:
    """A swarm on the test engine; left afterwards only when this test made it."""
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}}")
    made = state != "active"
    if made:
        docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    try:
        yield
    finally:
        if made:
            docker("swarm", "leave", "--force", check=False)


class Stack:
    """The services and network one test made, all removed at the end."""

    def __init__(self) -> None:
        self.run = f"swt{uuid.uuid4().hex[:8]}"
        self.net = f"{self.run}-net"
        self.port = free_port()
        self.services: list[str] = []

    def name(self, short: str) -> str:
        return f"{self.run}-{short}"

    def create(self, short: str, *args: str) -> str:
        name = self.name(short)
        docker("service", "create", "--detach", "--quiet", "--no-resolve-image", "--name", name, *args)
        self.services.append(name)
        return name

    def backend(self, short: str, replicas: int) -> str:
        return self.create(
            short,
            "--replicas", str(replicas),
            "--network", self.net,
            "--stop-signal", "SIGKILL",  # busybox as PID 1 ignores SIGTERM: no 10 s grace per task
            "--label", f"dockroute.test.run={self.run}",
            "--label", f"traefik.http.routers.{short}.rule=Host(`{short}.{self.run}.test`)",
            "--label", f"traefik.http.services.{short}.loadbalancer.server.port=80",
            docker_env.IMAGE,
        )  # fmt: skip

    def dockroute(self) -> str:
        return self.create(
            "dockroute",
            "--network", self.net,
            "--mount", "type=bind,src=/var/run/docker.sock,dst=/var/run/docker.sock,readonly",
            "--publish", f"published={self.port},target=80,mode=host",
            "dockroute:local",
            "dockroute",
            f"--providers.swarm.refreshSeconds={REFRESH:g}",
            f"--providers.swarm.network={self.net}",
            # only this test's services (a swarm may hold others)
            f"--providers.swarm.constraints=Label(`dockroute.test.run`, `{self.run}`)",
            "--providers.providersThrottleDuration=100ms",
        )  # fmt: skip

    def task_hosts(self, short: str) -> set[str]:
        """The hostnames (container short ids) of the service's running tasks."""
        out = docker(
            "service", "ps", self.name(short), "--filter", "desired-state=running", "-q", "--no-trunc"
        )
        hosts = set()
        for tid in out.split():
            info = json.loads(docker("inspect", tid))[0]
            if info["Status"]["State"] == "running":
                hosts.add(info["Status"]["ContainerStatus"]["ContainerID"][:12])
        return hosts

    def remove(self) -> None:
        for name in reversed(self.services):
            docker("service", "rm", name, check=False)
        self.services.clear()

    def logs(self) -> str:
        """dockroute's log, from its task's container (one node: ``docker service logs`` showed nothing
        here for a task still in its health check's start period)."""
        service = f"label=com.docker.swarm.service.name={self.name('dockroute')}"
        out = []
        for cid in docker("ps", "-aq", "--filter", service, check=False).split():
            done = subprocess.run(["docker", "logs", cid], capture_output=True, text=True, timeout=60)
            out.append(done.stdout + done.stderr)
        return "".join(out)


async def get(stack: Stack, short: str) -> tuple[int, str] | None:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http,
            http.get(f"http://127.0.0.1:{stack.port}/", headers={"Host": f"{short}.{stack.run}.test"}) as r,
        ):
            return r.status, (await r.text()).strip()
    except (TimeoutError, aiohttp.ClientError):
        return None


async def answering(stack: Stack, short: str, n: int) -> set[str]:
    """The hostnames answering ``n`` requests (round robin: n ≥ 2 × tasks sees every task)."""
    seen = set()
    for _ in range(n):
        got = await get(stack, short)
        if got and got[0] == 200:
            seen.add(got[1])
    return seen


async def balanced_over(stack: Stack, short: str, hosts: set[str], timeout: float) -> float:
    """Seconds until requests to ``short`` are answered by exactly ``hosts``."""
    t0 = time.monotonic()

    async def exact() -> bool:
        return await answering(stack, short, 3 * len(hosts)) == hosts

    await wait_for(exact, timeout=timeout, interval=0.05)
    return time.monotonic() - t0


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    client = docker_env.engine_for_tests()
    require_tools("docker")
    compose.build_images()  # dockroute:local from this tree
    docker_env.ensure_image(client)
    with swarm():
        s = Stack()
        docker("network", "create", "--driver", "overlay", "--attachable", s.net)
        try:
            s.dockroute()
            for short, replicas in REPLICAS.items():
                s.backend(short, replicas)
            yield s
        except BaseException:
            print(s.logs())
            raise
        finally:
            s.remove()
            # the network goes once the engine has removed the services' tasks
            deadline = time.monotonic() + 60
            while docker("network", "rm", s.net, check=False) != s.net and time.monotonic() < deadline:
                time.sleep(0.5)


def test_swarm_services_are_routed_balanced_scaled_and_removed(stack: Stack) -> None:
    async def main() -> None:
        # both services routed, balanced over all their tasks (3 and 2)
        for short, replicas in REPLICAS.items():
            hosts = await wait_for(
                lambda short=short, replicas=replicas: (
                    (h := stack.task_hosts(short)) and len(h) == replicas and h
                ),
                timeout=120,
                interval=0.5,
            )
            await balanced_over(stack, short, hosts, timeout=60)

        # scale a to 1: followed within refreshSeconds (events make it sooner; the poll bounds it)
        docker("service", "scale", "--detach", f"{stack.name('a')}=1")
        t0 = time.monotonic()
        left = await wait_for(
            lambda: (h := stack.task_hosts("a")) and len(h) == 1 and h, timeout=60, interval=0.1
        )
        followed = time.monotonic() - t0
        followed += await balanced_over(stack, "a", left, timeout=REFRESH + 5)
        print(f"scale 3 -> 1 followed in {followed:.2f}s (refreshSeconds {REFRESH:g})")
        assert followed <= REFRESH + 1.0, (
            f"scale followed in {followed:.2f}s, over refreshSeconds {REFRESH:g}"
        )
        assert await answering(stack, "b", 6) == stack.task_hosts("b")  # b untouched

        # remove b: its route goes
        docker("service", "rm", stack.name("b"))
        stack.services.remove(stack.name("b"))
        t0 = time.monotonic()

        async def gone() -> bool:
            got = await get(stack, "b")
            return got is not None and got[0] == 404

        await wait_for(gone, timeout=REFRESH + 5, interval=0.05)
        print(f"removal followed in {time.monotonic() - t0:.2f}s")
        assert (await get(stack, "a")) is not None

    asyncio.run(main())
    log = stack.logs()
    assert "provider swarm: unix:///var/run/docker.sock, polling every 3s" in log
    assert f"routing a.{stack.run}.test → router a@swarm" in log
