"""Two real dockroute processes sharing one acme.json and one Pebble: one order per name, both serve it;
the orderer killed in the middle of its order leaves the name to the other.

Pebble validates HTTP-01 on one port; a relay there asks each replica in turn for the token (what a load
balancer in front of replicas does not do: see docs/tls.md on the challenge living in the orderer only)."""

from __future__ import annotations

import asyncio
import datetime
import os
import signal
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web
from cryptography import x509

from acme_client.order_lock import StoreLock
from acme_client.storage import AcmeStorage, StoredCertificate
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


async def _served_serial(dr: Dockroute, root: Path | None) -> int | None:
    """The serial of the certificate ``dr`` serves for NAME, once it chains to Pebble's root (any
    certificate with ``root`` None)."""
    if root is not None:
        ctx = ssl.create_default_context(cafile=str(root))
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
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


def _write_as_another_process(store: Path, cert: StoredCertificate | None) -> None:
    """What another process sharing the store writes: ``cert`` for NAME (a renewal), through the store's own
    code and so under its folder lock, or with ``cert`` None a broken file (not JSON) renamed over it."""
    if cert is not None:
        AcmeStorage(str(store)).put_certificate("le", cert)
        return
    with StoreLock(str(store)):
        tmp = store.with_name("broken.tmp")
        tmp.write_bytes(b'{"le": {"Certificates": [')
        tmp.chmod(0o600)
        os.replace(tmp, store)


async def _serves(dr: Dockroute, serial: int) -> bool:
    return await _served_serial(dr, None) == serial


def _certificate(years: int) -> StoredCertificate:
    """A certificate for NAME expiring in ``years`` years: later than Pebble's five-year ones."""
    ca = trustme.CA()
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=365 * years)
    leaf = ca.issue_cert(NAME, not_after=expires)
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    return StoredCertificate(main=NAME, sans=(), certificate_pem=chain, key_pem=leaf.private_key_pem.bytes())


async def test_a_certificate_written_by_another_process_is_served_by_both_within_seconds(shared):
    """A renewal stored by another process (here the test, through the store's code and lock) is served
    by every replica within seconds (each watches the file), not at its next renewal check up to 10
    minutes later. A broken write by another process is logged once, naming the file, and the replicas go
    on serving what they served; the next good write is served again."""
    await shared.start()
    replicas = shared.replicas
    pebbles = [await wait_for(lambda dr=dr: shared.served(dr), timeout=30) for dr in replicas]
    assert pebbles[0] == pebbles[1]

    renewal = _certificate(years=6)
    serial = x509.load_pem_x509_certificate(renewal.certificate_pem).serial_number
    started = time.monotonic()
    _write_as_another_process(shared.store, renewal)
    for dr in replicas:
        await wait_for(lambda dr=dr: _serves(dr, serial), timeout=10)
    took = time.monotonic() - started
    print(f"renewal by another process served by both replicas in {took:.2f}s")

    _write_as_another_process(shared.store, None)
    said = f"{shared.store} was changed by another process but cannot be read"
    for dr in replicas:
        await wait_for(lambda dr=dr: said in dr.log(), timeout=10)
        assert await _served_serial(dr, None) == serial  # what was served stays

    later = _certificate(years=7)
    serial = x509.load_pem_x509_certificate(later.certificate_pem).serial_number
    _write_as_another_process(shared.store, later)
    for dr in replicas:
        await wait_for(lambda dr=dr: _serves(dr, serial), timeout=10)
        assert dr.log().count(said) == 1  # said once, though the watch looked many times since
        assert "Traceback" not in dr.log()
