"""dockroute inside its own image (dockroute:local), as users run it, with the real engine: it finds its
own container and that container's networks, routes to apps on a network it shares, and reports an app on a
network it does not share as not routed, in ``/api/discovery`` and in one log line, with the exact fix; the
fix, run as written, routes the app without restarting dockroute.

Two ways of reaching the engine: the Docker socket mounted into dockroute's container, and the read-only
socket proxy stand-in over TCP (``--providers.docker.endpoint=tcp://<proxy>:2375``), the socket never
mounted into dockroute.

The networks are named so that the one dockroute does not share sorts first: an app on both is routed
through the shared one because dockroute knows which one it shares, not by the order of the names.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import docker
import pytest

from tests.e2e import compose
from tests.e2e.client import get
from tests.integration.pebble_env import free_port
from tests.polling import wait_for

RUN = "dockroute-e2e.run"  # the label tying an app to one test's dockroute (its constraints)
SOCKET = "/var/run/docker.sock"


@dataclass
class Scene:
    """One test's networks and containers, all named after ``run`` and removed afterwards."""

    client: Any
    run: str
    front: str = ""  # dockroute's network
    back: str = ""  # a network dockroute is not on
    dockroute: Any = None
    http: int = 0
    api: int = 0
    endpoint: str = ""  # how dockroute reaches the engine
    volumes: dict[str, Any] = field(default_factory=dict)  # dockroute's (the socket, or none)
    containers: list[Any] = field(default_factory=list)
    networks: list[Any] = field(default_factory=list)

    def app(
        self, name: str, networks: list[str], labels: dict[str, str] | None = None, port: int = 80
    ) -> Any:
        """A whoami stand-in on ``networks`` from its start (connected before it starts: dockroute never
        sees it on fewer networks), or on the host's network (``["host"]``), answering on ``port``, routed
        for ``Host(<name>.test)`` by dockroute's labels."""
        full = f"{self.run}-{name}"
        net = {"network_mode": "host"} if networks == ["host"] else {"network": networks[0]}
        c = self.client.containers.create(
            compose.STANDIN,
            ["whoami", str(port)],
            name=full,
            labels={
                RUN: self.run,
                "traefik.enable": "true",
                f"traefik.http.routers.{full}.rule": f"Host(`{full}.test`)",
                f"traefik.http.services.{full}.loadbalancer.server.port": str(port),
                **(labels or {}),
            },
            **net,
        )
        self.containers.append(c)
        for other in networks[1:]:
            self.client.networks.get(other).connect(c)
        c.start()
        c.reload()
        return c

    def logs(self) -> str:
        return self.dockroute.logs().decode(errors="replace")

    def start_dockroute(self, endpoint: str, volumes: dict[str, Any], **options: Any) -> Any:
        """dockroute:local on ``front``, its ports 80 and 8080 published on free local ports, seeing only
        this scene's apps (its constraints); ``options`` go to the engine (``extra_hosts``)."""
        self.http, self.api = free_port(), free_port()
        self.dockroute = self.client.containers.run(
            compose.IMAGE,
            [
                f"--providers.docker.endpoint={endpoint}",
                "--providers.docker.exposedByDefault=false",
                f"--providers.docker.constraints=Label(`{RUN}`, `{self.run}`)",
                "--entryPoints.web.address=:80",
                "--api.insecure=true",
                "--log.level=INFO",
            ],
            name=f"{self.run}-dockroute{len(self.containers)}",
            network=self.front,
            volumes=volumes,
            ports={"80/tcp": ("127.0.0.1", self.http), "8080/tcp": ("127.0.0.1", self.api)},
            detach=True,
            **options,
        )
        self.containers.append(self.dockroute)
        return self.dockroute


@contextlib.contextmanager
def scene(client: Any, via_proxy: bool, **options: Any) -> Iterator[Scene]:
    """dockroute:local on its own network ``front``, reaching the engine through the mounted socket or
    through the socket proxy stand-in (also on ``front``); a second network ``back``. Everything is removed
    afterwards, whatever the test did; dockroute's log is printed when the test fails."""
    s = Scene(client, f"e2e-dr{uuid.uuid4().hex[:10]}")
    s.front, s.back = f"{s.run}-z-front", f"{s.run}-a-back"
    try:
        s.networks = [client.networks.create(n, driver="bridge") for n in (s.front, s.back)]
        endpoint, volumes = f"unix://{SOCKET}", {SOCKET: {"bind": SOCKET, "mode": "ro"}}
        if via_proxy:
            proxy = client.containers.run(
                compose.STANDIN,
                ["socket-proxy", "2375"],
                name=f"{s.run}-socket-proxy",
                network=s.front,
                # what dockroute reads, besides the defaults (events, ping, version), as with tecnativa's
                environment={"CONTAINERS": "1", "NETWORKS": "1"},
                volumes=volumes,
                detach=True,
            )
            s.containers.append(proxy)
            endpoint, volumes = f"tcp://{proxy.name}:2375", {}
        s.endpoint, s.volumes = endpoint, volumes
        s.start_dockroute(endpoint, volumes, **options)
        yield s
    except BaseException:
        if s.dockroute is not None:
            print(s.logs())
        raise
    finally:
        for c in reversed(s.containers):
            with contextlib.suppress(Exception):
                c.remove(force=True, v=True)
        for n in s.networks:
            with contextlib.suppress(Exception):
                n.remove()


async def record(s: Scene, container: Any) -> dict[str, Any] | None:
    """The container's record in dockroute's ``/api/discovery``, None until it is there."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.get(f"http://127.0.0.1:{s.api}/api/discovery") as r,
        ):
            doc = await r.json() if r.status == 200 else {}
    except (TimeoutError, aiohttp.ClientError, ValueError):
        return None
    return next((c for c in doc.get("containers", ()) if c["name"] == container.name), None)


async def answered_by(s: Scene, app: Any, timeout: float = 60) -> str:
    """The body of a 200 from ``app`` through dockroute (its whoami names its hostname: the short id, or the
    host's on the host's network)."""
    hostname = re.escape(app.attrs["Config"]["Hostname"])

    async def routed() -> str | None:
        got = await get(s.http, f"{app.name}.test")
        if got and got[0] == 200 and re.search(rf"^Hostname: {hostname}$", got[1], re.M):
            return got[1]
        return None

    return await wait_for(routed, timeout=timeout, interval=0.1)


async def reported(s: Scene, app: Any, reason: str, timeout: float = 30) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        rec = await record(s, app)
        return rec if rec and rec["reason"] == reason else None

    return await wait_for(found, timeout=timeout, interval=0.1)


def log_lines(s: Scene, app: Any) -> list[str]:
    """dockroute's log lines saying ``app`` is not routed."""
    return [line for line in s.logs().splitlines() if f"container {app.name} is not routed" in line]


@pytest.mark.parametrize("via_proxy", [False, True], ids=["socket", "socket-proxy"])
async def test_foreign_network_is_reported_with_the_fix_and_the_fix_routes_it(engine, via_proxy: bool):
    with scene(engine, via_proxy) as s:
        shared = s.app("shared", [s.front])
        foreign = s.app("foreign", [s.back])
        both = s.app("both", [s.back, s.front])  # no traefik.docker.network: dockroute picks the shared one
        pinned = s.app("pinned", [s.back, s.front], {"traefik.docker.network": s.back})

        if via_proxy:  # the engine is reached only through the proxy
            assert all(m["Destination"] != SOCKET for m in s.dockroute.attrs["Mounts"])

        # An app on dockroute's network: routed, answered by that app.
        await answered_by(s, shared)

        # An app on both networks, no label: routed through the one dockroute shares (the whoami sees the
        # connection come from dockroute's address on it).
        body = await answered_by(s, both)
        s.dockroute.reload()
        own_front_ip = s.dockroute.attrs["NetworkSettings"]["Networks"][s.front]["IPAddress"]
        assert re.search(rf"^RemoteAddr: {re.escape(own_front_ip)}$", body, re.M), body
        rec = await record(s, both)
        assert rec is not None and rec["routed"] and rec["reason"] == "", rec

        # An app only on the other network: not routed, with the exact command naming dockroute's container.
        rec = await reported(s, foreign, "unreachable-network")
        connect = f"docker network connect {s.back} {s.dockroute.name}"
        assert rec["routed"] is False and rec["fix"] == connect, rec
        fix = rec["fix"]
        assert (
            f"network {s.back} is not one of dockroute's container {s.dockroute.name}'s networks"
            in (rec["detail"])
        )
        t0 = time.monotonic()
        got = await get(s.http, f"{foreign.name}.test")
        assert got is not None and got[0] == 502, got  # at once, not after the dial timeout (30 s)
        assert time.monotonic() - t0 < 10

        # An app pinned by its label to a network dockroute is not on: the fix is the label of the shared one.
        rec = await reported(s, pinned, "unreachable-network")
        assert rec["routed"] is False, rec
        assert rec["fix"] == f"set the label traefik.docker.network={s.front} on {pinned.name}", rec

        # One log line each, saying the same, the fix included.
        (line,) = await wait_for(lambda: log_lines(s, foreign), timeout=10)
        assert "WARNING" in line and f"{s.back} is not one of dockroute's container" in line, line
        assert line.endswith(f"; fix: {connect}"), line
        (line,) = log_lines(s, pinned)
        assert line.endswith(f"; fix: set the label traefik.docker.network={s.front} on {pinned.name}"), line

        # The fix, run exactly as written: the app is routed, and dockroute was not restarted.
        started = s.dockroute.attrs["State"]["StartedAt"]
        done = subprocess.run(shlex.split(fix), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (fix, done.stderr)
        t0 = time.monotonic()
        await answered_by(s, foreign, timeout=30)
        print(f"routed {time.monotonic() - t0:.2f} s after {fix!r}")
        rec = await record(s, foreign)
        assert rec is not None and rec["routed"] and rec["reason"] == "" and rec["fix"] == "", rec
        # dockroute is on the pinned app's network now: that one is routed too.
        await answered_by(s, pinned, timeout=30)
        s.dockroute.reload()
        assert s.dockroute.status == "running"
        assert s.dockroute.attrs["State"]["StartedAt"] == started
        assert s.dockroute.attrs["RestartCount"] == 0
        assert len(log_lines(s, foreign)) == 1

        # Undone (docker network disconnect, an event too): reported again, its requests answered 502 at once.
        s.client.networks.get(s.back).disconnect(s.dockroute)
        rec = await reported(s, foreign, "unreachable-network")
        assert rec["routed"] is False and rec["fix"] == connect, rec
        got = await wait_for(lambda: get(s.http, f"{foreign.name}.test"), timeout=10)
        assert got[0] == 502, got


async def test_an_app_on_the_hosts_network_is_reached_at_host_docker_internal(engine):
    """Traefik reaches a ``network_mode: host`` container at host.docker.internal from a container (its
    127.0.0.1 is the container's own loopback: proxying there answers from dockroute itself). Without the
    name dockroute says so, with the fix; recreated as the fix says, it routes the app."""
    with scene(engine, via_proxy=False) as s:
        port = free_port()
        app = s.app("onhost", ["host"], port=port)
        rec = await reported(s, app, "unreachable-network")
        assert rec["routed"] is False, rec
        assert f"network_mode host: dockroute runs in container {s.dockroute.name}" in rec["detail"], rec
        assert rec["fix"].startswith(
            f"recreate {s.dockroute.name} with --add-host host.docker.internal:host-gateway"
        ), rec
        (line,) = await wait_for(lambda: log_lines(s, app), timeout=10)
        assert line.endswith(f"; fix: {rec['fix']}"), line
        got = await get(s.http, f"{app.name}.test")
        assert got is not None and got[0] == 404, got  # not proxied to dockroute's own loopback

        anonymous = [m["Name"] for m in s.dockroute.attrs["Mounts"] if m["Type"] == "volume"]
        assert anonymous, s.dockroute.attrs["Mounts"]  # the image's /data
        s.dockroute.remove(force=True, v=True)  # and its anonymous /data volume
        for name in anonymous:
            with pytest.raises(docker.errors.NotFound):
                s.client.volumes.get(name)
        s.start_dockroute(s.endpoint, s.volumes, extra_hosts={"host.docker.internal": "host-gateway"})
        body = await answered_by(s, app)
        s.dockroute.reload()
        own_ip = s.dockroute.attrs["NetworkSettings"]["Networks"][s.front]["IPAddress"]
        assert re.search(rf"^RemoteAddr: {re.escape(own_ip)}$", body, re.M), body
        rec = await record(s, app)
        assert rec is not None and rec["routed"] and rec["reason"] == "", rec
