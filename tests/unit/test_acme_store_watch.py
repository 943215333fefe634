"""acme_client.shared_store.StoreWatch and with_newer: a certificate another process writes to acme.json
is read (in the watch's thread, only when the file changed) and handed to the resolver; a broken write is
said once and changes nothing served."""

from __future__ import annotations

import asyncio
import logging
import os
import time

from acme_client.order_lock import StoreLock
from acme_client.shared_store import StoreWatch, with_newer
from acme_client.storage import AcmeStorage, ResolverState, StoredCertificate
from tests.polling import until
from tests.unit.test_acme_resolver import _cert


def _renewed(cert: StoredCertificate, days_left: float) -> StoredCertificate:
    """Another certificate under the same name set (what a renewal stores)."""
    return _cert(cert.main, 1, days_left)


def _write_garbage(path: str) -> None:
    """What a broken writer leaves: not JSON, renamed over the store under the store's lock."""
    with StoreLock(path):
        tmp = path + ".partial"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, b'{"le": {"Certificates": [')
        os.close(fd)
        os.replace(tmp, path)


def test_with_newer_takes_later_expiring_and_new_name_sets_only():
    held = _cert("a.test", 10, 80)
    key = ("a.test",)
    assert with_newer({key: held}, [held], "le", "acme.json") is None  # the same one
    assert with_newer({key: held}, [_renewed(held, 50)], "le", "acme.json") is None  # older
    assert with_newer({key: held}, [_renewed(held, -1)], "le", "acme.json") is None  # expired
    later, other = _renewed(held, 85), _cert("b.test", 1, 90)
    got = with_newer({key: held}, [later, other], "le", "acme.json")
    assert got == {key: later, ("b.test",): other}
    assert with_newer({key: held, ("b.test",): other}, [later], "le", "acme.json") == {
        key: later,
        ("b.test",): other,
    }  # a name set the other process no longer stores stays served


async def test_watch_delivers_what_another_process_wrote(tmp_path, caplog):
    path = str(tmp_path / "acme.json")
    first = _cert("a.test", 10, 80)
    AcmeStorage(path).put_certificate("le", first)
    mine = AcmeStorage(path)
    mine.load()  # what the resolver read at start
    got: list[ResolverState] = []
    watch = StoreWatch(mine, "le", asyncio.get_running_loop(), got.append)

    watch.look()
    await asyncio.sleep(0)
    assert got == []  # unchanged: not even read

    renewed = _renewed(first, 85)
    AcmeStorage(path).put_certificate("le", renewed)  # another process, its own storage object
    watch.look()
    await until(lambda: got)
    assert [c.certificate_pem for c in got[0].certificates] == [renewed.certificate_pem]

    with caplog.at_level(logging.ERROR, logger="dockroute.acme"):
        _write_garbage(path)
        watch.look()
        watch.look()
        await asyncio.sleep(0)
    said = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(said) == 1 and path in said[0], said  # once, naming the file
    assert len(got) == 1  # nothing delivered: what is served stays
    with open(path, "rb") as f:
        assert f.read().startswith(b'{"le"')  # left where it is for its writer, not moved aside


async def test_watch_thread_polls_and_stops(tmp_path):
    path = str(tmp_path / "acme.json")
    mine = AcmeStorage(path)
    mine.load()  # no file yet
    got: list[ResolverState] = []
    watch = StoreWatch(mine, "le", asyncio.get_running_loop(), got.append, interval=0.05)
    watch.start()
    try:
        cert = _cert("a.test", 1, 90)
        started = time.monotonic()
        AcmeStorage(path).put_certificate("le", cert)
        await until(lambda: got, timeout=5)
        assert time.monotonic() - started < 2
    finally:
        watch.stop()
    watch._thread.join(5)
    assert not watch._thread.is_alive()


async def test_watch_never_reads_back_this_process_own_write(tmp_path):
    """What this process wrote it holds already: the next look neither reads nor parses the store again."""
    path = str(tmp_path / "acme.json")
    mine = AcmeStorage(path)
    mine.load()
    got: list[ResolverState] = []
    watch = StoreWatch(mine, "le", asyncio.get_running_loop(), got.append)
    reloads: list[object] = []
    reload = mine.reload
    mine.reload = lambda: reloads.append(1) or reload()  # type: ignore[method-assign]
    mine.put_certificate("le", _cert("a.test", 10, 80))
    watch.look()
    await asyncio.sleep(0)
    assert reloads == [] and got == []
    mine.save({"le": ResolverState(certificates=(_cert("b.test", 10, 80),))})
    watch.look()
    await asyncio.sleep(0)
    assert reloads == [] and got == []
