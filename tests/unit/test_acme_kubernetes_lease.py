"""The Lease that lets one replica order each name set on Kubernetes (acme_client.kubernetes.lease),
against tests/kube_fake_api.py (a fake API server: see its docstring for what it implements). Each
"replica" is a LeaseLock with its own identity; time is real but short (2-second leases)."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from acme_client.kubernetes.api import KubeApi
from acme_client.kubernetes.lease import LeaseLock, lease_name
from acme_client.order_lock import OrderLockTimeout
from acme_client.storage import StorageError
from tests.kube_fake_api import FakeKubeApi, require_client

NAMES = ("app.example.com", "www.example.com")
DURATION = 2


@pytest.fixture
def fake(tmp_path, monkeypatch):
    require_client()
    with FakeKubeApi() as api:
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(tmp_path / "kubeconfig")))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        yield api


def _lock(identity: str, timeout: float = 30.0, names=NAMES) -> LeaseLock:
    return LeaseLock(KubeApi(), "edge", "acme", "le", names, identity, DURATION, timeout=timeout)


def _spec(fake: FakeKubeApi) -> dict:
    lease = fake.get("leases", "edge", lease_name("acme", "le", NAMES))
    assert lease is not None
    return lease["spec"]


def test_the_lease_name_is_a_valid_object_name_and_the_same_for_names_in_any_order():
    name = lease_name("acme", "Le_Resolver", NAMES)
    assert name.startswith("acme-le-resolver-") and len(name) <= 253 and name == name.lower()
    assert name == lease_name("acme", "Le_Resolver", tuple(reversed(NAMES)))
    assert name != lease_name("acme", "other", NAMES) != lease_name("acme", "Le_Resolver", NAMES[:1])


def test_taking_holding_and_releasing(fake):
    lock = _lock("pod-a_1")
    with lock:
        spec = _spec(fake)
        assert spec["holderIdentity"] == "pod-a_1" and spec["leaseDurationSeconds"] == DURATION
        for key in ("acquireTime", "renewTime"):  # RFC 3339 in UTC (the client writes Z or +00:00)
            stamp = dt.datetime.fromisoformat(spec[key].replace("Z", "+00:00"))
            assert stamp.utcoffset() == dt.timedelta(0) and abs(time.time() - stamp.timestamp()) < 5
        lease = fake.get("leases", "edge", lease_name("acme", "le", NAMES))
        assert lease["metadata"]["annotations"]["dockroute.io/names"] == ",".join(NAMES)
        assert lease["metadata"]["labels"]["dockroute.io/store"] == "acme"
        assert not lock.waited
    assert not _spec(fake).get("holderIdentity")  # released: the next replica takes it at once


def test_a_held_lease_is_renewed_and_never_taken_while_its_holder_lives(fake):
    """The holder keeps it for twice the lease duration; the waiter gets it only once it is released."""
    holder, waiter = _lock("pod-a_1"), _lock("pod-b_2")
    holder.acquire()
    first_renewal = _spec(fake)["renewTime"]
    got_at: list[float] = []
    thread = threading.Thread(target=lambda: (waiter.acquire(), got_at.append(time.monotonic())))
    thread.start()
    time.sleep(2 * DURATION)  # the holder's order takes long: the waiter must wait all of it
    assert not got_at and _spec(fake)["holderIdentity"] == "pod-a_1"
    assert _spec(fake)["renewTime"] != first_renewal
    released = time.monotonic()
    holder.release()
    thread.join(10)
    assert got_at and got_at[0] - released < DURATION / 5 + 1.0  # at the waiter's next poll
    assert waiter.waited and not holder.lost
    assert _spec(fake)["holderIdentity"] == "pod-b_2" and _spec(fake)["leaseTransitions"] == 0
    waiter.release()


def test_a_dead_holders_lease_is_taken_over_once_it_expired(fake):
    """The holder stops renewing (a killed pod): the waiter takes over one lease duration after it last
    saw the Lease change, not before."""
    dead = _lock("pod-dead_1")
    dead.acquire()
    dead._stop.set()  # the process died: no renewal, no release
    dead._renewer.join()
    start = time.monotonic()
    waiter = _lock("pod-b_2")
    waiter.acquire()
    took = time.monotonic() - start
    assert DURATION <= took < DURATION + 2.0
    spec = _spec(fake)
    assert spec["holderIdentity"] == "pod-b_2" and spec["leaseTransitions"] == 1
    assert waiter.waited
    waiter.release()


def test_a_holder_that_stalled_past_its_lease_learns_it_lost_it(fake):
    holder, other = _lock("pod-a_1"), _lock("pod-b_2")
    holder.acquire()
    holder._stop.set()  # stalled: no renewal for a whole duration
    holder._renewer.join()
    other.acquire()
    holder._renew()
    assert holder.lost
    holder.release()  # does not give away the other's lease
    assert _spec(fake)["holderIdentity"] == "pod-b_2"
    other.release()


def test_waiting_past_the_deadline_is_an_order_lock_timeout(fake):
    holder = _lock("pod-a_1")
    holder.acquire()
    try:
        with pytest.raises(OrderLockTimeout, match="held by pod-a_1"):
            _lock("pod-b_2", timeout=0.5).acquire()
    finally:
        holder.release()


def test_two_replicas_racing_for_a_new_lease_get_it_one_after_the_other(fake):
    """Both create the missing Lease at once: one create wins (the other gets 409 and waits)."""
    inside: list[str] = []
    overlaps: list[bool] = []

    def order(identity: str) -> None:
        with _lock(identity):
            overlaps.append(bool(inside))
            inside.append(identity)
            time.sleep(0.3)
            inside.remove(identity)

    threads = [threading.Thread(target=order, args=(f"pod-{i}_x",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert overlaps == [False] * 4


def test_an_api_error_is_a_storage_error_not_an_order_without_the_lock(fake, tmp_path):
    kubeconfig = (tmp_path / "kubeconfig").read_text().replace(fake.url, "http://127.0.0.1:9")
    (tmp_path / "kubeconfig").write_text(kubeconfig)
    with pytest.raises(StorageError, match="get lease edge/"):
        _lock("pod-a_1").acquire()
