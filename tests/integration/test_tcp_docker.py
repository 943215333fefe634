"""``traefik.tcp.*`` and ``traefik.udp.*`` labels route real containers through the real process."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration import docker_env
from tests.integration.harness import wait_for
from tests.integration.test_udp import Client, EchoBackend

pytestmark = pytest.mark.integration


def l4_static(**entry_points: str) -> dict:
    return {
        "entryPoints": {
            "web": {"address": "127.0.0.1:0"},
            **{n: {"address": a} for n, a in entry_points.items()},
        },
        "providers": {"docker": {}},
        "log": {"level": "DEBUG"},
    }


# busybox nc as a TCP echo server, one cat per connection (-ll: keep listening)
ECHO = [
    "/bin/sh",
    "-c",
    "/bin/busybox ln -s /bin/busybox /bin/cat; exec /bin/busybox nc -ll -p 7000 -e /bin/cat",
]


async def test_tcp_labels_route_a_container_running_a_tcp_echo(client, containers, proxy):
    name = containers(docker_env.unique("tcpecho"))
    dr = await proxy(static=l4_static(echo="127.0.0.1:0"))
    await asyncio.to_thread(
        docker_env.run,
        client,
        name,
        {
            f"traefik.tcp.routers.{name}.rule": "HostSNI(`*`)",
            f"traefik.tcp.routers.{name}.entrypoints": "echo",
            f"traefik.tcp.services.{name}.loadbalancer.server.port": "7000",
        },
        command=ECHO,
    )

    async def echoed() -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", dr.ports["echo"])
            try:
                writer.write(b"hello through labels\n")
                return await asyncio.wait_for(reader.readline(), 1) == b"hello through labels\n"
            finally:
                writer.close()
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            return False

    await wait_for(echoed, timeout=15)
    # the web entry point has no TCP router: the container's labels did not give it an HTTP one either
    reader, writer = await asyncio.open_connection("127.0.0.1", dr.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 404")
    writer.close()


async def test_udp_labels_route_a_container(client, containers, proxy):
    """busybox has no UDP server: the container shares the host's network (``network_mode: host``, where
    Traefik reaches it at the host's address) and the UDP echo answering on its labelled port runs here."""
    echo = await EchoBackend("box").start()
    try:
        port = echo.address.rpartition(":")[2]
        name = containers(docker_env.unique("udpbox"))
        dr = await proxy(static=l4_static(dns="127.0.0.1:0/udp"))
        await asyncio.to_thread(
            docker_env.run,
            client,
            name,
            {
                f"traefik.udp.routers.{name}.entrypoints": "dns",
                f"traefik.udp.services.{name}.loadbalancer.server.port": port,
            },
            command=["/bin/sleep", "3600"],
            network_mode="host",
        )
        c = await Client.connect(dr.ports["dns"])
        try:

            async def answered() -> bool:
                try:
                    return await c.ask(b"ping", timeout=0.5) == b"box:ping"
                except TimeoutError:
                    return False

            await wait_for(answered, timeout=15)
        finally:
            c.close()
    finally:
        echo.close()
