"""TLS-ALPN-01 answers pushed to the replicas of one store (acme_client.shared_alpn and the store watch):
a live replica (one holding its membership lock) takes a published answer, makes its certificate and
acknowledges it, and the orderer waits for exactly the live ones; a dead replica's file is removed, never
waited for."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import subprocess
import sys
import time

from acme_client import shared_alpn, shared_challenges
from acme_client.shared_store import StoreWatch
from acme_client.storage import AcmeStorage
from tests.polling import until

DOMAIN = "a.example.com"
KEY_AUTH = "tok.thumb"


def _other_process_member(store: str) -> subprocess.Popen[bytes]:
    """A process that joins ``store``'s replicas and holds on until killed (another replica)."""
    code = (
        "import sys, time; from acme_client import shared_alpn; "
        f"shared_alpn.join({store!r}); print(shared_alpn.PROCESS_ID, flush=True); time.sleep(60)"
    )
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=os.getcwd())


def test_live_replicas_are_the_ones_holding_their_lock(tmp_path):
    store = str(tmp_path / "acme.json")
    shared_alpn.join(store)
    try:
        assert shared_alpn.live_others(store) == []  # itself is never counted
        other = _other_process_member(store)
        try:
            pid = other.stdout.readline().decode().strip()  # type: ignore[union-attr]
            assert shared_alpn.live_others(store) == [pid]
        finally:
            other.kill()
            other.wait()
        assert shared_alpn.live_others(store) == []  # its lock died with it: file removed
        assert not [n for n in os.listdir(tmp_path) if n.endswith(pid)]
    finally:
        shared_alpn.leave(store)
    assert os.listdir(tmp_path) == []


def test_orderer_alone_waits_for_nothing_and_a_silent_replica_is_named(tmp_path, caplog):
    store = str(tmp_path / "acme.json")
    started = time.monotonic()
    shared_alpn.wait_for_replicas(store, DOMAIN, KEY_AUTH)
    assert time.monotonic() - started < 0.5
    path = tmp_path / ".acme.json.replica.999-silent"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)  # alive (another open file description holds it), never acknowledges
    try:
        with caplog.at_level(logging.WARNING, logger="dockroute.acme"):
            shared_alpn.wait_for_replicas(store, DOMAIN, KEY_AUTH, timeout=0.3)
        assert "999-silent" in caplog.text and DOMAIN in caplog.text
        shared_alpn.acknowledge(store, DOMAIN, KEY_AUTH)  # as this process: not the silent one
        os.rename(  # the silent replica acknowledges the same answer: now nothing is waited for
            tmp_path / f".acme.json.ack.{DOMAIN}_{shared_alpn.PROCESS_ID}",
            tmp_path / f".acme.json.ack.{DOMAIN}_999-silent",
        )
        started = time.monotonic()
        shared_alpn.wait_for_replicas(store, DOMAIN, KEY_AUTH, timeout=5)
        assert time.monotonic() - started < 0.5
        shared_alpn.withdraw_acks(store, DOMAIN)
        assert not list(tmp_path.glob(".acme.json.ack.*"))
    finally:
        os.close(fd)


async def test_watch_takes_another_process_answer_then_acknowledges_it(tmp_path):
    store = str(tmp_path / "acme.json")
    got: list[dict[str, tuple[bytes, bytes]]] = []
    watch = StoreWatch(AcmeStorage(store), "le", asyncio.get_running_loop(), lambda s: None, alpn=got.append)
    shared_challenges.publish_answer(store, "tls-alpn-01", DOMAIN, KEY_AUTH)  # as another process writes it
    AcmeStorage(store).publish_answer("tls-alpn-01", "mine.example.com", "x")  # this process's: held already
    await asyncio.to_thread(watch.look)
    assert list(got[-1]) == [DOMAIN] and got[-1][DOMAIN][0].startswith(b"-----BEGIN CERTIFICATE")
    ack = tmp_path / f".acme.json.ack.{DOMAIN}_{shared_alpn.PROCESS_ID}"
    assert ack.read_text() == KEY_AUTH  # acknowledged once the loop had it
    shared_challenges.withdraw_answer(store, "tls-alpn-01", DOMAIN)  # the other process is done
    shared_alpn.withdraw_acks(store, DOMAIN)
    assert not ack.exists()
    await asyncio.to_thread(watch.look)
    await until(lambda: got[-1] == {})  # withdrawn: no longer presented
    AcmeStorage(store).withdraw_answer("tls-alpn-01", "mine.example.com")


def test_publishing_a_tls_alpn_answer_waits_for_the_live_replicas_acknowledgement(
    tmp_path, caplog, monkeypatch
):
    """AcmeStorage.publish_answer returns (and the CA is told) only once every live replica took the answer,
    or after the bounded wait, naming the silent one."""
    store = str(tmp_path / "acme.json")
    waited: list[tuple[str, str]] = []
    real_wait = shared_alpn.wait_for_replicas

    def short_wait(path: str, domain: str, key_authorization: str, timeout: float = 0.3) -> None:
        waited.append((domain, key_authorization))
        real_wait(path, domain, key_authorization, timeout=0.3)

    monkeypatch.setattr(shared_alpn, "wait_for_replicas", short_wait)
    fd = os.open(tmp_path / ".acme.json.replica.999-silent", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)  # a live replica that never acknowledges
    try:
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="dockroute.acme"):
            AcmeStorage(store).publish_answer("tls-alpn-01", DOMAIN, KEY_AUTH)
        assert waited == [(DOMAIN, KEY_AUTH)]
        assert 0.3 <= time.monotonic() - started < 5  # waited for it, within the bound
        assert "999-silent" in caplog.text and DOMAIN in caplog.text
    finally:
        os.close(fd)
        AcmeStorage(store).withdraw_answer("tls-alpn-01", DOMAIN)
