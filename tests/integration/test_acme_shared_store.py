"""Two real dockroute processes sharing one acme.json and one Pebble: one order per name, both serve it;
the orderer killed in the middle of its order leaves the name to the other.

Pebble validates HTTP-01 on one port; a relay there asks each replica in turn for the token (what a load
balancer in front of replicas does not do: see docs/tls.md on the challenge living in the orderer only)."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509

from tests.integration import pebble_env
from tests.integration.harness import Dockroute, wait_for
from tests.integration.test_acme_options import _site as site

pytestmark = pytest.mark.integration

NAME = "shared.example.com"


class Relay:
    """Pebble's HTTP-01 port: answers a challenge from the first replica that knows the token.
    ``before_answer(port)`` runs once the answering replica is known, before Pebble gets the answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.replica_ports: list[int] = []
        self.answered: dict[str, int] = {}  # token → the replica port that knew it (one token per order)
        self.before_answer: Callable[[int], Awaitable[None]] | None = None
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        async with aiohttp.ClientSession() as session:
            for port in self.replica_ports:
                try:
                    async with session.get(
                        f"http://127.0.0.1:{port}{request.rel_url}", headers={"Host": request.host}
                    ) as r:
                        body = await r.read()
                except aiohttp.ClientError:
                    continue  # a replica killed meanwhile
                if r.status == 200:
                    self.answered[request.match_info["tail"]] = port
                    if self.before_answer is not None:
                        hook, self.before_answer = self.before_answer, None
                        await hook(port)
                        return web.Response(status=404)  # the orderer is gone: so is its answer
                    return web.Response(body=body, content_type="text/plain")
        return web.Response(status=404)

    async def __aenter__(self) -> Relay:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def _replica(tmp_path: Path, who: str, pebble: pebble_env.Pebble, backend_url: str) -> Dockroute:
    folder = tmp_path / who
    folder.mkdir()
    static = pebble_env.acme_static(folder, pebble.directory_url, pebble.ca_bundle, pebble_env.free_port())
    static["certificatesResolvers"]["le"]["acme"]["storage"] = str(tmp_path / "shared" / "acme.json")
    return Dockroute(folder, static=static, dynamic=site(backend_url, NAME))


async def _served_serial(dr: Dockroute, root: Path) -> int | None:
    """The serial of the certificate ``dr`` serves for NAME, once it chains to Pebble's root."""
    ctx = ssl.create_default_context(cafile=str(root))
    try:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", dr.ports["websecure"], ssl=ctx, server_hostname=NAME
        )
    except ssl.SSLCertVerificationError:
        return None  # still the default certificate
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return x509.load_der_x509_certificate(der).serial_number


def _orders(dr: Dockroute) -> int:
    return dr.log().count(f"certificate for {NAME} obtained")


def _web_port(dr: Dockroute) -> int:
    return int(dr.static["entryPoints"]["web"]["address"].rsplit(":", 1)[1])


class SharedStore:
    """Two replicas (not started yet) sharing ``tmp_path/shared/acme.json``, one Pebble whose HTTP-01
    validations go through ``relay``, and Pebble's root (``root``) to verify what they serve."""

    def __init__(self, tmp_path: Path, pebble: pebble_env.Pebble, backend_url: str, relay: Relay) -> None:
        (tmp_path / "shared").mkdir(mode=0o700)
        self.store = tmp_path / "shared" / "acme.json"
        self.relay = relay
        self.root = tmp_path / "pebble-root.pem"
        self.root.write_bytes(pebble.root_pem())
        self.replicas = [_replica(tmp_path, who, pebble, backend_url) for who in ("a", "b")]
        relay.replica_ports = [_web_port(dr) for dr in self.replicas]

    async def start(self) -> None:
        """Both at once (both want the name at once)."""
        await asyncio.gather(*(dr.start() for dr in self.replicas))

    def served(self, dr: Dockroute) -> Awaitable[int | None]:
        return _served_serial(dr, self.root)


@pytest.fixture
async def shared(backends, tmp_path):
    """A :class:`SharedStore`; its replicas are stopped afterwards."""
    pebble_env.require_pebble()
    (b,) = await backends("site")
    relay_port = pebble_env.free_port()
    with pebble_env.run_pebble(tmp_path / "pebble", http_port=relay_port) as pebble:
        async with Relay(relay_port) as relay:
            pair = SharedStore(tmp_path, pebble, b.url, relay)
            try:
                yield pair
            finally:
                for dr in pair.replicas:
                    await dr.stop()


async def test_two_replicas_sharing_a_store_place_one_order_and_both_serve_it(shared):
    await shared.start()
    replicas = shared.replicas
    a_serial = await wait_for(lambda: shared.served(replicas[0]), timeout=30)
    b_serial = await wait_for(lambda: shared.served(replicas[1]), timeout=30)
    assert a_serial == b_serial  # the one certificate, served by both
    assert sorted(_orders(dr) for dr in replicas) == [0, 1]  # one order, by one of them
    waiter = next(dr for dr in replicas if _orders(dr) == 0)
    assert f"certificate for {NAME} ordered by another process" in waiter.log()
    assert len(shared.relay.answered) == 1  # one token asked for (from each of Pebble's perspectives)


async def test_the_orderer_killed_mid_order_leaves_the_name_to_the_other_replica(shared):
    replicas = shared.replicas
    killed: list[Dockroute] = []

    async def kill_orderer(port: int) -> None:
        """While Pebble validates the orderer's challenge, once the other replica waits on the lock:
        SIGKILL, the lock held."""
        dr = next(dr for dr in replicas if _web_port(dr) == port)
        (other,) = [o for o in replicas if o is not dr]
        await wait_for(lambda: "another process is ordering this certificate" in other.log(), timeout=8)
        assert dr.proc is not None
        os.kill(dr.proc.pid, signal.SIGKILL)
        killed.append(dr)

    shared.relay.before_answer = kill_orderer
    await shared.start()
    await wait_for(lambda: bool(killed), timeout=30)
    (survivor,) = [dr for dr in replicas if dr not in killed]
    serial = await wait_for(lambda: shared.served(survivor), timeout=30)
    assert serial is not None and _orders(survivor) == 1
    assert "another process is ordering this certificate" in survivor.log()  # it waited, then took over
    assert killed[0].proc is not None and killed[0].proc.wait() == -signal.SIGKILL
    assert len(shared.relay.answered) == 2  # the dead orderer's challenge, then the survivor's
