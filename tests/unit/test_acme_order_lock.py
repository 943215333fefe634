"""The lock that lets several processes share one acme.json: one orders each name, the others read it back.

Other processes are real ones (``python -c`` children importing this module), since an ``flock`` held by
this process cannot show what another process sees."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from acme_client.order_lock import OrderLock, OrderLockTimeout, StoreLock, lock_path
from acme_client.resolver import AcmeResolver
from acme_client.settings import ResolverSettings
from acme_client.storage import AcmeStorage, StoredCertificate
from tests.unit import test_acme_storage
from tests.unit.test_acme_storage import make_cert

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("app.example.com", "www.example.com")
_IMPORT_T = "from tests.unit import test_acme_order_lock as t"


def _cert(days_left: float) -> StoredCertificate:
    """A certificate for NAMES issued a day ago (make_cert's clock is fixed in 2030), ``days_left`` left."""
    saved = test_acme_storage.NOW
    test_acme_storage.NOW = dt.datetime.now(dt.UTC)
    try:
        return StoredCertificate(NAMES[0], NAMES[1:], *make_cert(NAMES[0], NAMES[1:], days=days_left))
    finally:
        test_acme_storage.NOW = saved


def _child(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from tests.unit.test_acme_order_lock import *\n{_IMPORT_T}\n{code}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def _hold(store: str, seconds: float) -> None:
    """Child: take the lock for NAMES, say so, hold it ``seconds``."""
    with OrderLock(store, "le", NAMES):
        print("held", flush=True)
        time.sleep(seconds)


def _holding(tmp_path: Path, seconds: float) -> subprocess.Popen[str]:
    child = _child(f"t._hold({str(tmp_path / 'acme.json')!r}, {seconds})")
    assert child.stdout is not None and child.stdout.readline() == "held\n"
    return child


def test_the_lock_file_is_beside_the_store_and_the_same_for_names_in_any_order(tmp_path):
    store = str(tmp_path / "acme.json")
    path = lock_path(store, "le", NAMES)
    assert os.path.dirname(path) == str(tmp_path) and os.path.basename(path).startswith(".acme.json.lock.")
    assert path == lock_path(store, "le", tuple(reversed(NAMES)))
    assert path != lock_path(store, "other", NAMES) != lock_path(store, "le", NAMES[:1])


def test_a_lock_held_by_another_process_is_waited_for_until_it_is_released(tmp_path):
    store = str(tmp_path / "acme.json")
    child = _holding(tmp_path, 1.0)
    try:
        with pytest.raises(OrderLockTimeout):
            OrderLock(store, "le", NAMES, timeout=0.3).acquire()
        with OrderLock(store, "le", NAMES[:1], timeout=0.3) as other:  # other names: not held
            assert other.held and not other.waited
        start = time.monotonic()
        with OrderLock(store, "le", NAMES, timeout=10) as lock:
            assert lock.held and lock.waited
            assert child.poll() is not None or time.monotonic() - start > 0.3  # only once the holder let go
    finally:
        child.kill()
        child.wait()


def test_a_holder_killed_with_sigkill_leaves_no_stale_lock(tmp_path):
    store = str(tmp_path / "acme.json")
    child = _holding(tmp_path, 3600)  # would hold it for an hour
    with pytest.raises(OrderLockTimeout):
        OrderLock(store, "le", NAMES, timeout=0.3).acquire()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    start = time.monotonic()
    with OrderLock(store, "le", NAMES, timeout=5) as lock:
        assert lock.held
    assert time.monotonic() - start < 1.0  # taken over at once: no expiry to wait out


def test_a_store_lock_on_the_folder_excludes_other_processes_and_leaves_no_file(tmp_path):
    store = str(tmp_path / "acme.json")
    child = _child(f"with StoreLock({store!r}):\n    print('held', flush=True)\n    time.sleep(1)")
    assert child.stdout is not None and child.stdout.readline() == "held\n"
    try:
        with pytest.raises(OrderLockTimeout):
            StoreLock(store, timeout=0.3).acquire()
    finally:
        child.wait()
    with StoreLock(store, timeout=1) as lock:
        assert lock.held
    assert list(tmp_path.iterdir()) == []


# -- two resolvers in two processes, one store ---------------------------------------------------------


def _race(store: str, counter: str, started: str, other: str) -> None:
    """Child: a resolver whose 'CA' takes a second and counts its orders in ``counter``; prints the serial
    of the certificate it ends up with. Both children judge the name missing before either orders (as two
    replicas starting together do): a child that started after the other one's order was stored would load
    that certificate and never order, which is not the race under test."""
    resolver = AcmeResolver("le", ResolverSettings(storage=store), lambda: None)

    def issue(names: tuple[str, ...], renewing: StoredCertificate | None) -> StoredCertificate:
        with open(counter, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(1.0)
        cert_pem, key_pem = make_cert(names[0], names[1:])
        cert = StoredCertificate(names[0], tuple(names[1:]), cert_pem, key_pem)
        resolver.storage.put_certificate(resolver.name, cert)
        return cert

    resolver._issue = issue  # type: ignore[method-assign]
    Path(started).touch()
    deadline = time.monotonic() + 20
    while not os.path.exists(other) and time.monotonic() < deadline:  # both judged: now race
        time.sleep(0.005)
    cert = resolver._order(NAMES)
    print(json.dumps({"serial": cert.facts.serial, "ordered": NAMES not in resolver._read_back}), flush=True)


def test_two_processes_wanting_the_same_names_place_one_order_and_both_get_it(tmp_path):
    store, counter = str(tmp_path / "acme.json"), str(tmp_path / "orders")
    children = [
        _child(
            f"t._race({store!r}, {counter!r}, {str(tmp_path / f'started-{i}')!r}, "
            f"{str(tmp_path / f'started-{1 - i}')!r})"
        )
        for i in (0, 1)
    ]
    results = [json.loads(c.communicate(timeout=30)[0]) for c in children]
    assert all(c.returncode == 0 for c in children)
    assert len(Path(counter).read_text().split()) == 1  # one order at the 'CA'
    assert results[0]["serial"] == results[1]["serial"]  # both serve the one certificate
    assert sorted(r["ordered"] for r in results) == [False, True]
    (stored,) = AcmeStorage(store).load()["le"].certificates
    assert stored.facts.serial == results[0]["serial"]


def test_a_renewal_another_process_stored_meanwhile_is_taken_not_ordered_again(tmp_path):
    """The store is read again under the lock: a certificate newer than the one judged due is served."""
    store = str(tmp_path / "acme.json")
    old = _cert(days_left=0.3)
    AcmeStorage(store).put_certificate("le", old)
    resolver = AcmeResolver("le", ResolverSettings(storage=store), lambda: None)
    assert resolver._due(NAMES)[0]
    renewed = _cert(days_left=90)
    AcmeStorage(store).put_certificate("le", renewed)  # by the other replica
    orders = []
    resolver._issue = lambda names, renewing: orders.append(names)  # type: ignore[method-assign,assignment,return-value]
    assert resolver._order(NAMES).certificate_pem == renewed.certificate_pem
    assert orders == [] and resolver._read_back[NAMES].certificate_pem == renewed.certificate_pem


def test_a_stored_certificate_no_newer_than_the_one_judged_due_is_ordered_again(tmp_path):
    store = str(tmp_path / "acme.json")
    old = _cert(days_left=0.3)
    AcmeStorage(store).put_certificate("le", old)
    resolver = AcmeResolver("le", ResolverSettings(storage=store), lambda: None)
    orders: list[tuple[str, ...]] = []

    def issue(names, renewing):
        orders.append(names)
        assert renewing is not None and renewing.certificate_pem == old.certificate_pem
        return old

    resolver._issue = issue  # type: ignore[method-assign]
    resolver._order(NAMES)
    assert orders == [NAMES] and NAMES not in resolver._read_back


def _write_many(store: str, who: str, go: str, count: int) -> None:
    """Child: once ``go`` exists, store ``count`` certificates named after ``who``, one write each."""
    certs = [
        StoredCertificate(f"{who}-{i}.example.com", (), *make_cert(f"{who}-{i}.example.com"))
        for i in range(count)
    ]
    Path(f"{go}-{who}").touch()  # ready
    while not os.path.exists(go):
        time.sleep(0.001)
    for cert in certs:
        AcmeStorage(store).put_certificate("le", cert)


def test_concurrent_writes_from_two_processes_keep_both_certificates(tmp_path):
    """Each write reads, changes and rewrites the whole file: without a lock across processes, one
    process's write drops what the other wrote since its read."""
    store, go = str(tmp_path / "acme.json"), str(tmp_path / "go")
    children = [_child(f"t._write_many({store!r}, {who!r}, {go!r}, 40)") for who in ("a", "b")]
    deadline = time.monotonic() + 30
    while not all(os.path.exists(f"{go}-{who}") for who in "ab"):  # both up, their certificates made
        assert time.monotonic() < deadline
        time.sleep(0.01)
    Path(go).touch()
    for c in children:
        assert c.wait(60) == 0
    mains = {c.main for c in AcmeStorage(store).load()["le"].certificates}
    assert mains == {f"{who}-{i}.example.com" for who in "ab" for i in range(40)}
