"""DNS-01 records are journaled beside the store until cleaned up; only a dead run's entries are leftovers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from acme_client.dns import journal as journal_module
from acme_client.dns.base import TxtRecord
from acme_client.dns.journal import Journal
from acme_client.order_lock import OrderLock

RECORD = TxtRecord("a.test", "_acme-challenge.a.test.", "a.test.", "v1", "tok", "tok.thumb")
OTHER = TxtRecord("a.test", "_acme-challenge.a.test.", "a.test.", "v2", "tok2", "tok2.thumb")


def _entries(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if ".dns-pending." in n)


def _rewrite(folder, **fields) -> None:
    for name in _entries(folder):
        path = folder / name
        entry = json.loads(path.read_text())
        entry.update(fields)
        path.write_text(json.dumps(entry))


def test_add_writes_beside_the_store_and_remove_deletes(tmp_path) -> None:
    j = Journal(str(tmp_path / "acme.json"), "rfc2136")
    j.add(RECORD)
    j.add(OTHER)
    names = _entries(tmp_path)
    assert len(names) == 2 and all(n.startswith(".acme.json.dns-pending.") for n in names)
    entry = json.loads((tmp_path / names[0]).read_text())
    assert entry["provider"] == "rfc2136" and entry["pid"] == os.getpid()
    j.remove(RECORD)
    assert len(_entries(tmp_path)) == 1
    j.remove(RECORD)  # twice: nothing to do
    j.remove(OTHER)
    assert _entries(tmp_path) == []


def test_own_live_entries_are_no_leftovers(tmp_path) -> None:
    j = Journal(str(tmp_path / "acme.json"), "rfc2136")
    j.add(RECORD)
    assert Journal(str(tmp_path / "acme.json"), "rfc2136").leftovers() == []


def test_an_earlier_run_of_this_pid_left_them(tmp_path, monkeypatch) -> None:
    """A restarted container is pid 1 again: same host and pid, another run."""
    Journal(str(tmp_path / "acme.json"), "rfc2136").add(RECORD)
    monkeypatch.setattr(journal_module, "_RUN", "a-later-run")
    assert Journal(str(tmp_path / "acme.json"), "rfc2136").leftovers() == [RECORD]


def test_a_dead_process_of_this_host_left_them(tmp_path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    Journal(str(tmp_path / "acme.json"), "rfc2136").add(RECORD)
    _rewrite(tmp_path, pid=int(dead.stdout), run="dead-run")
    found = Journal(str(tmp_path / "acme.json"), "rfc2136").leftovers()
    assert found == [RECORD]
    assert found[0].key_authorization == "tok.thumb"  # exec/httpreq RAW cleanups need it


def test_a_live_process_of_this_host_is_left_alone(tmp_path) -> None:
    """Host+pid fallback (an entry without an order lock): a replica starting beside a live one on this
    host leaves the live one's records alone; once it is an hour old, the entry is a leftover."""
    Journal(str(tmp_path / "acme.json"), "rfc2136").add(RECORD)
    _rewrite(tmp_path, pid=os.getppid(), run="other-live-run")  # the parent: alive while this test runs
    j = Journal(str(tmp_path / "acme.json"), "rfc2136")
    assert j.leftovers() == []
    _rewrite(tmp_path, at=time.time() - 3601)
    assert j.leftovers() == [RECORD]


def test_a_live_replica_elsewhere_is_left_alone_for_an_hour(tmp_path) -> None:
    Journal(str(tmp_path / "acme.json"), "rfc2136").add(RECORD)
    _rewrite(tmp_path, host=f"not-{socket.gethostname()}", run="other")
    j = Journal(str(tmp_path / "acme.json"), "rfc2136")
    assert j.leftovers() == []
    _rewrite(tmp_path, at=time.time() - 3601)
    assert j.leftovers() == [RECORD]


def test_other_providers_and_garbage_are_ignored(tmp_path) -> None:
    Journal(str(tmp_path / "acme.json"), "cloudflare").add(RECORD)
    _rewrite(tmp_path, run="other", at=0)
    (tmp_path / ".acme.json.dns-pending.junk.json").write_text("{not json")
    assert Journal(str(tmp_path / "acme.json"), "rfc2136").leftovers() == []
    assert Journal(str(tmp_path / "acme.json"), "cloudflare").leftovers() == [RECORD]


def test_memory_only_journal_has_no_leftovers(tmp_path) -> None:
    j = Journal(None, "rfc2136")
    j.add(RECORD)
    j.remove(RECORD)
    assert j.leftovers() == [] and os.listdir(tmp_path) == []


def test_unwritable_folder_is_said_once(tmp_path, caplog) -> None:
    j = Journal(str(tmp_path / "missing" / "acme.json"), "rfc2136")
    j.add(RECORD)
    j.add(OTHER)
    assert len([r for r in caplog.records if "cannot journal" in r.getMessage()]) == 1


# -- entries written by an order: a leftover exactly when that order's lock is free --------------------


def _under_lock(tmp_path, record: TxtRecord, names=("a.test",)) -> OrderLock:
    """``record`` journaled by an order that holds the order lock of ``names`` (still held: release it)."""
    lock = OrderLock(str(tmp_path / "acme.json"), "le", names)
    lock.acquire()
    Journal(str(tmp_path / "acme.json"), "rfc2136").add(record)
    return lock


def test_an_entry_names_the_order_lock_its_order_held(tmp_path) -> None:
    _under_lock(tmp_path, RECORD, ("b.test", "a.test")).release()
    (entry,) = (json.loads((tmp_path / n).read_text()) for n in _entries(tmp_path))
    assert entry["resolver"] == "le" and entry["names"] == ["a.test", "b.test"]


def test_a_running_orders_entry_is_kept_whoever_wrote_it(tmp_path) -> None:
    """Held lock: the order runs (here, in this very process), even if host and pid say nothing or the
    writer looks dead (another pid namespace, a recreated container's new host name)."""
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    lock = _under_lock(tmp_path, RECORD)
    try:
        _rewrite(tmp_path, pid=int(dead.stdout), run="dead-run", at=time.time() - 7200)
        assert Journal(str(tmp_path / "acme.json"), "rfc2136").leftovers() == []
    finally:
        lock.release()
    assert Journal(str(tmp_path / "acme.json"), "rfc2136").leftovers() == [RECORD]


def test_a_free_locks_entry_is_a_leftover_whoever_wrote_it(tmp_path) -> None:
    """Lock free: nobody orders those names, so the entry is left over, be it this run's own (a failed
    cleanup), a live process's on this host, or a young one from another host name."""
    _under_lock(tmp_path, RECORD).release()
    j = Journal(str(tmp_path / "acme.json"), "rfc2136")
    assert j.leftovers() == [RECORD]  # this run's, this pid (alive)
    _rewrite(tmp_path, host=f"not-{socket.gethostname()}", run="other", at=time.time())
    assert j.leftovers() == [RECORD]


def test_the_sweep_holds_the_order_lock_while_it_cleans(tmp_path) -> None:
    _under_lock(tmp_path, RECORD).release()
    seen: list[bool | None] = []

    def clean(record: TxtRecord) -> None:
        seen.append(OrderLock(str(tmp_path / "acme.json"), "le", ["a.test"]).try_acquire())

    Journal(str(tmp_path / "acme.json"), "rfc2136").sweep(clean)
    assert seen == [False]  # an order of a.test waits until the cleanup is done
    after = OrderLock(str(tmp_path / "acme.json"), "le", ["a.test"])
    assert after.try_acquire() is True
    after.release()
