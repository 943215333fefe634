"""Health checks of TCP servers (``tcp.services.<name>.loadBalancer.healthCheck``), as Traefik 3.3+'s.

Each server of a load balancer with a health check is dialled every ``interval`` (a server found down,
every ``unhealthyInterval``), with the service's transport (its dial and TLS; no PROXY header, as
Traefik's check dials without a client); with ``send`` those bytes are written, with ``expect`` exactly
those bytes must be read back, all within ``timeout``. A failed check takes the server out of its
balancer's rotation (:attr:`router.tcp.service.TCPBalancer.down`) until a check passes; every server
starts up, as in Traefik, on each new configuration. One small task per server, on the event loop: a dial
and at most 64 KiB each way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Mapping

from router.tcp.relay import dial
from router.tcp.service import Server, TCPBalancer

log = logging.getLogger("dockroute.tcp")

__all__ = ["TCPHealthChecks", "probe"]


async def probe(server: Server, balancer: TCPBalancer) -> str | None:
    """None when ``server`` passes ``balancer``'s health check, else why it does not."""
    hc = balancer.health_check
    assert hc is not None
    port = hc.port or server.port
    writer = None
    try:
        async with asyncio.timeout(hc.timeout):
            sock = await dial(server.host, port, hc.timeout, -1.0)
            reader, writer = await asyncio.open_connection(
                sock=sock, ssl=server.tls, server_hostname=server.server_name if server.tls else None
            )
            if hc.send:
                writer.write(hc.send.encode())
                await writer.drain()
            if hc.expect:
                expected = hc.expect.encode()
                if await reader.readexactly(len(expected)) != expected:
                    return "unexpected health check response"
        return None
    except (OSError, TimeoutError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    finally:
        if writer is not None:
            writer.close()


async def _watch(balancer: TCPBalancer, server: Server) -> None:
    hc = balancer.health_check
    assert hc is not None
    up = True
    while True:
        await asyncio.sleep(hc.interval if up else (hc.unhealthy_interval or hc.interval))
        why = await probe(server, balancer)
        if (why is None) != up:
            up = why is None
            if up:
                log.info("TCP service %s: server %s is up again", balancer.name, server.address)
            else:
                log.warning("TCP service %s: server %s is down: %s", balancer.name, server.address, why)
        if up:
            balancer.down.pop(server.address, None)
        else:
            balancer.down[server.address] = why or ""


class TCPHealthChecks:
    """The checks of one TCP compile: started when its tables are applied, stopped when the next ones
    are (or at shutdown, with the loop)."""

    def __init__(self, balancers: Mapping[str, TCPBalancer]) -> None:
        self._targets = [
            (b, s)
            for b in balancers.values()
            if b.health_check is not None
            for s in {s.address: s for s in b.servers}.values()
        ]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(_watch(b, s), name=f"tcp health {s.address}") for b, s in self._targets
        ]

    def stop(self) -> None:
        for task in self._tasks:
            with contextlib.suppress(Exception):
                task.cancel()
        self._tasks = []
