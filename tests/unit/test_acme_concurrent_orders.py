"""The resolver's pool of orders: up to PARALLEL_ORDERS at once, never two sharing a name, missing
certificates first, ``on_change`` once per certificate, one account registration for all threads, and
each solver's recover hook in a worker thread before the first order and again on every check.

The worker threads run a stand-in ``_order`` that blocks on a per-name-set event the test sets, so the
test decides when each order ends and looks at what is in flight meanwhile (no CA here: the real one,
Pebble, is in tests/integration/test_acme_concurrency.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from acme_client.issuer import Solver
from acme_client.resolver import PARALLEL_ORDERS, AcmeResolver
from acme_client.settings import ResolverSettings
from acme_client.storage import StoredAccount, StoredCertificate
from tests.acme_certs import stored_certificate
from tests.polling import until


def _cert(names: tuple[str, ...], days_left: float = 80) -> StoredCertificate:
    return stored_certificate(names, days_left=days_left)


class Orders:
    """A stand-in for ``AcmeResolver._order`` run by the worker threads: records what is in flight."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight: list[tuple[str, ...]] = []
        self.started: list[tuple[str, ...]] = []
        self.most = 0
        self.clashes: list[tuple[tuple[str, ...], tuple[str, ...]]] = []  # two in flight sharing a name
        self.release: dict[tuple[str, ...], threading.Event] = {}
        self.threads: set[str] = set()
        self.open = False  # every order, started or not, released

    def gate(self, names: tuple[str, ...]) -> threading.Event:
        with self.lock:
            gate = self.release.setdefault(names, threading.Event())
            if self.open:
                gate.set()
            return gate

    def __call__(self, names: tuple[str, ...]) -> StoredCertificate:
        gate = self.gate(names)
        with self.lock:
            self.clashes += [(names, other) for other in self.in_flight if set(other) & set(names)]
            self.in_flight.append(names)
            self.started.append(names)
            self.most = max(self.most, len(self.in_flight))
            self.threads.add(threading.current_thread().name)
        try:
            assert gate.wait(10), f"the test never released {names}"
            return _cert(names)
        finally:
            with self.lock:
                self.in_flight.remove(names)

    def release_all(self) -> None:
        with self.lock:
            self.open = True
            for gate in self.release.values():
                gate.set()


@pytest.fixture
def resolver(tmp_path) -> Iterator[tuple[AcmeResolver, Orders, list[int]]]:
    changes: list[int] = []
    r = AcmeResolver("le", ResolverSettings(storage=str(tmp_path / "acme.json")), lambda: changes.append(1))
    r._renewal.ca_without_ari = True  # noqa: SLF001 - no CA here to ask renewal information of
    orders = Orders()
    r._order = orders  # type: ignore[method-assign]  # noqa: SLF001
    yield r, orders, changes
    orders.release_all()


async def test_two_name_sets_sharing_a_name_never_order_at_once(resolver):
    r, orders, changes = resolver
    shared_a, shared_b = ("a.example.com", "b.example.com"), ("c.example.com", "b.example.com")
    others = [(f"n{i}.example.com",) for i in range(6)]
    r.want([shared_a, shared_b, *others])
    task = asyncio.get_running_loop().create_task(r.run())
    try:
        # The first set and the next three that share no name with it start; the one sharing b waits,
        # and the sets after it do not wait for it.
        await until(lambda: len(orders.in_flight) == PARALLEL_ORDERS)
        assert orders.started == [shared_a, *others[:3]]
        orders.gate(others[0]).set()
        await until(lambda: len(orders.started) == 5)
        assert orders.started[-1] == others[3] and shared_b not in orders.started  # b is still in flight
        orders.gate(shared_a).set()
        await until(lambda: shared_b in orders.started)  # next in line once b is free
        orders.release_all()
        await until(lambda: len(r.certificates()) == 2 + len(others))
    finally:
        task.cancel()
    assert orders.clashes == []
    assert orders.most == PARALLEL_ORDERS and len(orders.threads) == PARALLEL_ORDERS
    assert len(changes) == 2 + len(others)  # on_change once per certificate


async def test_missing_certificates_are_ordered_before_renewals(resolver):
    r, orders, _ = resolver
    due = [(f"old{i}.example.com",) for i in range(PARALLEL_ORDERS)]
    for names in due:
        r._certs[names] = _cert(names, days_left=1)  # noqa: SLF001 - due: less than a third left
    new = [(f"new{i}.example.com",) for i in range(2)]
    r.want([*due, *new])
    task = asyncio.get_running_loop().create_task(r.run())
    try:
        await until(lambda: len(orders.started) == len(new))
        assert orders.started == new  # only the missing ones, though the pool has room for the renewals
        orders.release_all()
        await until(lambda: len(orders.started) == len(new) + len(due))
        orders.release_all()
        later = time.time() + 50 * 86400
        await until(lambda: all(r._certs[n].facts.not_after > later for n in due))  # noqa: SLF001 - renewed
    finally:
        task.cancel()
    assert orders.started[len(new) :] == due


async def test_cancelling_the_run_cancels_the_orders_in_flight(resolver):
    r, orders, changes = resolver
    r.want([(f"n{i}.example.com",) for i in range(PARALLEL_ORDERS + 2)])
    task = asyncio.get_running_loop().create_task(r.run())
    await until(lambda: len(orders.in_flight) == PARALLEL_ORDERS)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    orders.release_all()  # the threads finish their blocking call; nothing more is started or kept
    await until(lambda: not orders.in_flight)
    assert len(orders.started) == PARALLEL_ORDERS and r.certificates() == [] and changes == []


def test_one_thread_registers_the_account_the_others_use_it(tmp_path, monkeypatch):
    """Four worker threads ordering at a fresh start: one registers and stores the account; every other
    thread's issuer is made with that account's key and only looks it up (never a second account)."""
    import acme_client.resolver as resolver_module

    registered: list[tuple[bytes, bool]] = []
    lock = threading.Lock()

    class FakeIssuer:
        def __init__(self, url, key_pem, *a, **kw) -> None:
            self.account_key_pem = key_pem
            self.registration_uri = None

        def register(self, known: bool = False) -> None:
            with lock:
                registered.append((self.account_key_pem, known))
            self.registration_uri = "https://ca/acct/1"

    monkeypatch.setattr(resolver_module, "Issuer", FakeIssuer)
    r = AcmeResolver("le", ResolverSettings(storage=str(tmp_path / "acme.json")), lambda: None)
    barrier = threading.Barrier(PARALLEL_ORDERS)

    def register() -> FakeIssuer:
        r._issuer()  # noqa: SLF001 - made before the account exists, as an ARI question would
        barrier.wait(5)
        return r._register()  # type: ignore[return-value]  # noqa: SLF001

    threads = [r._executor.submit(register) for _ in range(PARALLEL_ORDERS)]  # noqa: SLF001
    issuers = [t.result(10) for t in threads]
    account = r._account  # noqa: SLF001
    assert isinstance(account, StoredAccount)
    assert [known for _, known in registered].count(False) == 1  # one new account
    assert all(key == account.private_key_pem for key, _ in registered)
    assert {i.account_key_pem for i in issuers} == {account.private_key_pem}


async def test_recover_runs_in_a_worker_thread_before_the_first_order_and_on_every_check(tmp_path, caplog):
    """Every pass: a failed cleanup (a DNS record left in the zone) is retried while the proxy runs."""
    r = AcmeResolver("le", ResolverSettings(storage=str(tmp_path / "acme.json")), lambda: None)
    r._renewal.ca_without_ari = True  # noqa: SLF001 - no CA here
    orders = Orders()
    r._order = orders  # type: ignore[method-assign]  # noqa: SLF001
    calls: list[tuple[str, int]] = []

    def recover() -> None:
        calls.append((threading.current_thread().name, len(orders.started)))

    def broken() -> None:
        raise RuntimeError("journal unreadable")

    noop = (lambda d, t, k: None, lambda d, t: None)
    solvers = [Solver("dns-01", *noop, recover=broken), Solver("http-01", *noop, recover=recover)]
    r._solvers = solvers  # noqa: SLF001
    orders.release_all()
    r.want([("a.example.com",), ("b.example.com",)])
    task = asyncio.get_running_loop().create_task(r.run())
    try:
        await until(lambda: len(r.certificates()) == 2)  # a broken recover does not stop the orders
        first_pass = len(calls)
        r.want([("a.example.com",), ("b.example.com",), ("c.example.com",)])  # a later pass: again
        await until(lambda: len(r.certificates()) == 3)
    finally:
        task.cancel()
    assert calls[0][0].startswith("acme-le") and calls[0][1] == 0  # before the first order
    assert len(calls) > first_pass >= 1 and all(name.startswith("acme-le") for name, _ in calls)
    assert "cleaning up dns-01 answers left over failed" in caplog.text
    assert "journal unreadable" in caplog.text


async def test_a_failed_order_is_tried_again_when_its_backoff_ends_not_at_the_next_check(
    tmp_path, monkeypatch
):
    """At a fresh start nothing else kicks the loop: the retry must not wait for the next periodic check
    (up to 10 minutes) once the backoff (1 minute at first; 0.2 s here) is over."""
    import acme_client.resolver as resolver_module
    from acme_client.issuer import AcmeError

    monkeypatch.setattr(resolver_module, "_BACKOFF_MIN", 0.2)
    r = AcmeResolver("le", ResolverSettings(storage=str(tmp_path / "acme.json")), lambda: None)
    r._renewal.ca_without_ari = True  # noqa: SLF001 - no CA here
    r.check_interval = 3600.0
    attempts: list[float] = []

    def order(names: tuple[str, ...]) -> StoredCertificate:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise AcmeError("cannot reach CA: connection refused")
        return _cert(names)

    r._order = order  # type: ignore[method-assign]  # noqa: SLF001
    r.want([("a.example.com",)])
    task = asyncio.get_running_loop().create_task(r.run())
    try:
        await until(lambda: r.certificates(), timeout=10)
    finally:
        task.cancel()
    assert len(attempts) == 2 and attempts[1] - attempts[0] >= 0.2
