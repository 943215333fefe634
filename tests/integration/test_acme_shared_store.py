"""Two real dockroute processes sharing one acme.json and one Pebble: one order per name, both serve it;
the orderer killed in the middle of its order leaves the name to the other; a certificate another process
writes is served by both within seconds; a validation reaching the replica that did not order is answered.

Pebble validates HTTP-01 on one port; a relay there asks the replicas for the token, as a load balancer in
front of them would hand the CA's request to one of them. For TLS-ALPN-01 a TCP relay hands Pebble's
connection to one replica's HTTPS entry point."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import signal
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web
from cryptography import x509

from acme_client.order_lock import StoreLock, lock_path
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
        self.skip: Callable[[], int | None] | None = None  # a replica port never asked (the orderer's)
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        skip = self.skip() if self.skip is not None else None
        async with aiohttp.ClientSession() as session:
            for port in [p for p in self.replica_ports if p != skip]:
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


class TlsRelay:
    """Pebble's TLS-ALPN-01 port: hands each validation connection, raw, to the first replica's HTTPS
    entry point that ``skip`` does not name; ``used`` lists the ports it handed connections to."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.replica_ports: list[int] = []  # known once the replicas started
        self.skip: Callable[[], int | None] | None = None
        self.used: list[int] = []
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await wait_for(lambda: self.replica_ports, timeout=10)
        skip = self.skip() if self.skip is not None else None
        port = next(p for p in self.replica_ports if p != skip)
        self.used.append(port)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def __aenter__(self) -> TlsRelay:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


def _replica(tmp_path: Path, who: str, pebble: pebble_env.Pebble, backend_url: str, tls: bool) -> Dockroute:
    folder = tmp_path / who
    folder.mkdir()
    static = pebble_env.acme_static(folder, pebble.directory_url, pebble.ca_bundle, pebble_env.free_port())
    static["providers"]["file"]["watch"] = True  # the site comes once both replicas run
    acme = static["certificatesResolvers"]["le"]["acme"]
    acme["storage"] = str(tmp_path / "shared" / "acme.json")
    if tls:
        del acme["httpChallenge"]
        acme["tlsChallenge"] = {}
    return Dockroute(folder, static=static, dynamic={})


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

    def __init__(
        self, tmp_path: Path, pebble: pebble_env.Pebble, backend_url: str, relay: Relay | TlsRelay
    ) -> None:
        (tmp_path / "shared").mkdir(mode=0o700)
        self.store = tmp_path / "shared" / "acme.json"
        self.relay = relay
        self.root = tmp_path / "pebble-root.pem"
        self.root.write_bytes(pebble.root_pem())
        tls = isinstance(relay, TlsRelay)
        self.site = site(backend_url, NAME)
        self.replicas = [_replica(tmp_path, who, pebble, backend_url, tls) for who in ("a", "b")]
        if not tls:
            relay.replica_ports = [_web_port(dr) for dr in self.replicas]

    async def start(self) -> None:
        """Both, then the site on both at once (both want the name at once): the CA's validations, which
        the relays may hand to either, never reach a replica still starting (as a balancer's readiness
        checks see to)."""
        await asyncio.gather(*(dr.start() for dr in self.replicas))
        if isinstance(self.relay, TlsRelay):
            self.relay.replica_ports = [dr.ports["websecure"] for dr in self.replicas]
        for dr in self.replicas:
            dr.write_dynamic(self.site)

    def served(self, dr: Dockroute) -> Awaitable[int | None]:
        return _served_serial(dr, self.root)

    def orderer(self) -> Dockroute | None:
        """The replica holding NAME's order lock (its pid is written in the lock file)."""
        try:
            holder = Path(lock_path(str(self.store), "le", (NAME,))).read_text().split()
        except OSError:
            return None
        pid = int(holder[1]) if len(holder) > 1 and holder[0] == "pid" else None
        return next((dr for dr in self.replicas if dr.proc is not None and dr.proc.pid == pid), None)

    def orderer_port(self) -> int | None:
        """The entry point of the orderer that the relay hands the CA's validations to."""
        dr = self.orderer()
        if dr is None:
            return None
        return dr.ports.get("websecure") if isinstance(self.relay, TlsRelay) else _web_port(dr)

    def bystander_port(self) -> int | None:
        """The web port of the replica not holding NAME's order lock (None while no one holds it)."""
        orderer = self.orderer_port()
        others = [p for p in self.relay.replica_ports if p != orderer]
        return others[0] if orderer is not None and others else None


@contextlib.asynccontextmanager
async def _sharing(backends, tmp_path: Path, tls: bool) -> AsyncIterator[SharedStore]:
    pebble_env.require_pebble()
    (b,) = await backends("site")
    relay_port, unused = pebble_env.free_port(), pebble_env.free_port()
    http_port, tls_port = (unused, relay_port) if tls else (relay_port, None)
    with pebble_env.run_pebble(tmp_path / "pebble", http_port=http_port, tls_port=tls_port) as pebble:
        async with TlsRelay(relay_port) if tls else Relay(relay_port) as relay:
            pair = SharedStore(tmp_path, pebble, b.url, relay)
            try:
                yield pair
            finally:
                for dr in pair.replicas:
                    await dr.stop()


@pytest.fixture
async def shared(backends, tmp_path):
    """A :class:`SharedStore` validated over HTTP-01; its replicas are stopped afterwards."""
    async with _sharing(backends, tmp_path, tls=False) as pair:
        yield pair


@pytest.fixture
async def shared_tls(backends, tmp_path):
    """A :class:`SharedStore` validated over TLS-ALPN-01."""
    async with _sharing(backends, tmp_path, tls=True) as pair:
        yield pair


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
    shared.relay.skip = shared.bystander_port  # the orderer is asked, whom the hook kills
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


async def test_a_validation_reaching_the_replica_that_did_not_order_is_answered(shared):
    """Behind a load balancer the CA's validation request may reach a replica that did not order: here the
    relay never asks the orderer (the holder of the name's order lock). The other replica reads the
    answer the orderer published beside the store, Pebble validates, and both serve the one certificate;
    the published answer is removed once the order is over."""
    shared.relay.skip = shared.orderer_port
    await shared.start()
    replicas = shared.replicas
    serials = [await wait_for(lambda dr=dr: shared.served(dr), timeout=30) for dr in replicas]
    assert serials[0] == serials[1]
    assert sorted(_orders(dr) for dr in replicas) == [0, 1]
    orderer = next(dr for dr in replicas if _orders(dr) == 1)
    ((_, answered_by),) = shared.relay.answered.items()
    assert answered_by != _web_port(orderer)  # the replica that did not order answered Pebble
    assert not list(shared.store.parent.glob(".acme.json.challenge.*"))


async def test_a_tls_alpn_validation_reaching_the_replica_that_did_not_order_is_answered(shared_tls):
    """The same with TLS-ALPN-01: Pebble's connection goes to the HTTPS entry point of the replica that did
    not order. That replica took the answer the orderer published (its store watch made the challenge
    certificate and acknowledged it before the orderer told the CA), presents it to acme-tls/1, and both
    serve the one certificate."""
    shared_tls.relay.skip = shared_tls.orderer_port
    await shared_tls.start()
    replicas = shared_tls.replicas
    serials = [await wait_for(lambda dr=dr: shared_tls.served(dr), timeout=30) for dr in replicas]
    assert serials[0] == serials[1]
    assert sorted(_orders(dr) for dr in replicas) == [0, 1]
    orderer = next(dr for dr in replicas if _orders(dr) == 1)
    assert shared_tls.relay.used and orderer.ports["websecure"] not in shared_tls.relay.used
    assert not list(shared_tls.store.parent.glob(".acme.json.challenge.*"))
    assert not list(shared_tls.store.parent.glob(".acme.json.ack.*"))
