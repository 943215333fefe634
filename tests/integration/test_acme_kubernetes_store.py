"""Two real dockroute processes sharing one Kubernetes Secret store (``storage:
kubernetes://edge/dockroute-acme``) and one Pebble: one order per name, both serve it; the orderer
killed in the middle of its order leaves the name to the other once its Lease expires.

The API server is tests/kube_fake_api.py, a FAKE (Secrets and Leases with resourceVersion conflicts: see
its docstring); dockroute reaches it through a kubeconfig (``KUBECONFIG``), as it would a cluster's from
outside. Pebble validates HTTP-01 through the shared-store tests' relay, which asks each replica in turn."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
from pathlib import Path

import pytest

from acme_client.kubernetes.lease import lease_name
from tests.integration import pebble_env
from tests.integration.harness import Dockroute, wait_for
from tests.integration.test_acme_options import _site as site
from tests.integration.test_acme_shared_store import NAME, Relay, _orders, _served_serial, _web_port
from tests.kube_fake_api import FakeKubeApi, require_client

pytestmark = pytest.mark.integration

LEASE = 3  # seconds: a killed orderer's names wait this long (15 s by default)
STORAGE = f"kubernetes://edge/dockroute-acme?leaseDuration={LEASE}s"


class _Pod(Dockroute):
    """A replica with its own ``POD_NAME`` (its name in the Leases it holds, as the chart sets it)."""

    pod = ""

    async def start(self, *args, **kwargs) -> Dockroute:
        os.environ["POD_NAME"] = self.pod  # read when the process is spawned, before start's first await
        return await super().start(*args, **kwargs)


class SecretPair:
    """Two replicas (not started yet) whose resolver ``le`` stores into the fake API server's Secret."""

    def __init__(
        self, tmp_path: Path, pebble: pebble_env.Pebble, backend_url: str, relay: Relay, fake: FakeKubeApi
    ) -> None:
        self.relay = relay
        self.fake = fake
        self.root = tmp_path / "pebble-root.pem"
        self.root.write_bytes(pebble.root_pem())
        self.replicas = []
        for who in ("a", "b"):
            folder = tmp_path / who
            folder.mkdir()
            static = pebble_env.acme_static(
                folder, pebble.directory_url, pebble.ca_bundle, pebble_env.free_port()
            )
            static["certificatesResolvers"]["le"]["acme"]["storage"] = STORAGE
            dr = _Pod(folder, static=static, dynamic=site(backend_url, NAME))
            dr.pod = f"replica-{who}"
            self.replicas.append(dr)
        relay.replica_ports = [_web_port(dr) for dr in self.replicas]

    async def start(self) -> None:
        """Both at once (both want the name at once)."""
        await asyncio.gather(*(dr.start() for dr in self.replicas))

    async def served(self, dr: Dockroute) -> int | None:
        return await _served_serial(dr, self.root)

    def orderer_port(self) -> int | None:
        """The web port of the replica holding NAME's Lease (None while no one holds it)."""
        lease = self.fake.get("leases", "edge", lease_name("dockroute-acme", "le", (NAME,)))
        holder = ((lease or {}).get("spec") or {}).get("holderIdentity") or ""
        pod = holder.rsplit("_", 1)[0]
        return next((_web_port(dr) for dr in self.replicas if dr.pod == pod and holder), None)

    def bystander_port(self) -> int | None:
        """The web port of the replica not holding NAME's Lease (None while no one holds it)."""
        orderer = self.orderer_port()
        others = [p for p in self.relay.replica_ports if p != orderer]
        return others[0] if orderer is not None and others else None


@pytest.fixture
def fake_api(tmp_path, monkeypatch):
    require_client()
    with FakeKubeApi() as api:
        # the replicas inherit the environment: the cluster is the fake one, from outside a pod
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(tmp_path / "kubeconfig")))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        monkeypatch.setenv("POD_NAME", "")  # each replica sets its own (restored afterwards)
        yield api


@pytest.fixture
async def pair(backends, tmp_path, fake_api):
    pebble_env.require_pebble()
    (b,) = await backends("site")
    relay_port = pebble_env.free_port()
    with pebble_env.run_pebble(tmp_path / "pebble", http_port=relay_port) as pebble:
        async with Relay(relay_port) as relay:
            replicas = SecretPair(tmp_path, pebble, b.url, relay, fake_api)
            try:
                yield replicas
            finally:
                for dr in replicas.replicas:
                    await dr.stop()


def _stored_mains(fake: FakeKubeApi) -> list[str]:
    secret = fake.get("secrets", "edge", "dockroute-acme")
    if secret is None:
        return []
    raw = json.loads(base64.b64decode(secret["data"]["acme.json"]))
    return [c["domain"]["main"] for c in (raw.get("le") or {}).get("Certificates") or []]


async def test_two_replicas_sharing_a_secret_place_one_order_and_both_serve_it(pair, fake_api):
    await pair.start()
    a, b = pair.replicas
    a_serial = await wait_for(lambda: pair.served(a), timeout=30)
    b_serial = await wait_for(lambda: pair.served(b), timeout=30)
    assert a_serial == b_serial  # the one certificate, served by both
    assert sorted(_orders(dr) for dr in pair.replicas) == [0, 1]  # one order, by one of them
    waiter = next(dr for dr in pair.replicas if _orders(dr) == 0)
    assert "ordered by another process, read from kubernetes://edge/dockroute-acme" in waiter.log()
    assert len(pair.relay.answered) == 1  # one challenge: one order
    assert _stored_mains(fake_api) == [NAME]  # in the Secret, as acme.json
    lease = fake_api.get("leases", "edge", lease_name("dockroute-acme", "le", (NAME,)))
    assert lease is not None and not lease["spec"].get("holderIdentity")  # released after the order
    # nothing but Secrets and Leases was asked for, and no write went through unconditioned
    assert {m for m, _, _ in fake_api.requests} <= {"GET", "POST", "PUT"}


async def test_the_orderer_killed_mid_order_leaves_the_name_to_the_other_once_its_lease_expired(
    pair, fake_api
):
    killed: list[Dockroute] = []

    async def kill_orderer(port: int) -> None:
        """While Pebble validates the orderer's challenge, once the other replica waits on the Lease:
        SIGKILL, the Lease held and no longer renewed."""
        dr = next(dr for dr in pair.replicas if _web_port(dr) == port)
        (other,) = [o for o in pair.replicas if o is not dr]
        await wait_for(lambda: "is ordering this certificate (lease edge/" in other.log(), timeout=8)
        assert dr.proc is not None
        os.kill(dr.proc.pid, signal.SIGKILL)
        killed.append(dr)

    pair.relay.before_answer = kill_orderer
    pair.relay.skip = pair.bystander_port  # the orderer is asked (the other could answer from the Secret)
    await pair.start()
    await wait_for(lambda: bool(killed), timeout=30)
    (survivor,) = [dr for dr in pair.replicas if dr not in killed]
    serial = await wait_for(lambda: pair.served(survivor), timeout=30)
    assert serial is not None and _orders(survivor) == 1
    assert f"not renewed for {LEASE}s: taking it over" in survivor.log()
    assert killed[0].proc is not None and killed[0].proc.wait() == -signal.SIGKILL
    assert len(pair.relay.answered) == 2  # the dead orderer's challenge, then the survivor's
    assert _stored_mains(fake_api) == [NAME]


async def test_a_validation_reaching_the_replica_that_did_not_order_is_answered_from_the_secret(
    pair, fake_api
):
    """Behind a Service the CA's validation may reach a pod that did not order: here the relay never asks
    the Lease holder. The other replica reads the answer the orderer put in the Secret, Pebble validates,
    both serve the one certificate, and the answer is removed from the Secret once the order is over."""
    pair.relay.skip = pair.orderer_port
    await pair.start()
    serials = [await wait_for(lambda dr=dr: pair.served(dr), timeout=30) for dr in pair.replicas]
    assert serials[0] == serials[1]
    assert sorted(_orders(dr) for dr in pair.replicas) == [0, 1]
    orderer = next(dr for dr in pair.replicas if _orders(dr) == 1)
    ((_, answered_by),) = pair.relay.answered.items()
    assert answered_by != _web_port(orderer)  # the replica that did not order answered Pebble
    secret = fake_api.get("secrets", "edge", "dockroute-acme")
    assert secret is not None and set(secret["data"]) == {"acme.json"}  # the answer withdrawn
