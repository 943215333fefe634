"""Discovery against a real engine: dockroute itself runs in a container (as it is deployed), a backend
sits on a network that container is not on; /api/discovery names the reason and the exact fix, and a
request to its router is answered 502 at once instead of waiting out the dial timeout."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.integration import docker_env
from tests.integration.harness import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DIAL_TIMEOUT = 30.0  # serversTransport.forwardingTimeouts.dialTimeout's default (Traefik's)


def _mounts(cfg_dir: Path) -> dict[str, dict[str, str]]:
    """Run this very interpreter and checkout inside a container of the busybox test image: the host's
    /usr (shared libraries), the Python prefix, the repository and the config, all read-only; the engine's
    socket so that dockroute watches the engine it runs under."""
    vols = {
        "/usr": {"bind": "/usr", "mode": "ro"},
        "/usr/lib": {"bind": "/lib", "mode": "ro"},
        str(ROOT): {"bind": str(ROOT), "mode": "ro"},
        str(cfg_dir): {"bind": str(cfg_dir), "mode": "ro"},
        str(cfg_dir / "out"): {"bind": str(cfg_dir / "out"), "mode": "rw"},
        "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
    }
    if os.path.isdir("/usr/lib64"):
        vols["/usr/lib64"] = {"bind": "/lib64", "mode": "ro"}
    for prefix in {sys.base_prefix, sys.prefix}:
        if not prefix.startswith("/usr"):
            vols[prefix] = {"bind": prefix, "mode": "ro"}
    return vols


class InContainer:
    """dockroute in a container on ``network``: its web entry point on :80, the API on :8080."""

    def __init__(self, client, name: str, network: str, tmp: Path, constraint: str) -> None:
        self.client, self.name = client, name
        static = {
            "entryPoints": {"web": {"address": ":80"}},
            "providers": {"docker": {"constraints": f"Label(`test.tag`, `{constraint}`)"}},
            "api": {"insecure": True},
            "log": {"level": "DEBUG"},
            "accessLog": {"filePath": str(tmp / "out" / "access.log")},
        }
        (tmp / "out").mkdir()
        self.access_log = tmp / "out" / "access.log"
        (tmp / "dockroute.yml").write_text(yaml.safe_dump(static))
        self.container = client.containers.run(
            docker_env.IMAGE,
            [
                sys.executable,
                "-m",
                "dockroute",
                "--config",
                str(tmp / "dockroute.yml"),
                "--providers.providersThrottleDuration=0",
            ],
            name=name,
            hostname=name,
            network=network,
            volumes=_mounts(tmp),
            environment={"PYTHONPATH": str(ROOT)},
            working_dir="/tmp",
            detach=True,
            stop_signal="SIGKILL",
        )
        self.ip = ""

    def log(self) -> str:
        return self.container.logs().decode(errors="replace")

    async def ready(self) -> None:
        def up() -> bool:
            self.container.reload()
            if self.container.status == "exited":
                raise AssertionError(f"dockroute's container exited:\n{self.log()}")
            nets = self.container.attrs["NetworkSettings"]["Networks"]
            self.ip = next((n["IPAddress"] for n in nets.values() if n.get("IPAddress")), "")
            return bool(self.ip) and "configuration applied" in self.log()

        await wait_for(lambda: asyncio.to_thread(up), timeout=30)

    def url(self, path: str, port: int = 80) -> str:
        return f"http://{self.ip}:{port}{path}"


@pytest.fixture
def networks(client):
    made = []

    def make(name: str) -> str:
        client.networks.create(name, driver="bridge")
        made.append(name)
        return name

    yield make
    for name in made:
        try:
            for c in client.networks.get(name).containers:
                c.remove(force=True)
        except Exception:
            pass
        try:
            client.networks.get(name).remove()
        except Exception:
            pass


async def _discovery(session: aiohttp.ClientSession, dr: InContainer) -> dict[str, dict]:
    try:
        async with session.get(dr.url("/api/discovery", 8080)) as r:
            if r.status != 200:
                return {}
            body = await r.json()
    except (aiohttp.ClientError, json.JSONDecodeError):
        return {}
    return {c["name"]: c for c in body.get("containers", [])}


async def _get(session: aiohttp.ClientSession, dr: InContainer, host: str) -> tuple[int, float]:
    t0 = time.monotonic()
    async with session.get(dr.url("/"), headers={"Host": host}) as r:
        await r.read()
        return r.status, time.monotonic() - t0


async def test_a_container_on_a_network_dockroute_is_not_on_is_reported_and_fails_fast(
    client, containers, networks, tmp_path
):
    tag = docker_env.unique("disc")
    front, back = networks(f"{tag}-front"), networks(f"{tag}-back")
    labels = {"test.tag": tag}
    near, far = containers(f"{tag}-near"), containers(f"{tag}-far")
    dr = InContainer(client, containers(f"{tag}-proxy"), front, tmp_path, tag)
    await asyncio.to_thread(
        docker_env.run,
        client,
        near,
        {**labels, "traefik.http.routers.near.rule": "Host(`near.test`)"},
        network=front,
    )
    await asyncio.to_thread(
        docker_env.run,
        client,
        far,
        {**labels, "traefik.http.routers.far.rule": "Host(`far.test`)"},
        network=back,
    )
    await dr.ready()
    timeout = aiohttp.ClientTimeout(total=DIAL_TIMEOUT + 5)
    async with aiohttp.ClientSession(timeout=timeout) as s:

        async def reported() -> dict | None:
            found = await _discovery(s, dr)
            rec = found.get(far)
            return rec if rec and rec["reason"] and found.get(near, {}).get("routed") else None

        rec = await wait_for(reported, timeout=15)
        assert rec["reason"] == "unreachable-network" and rec["routed"] is False
        assert rec["fix"] == f"docker network connect {back} {dr.name}"
        assert f"network {back}" in rec["detail"]
        assert rec["routers"] == ["far@docker"] and rec["networks"] == [back]

        assert (await _get(s, dr, "near.test"))[0] == 200
        status, elapsed = await _get(s, dr, "far.test")
        # Without the verdict the dial goes into a network Docker isolates: its packets are dropped and
        # the request waits out the dial timeout (measured: a connect from the proxy's container hangs).
        assert status == 502
        assert elapsed < 1.0, elapsed
        line = f"container {far} is not routed: unreachable: network {back}"
        assert dr.log().count(line) == 1, dr.log()
        assert f"fix: docker network connect {back} {dr.name}" in dr.log()

        def access_502() -> list[str]:
            text = dr.access_log.read_text() if dr.access_log.exists() else ""
            return [ln for ln in text.splitlines() if '"GET / HTTP/1.1" 502' in ln]

        (access,) = await wait_for(access_502, timeout=5)
        assert f"unreachable: network {back}" in access, access

        # the fix, applied: the next rebuild sees dockroute's container on the network, and it is routed
        await asyncio.to_thread(client.networks.get(back).connect, dr.name)

        async def routed() -> bool:
            return (await _get(s, dr, "far.test"))[0] == 200

        await wait_for(routed, timeout=15)
        assert (await _discovery(s, dr))[far]["routed"] is True
        assert dr.log().count(line) == 1  # said once, not again on the later events


def _default_interface() -> str | None:
    try:
        with open("/proc/net/route") as fh:
            for line in fh.readlines()[1:]:
                fields = line.split()
                if fields[1] == "00000000":
                    return fields[0]
    except OSError:
        pass
    return None


async def test_on_the_host_a_macvlan_network_is_unreachable_and_a_bridge_is_not(
    client, containers, proxy, tmp_path
):
    """dockroute as a process on the engine's host: its own container is not found, so it judges by
    network driver. A macvlan child cannot be reached from its parent's host; an internal bridge can."""
    parent = _default_interface()
    if parent is None:
        pytest.skip("no default route interface to hang a macvlan network on")
    tag = docker_env.unique("host")
    subnet = f"10.{200 + int(tag[-2:], 16) % 50}.{int(tag[-4:-2], 16)}.0/24"
    mv = client.networks.create(f"{tag}-mv", driver="macvlan", options={"parent": parent}, ipam=_ipam(subnet))
    internal = client.networks.create(f"{tag}-int", driver="bridge", internal=True)
    far, inside = containers(f"{tag}-far"), containers(f"{tag}-inside")
    try:
        # Docker maps no ports on internal or macvlan networks: the list call shows none (nor does
        # inspect's NetworkSettings.Ports, which Traefik reads), so the port is a label there, as in Traefik
        labels = {"test.tag": tag}
        port = "traefik.http.services.{}.loadbalancer.server.port"
        await asyncio.to_thread(
            docker_env.run,
            client,
            far,
            {**labels, "traefik.http.routers.far.rule": "Host(`far.test`)", port.format("far"): "80"},
            network=mv.name,
        )
        await asyncio.to_thread(
            docker_env.run,
            client,
            inside,
            {**labels, "traefik.http.routers.in.rule": "Host(`in.test`)", port.format("in"): "80"},
            network=internal.name,
        )
        static = {
            "entryPoints": {"web": {"address": "127.0.0.1:0"}, "traefik": {"address": "127.0.0.1:0"}},
            "providers": {"docker": {"constraints": f"Label(`test.tag`, `{tag}`)"}},
            "api": {"insecure": True},
            "log": {"level": "DEBUG"},
        }
        dr = await proxy(static=static)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DIAL_TIMEOUT + 5)) as s:

            async def records() -> dict | None:
                async with s.get(dr.url("/api/discovery", ep="traefik")) as r:
                    found = {c["name"]: c for c in (await r.json()).get("containers", [])}
                return found if far in found and inside in found else None

            found = await wait_for(records, timeout=15)
            assert found[far]["reason"] == "unreachable-network", found[far]
            assert "macvlan" in found[far]["detail"]
            assert found[far]["fix"].startswith(f"run dockroute in a container on {mv.name}")
            assert found[inside]["routed"] is True and found[inside]["reason"] == ""

            async with s.get(dr.url("/"), headers={"Host": "in.test"}) as r:
                assert r.status == 200  # the internal bridge, reached from the host
            t0 = time.monotonic()
            async with s.get(dr.url("/"), headers={"Host": "far.test"}) as r:
                assert r.status == 502
            assert time.monotonic() - t0 < 1.0
    finally:
        for name in (far, inside):
            docker_env.remove(client, name)
        mv.remove()
        internal.remove()


def _ipam(subnet: str):
    import docker

    return docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])


async def test_on_the_host_another_containers_mounts_do_not_make_dockroute_that_container(
    client, containers, networks, proxy
):
    """dockroute as a process on the engine's host while a container runs with ``--ipc=shareable``: the
    host's /proc/self/mountinfo then lists that container's shm mount, with its id. dockroute must not
    take itself for that container (it would judge every other network unreachable and answer 502 at
    once): a container on a network of its own is routed and answers."""
    tag = docker_env.unique("shm")
    shareable, alone = containers(f"{tag}-shareable"), containers(f"{tag}-alone")
    net = networks(f"{tag}-net")
    box = await asyncio.to_thread(docker_env.run, client, shareable, {}, ipc_mode="shareable")
    with open("/proc/self/mountinfo") as fh:
        assert f"/var/lib/docker/containers/{box.id}/mounts/shm" in fh.read()  # the case, really here
    labels = {"test.tag": tag, "traefik.http.routers.alone.rule": "Host(`alone.test`)"}
    await asyncio.to_thread(docker_env.run, client, alone, labels, network=net)
    static = {
        "entryPoints": {"web": {"address": "127.0.0.1:0"}, "traefik": {"address": "127.0.0.1:0"}},
        "providers": {"docker": {"constraints": f"Label(`test.tag`, `{tag}`)"}},
        "api": {"insecure": True},
        "log": {"level": "DEBUG"},
    }
    dr = await proxy(static=static)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DIAL_TIMEOUT + 5)) as s:

        async def record() -> dict | None:
            async with s.get(dr.url("/api/discovery", ep="traefik")) as r:
                found = {c["name"]: c for c in (await r.json()).get("containers", [])}
            return found.get(alone)

        rec = await wait_for(record, timeout=15)
        assert rec["routed"] is True and rec["reason"] == "", rec
        async with s.get(dr.url("/"), headers={"Host": "alone.test"}) as r:
            assert r.status == 200
