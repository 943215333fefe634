"""The DNS-01 records a process has presented and not yet cleaned up, kept beside the store.

A record is journaled BEFORE it is presented and the entry removed only after its cleanup succeeded, so
whatever a crash, a kill or a failing DNS API leaves in a zone is known, and cleaned up by the sweep
(:meth:`Journal.sweep`, the solver's ``recover``) that the resolver runs on every check pass. One small
file per record, ``.<store>.dns-pending.<key>.json`` (like the challenge answers of
:mod:`acme_client.shared_challenges`): concurrent orders and replicas sharing the folder never rewrite
each other's entries.

An entry is a leftover when the order that wrote it no longer runs, whoever wrote it: each entry names
the order lock its order held (resolver and name set, :mod:`acme_client.order_lock`: an ``flock`` beside
the store, which the kernel drops when its holder dies), and the sweep takes that lock without waiting.
Taken: no process (this one included) is ordering those names, so the record is cleaned up under the
lock; held: the order runs, its record is left alone. Host names and pids say nothing across containers
(a recreated container has a new host name, replicas in their own pid namespaces are all pid 1).
An entry without a lock (written where locks cannot be used) falls back to host and pid: a leftover when
this host's process that wrote it is gone (or is this pid of an earlier run), or after an hour;
such an entry of this very run (a failed cleanup) waits for the next start.

A store that is no folder (``kubernetes://``) has an in-memory journal: cleanup after a failure still
happens, but a crash forgets what was presented (said once at start).

Everything here blocks: worker threads only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

from acme_client.dns.base import TxtRecord
from acme_client.order_lock import OrderLock, held_here
from acme_client.side_files import replace_file

__all__ = ["Journal"]

log = logging.getLogger("dockroute.acme")

_RUN = uuid.uuid4().hex  # this process's run: tells a restarted container's pid 1 from the earlier one's
_STALE_AFTER = 3600.0
_MAX_ENTRY = 8192
_FIELDS = ("domain", "fqdn", "zone", "value", "token", "key_authorization")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone else's process, alive
        return True
    return True


class Journal:
    """Pending records of one provider beside ``store`` (None: memory only)."""

    def __init__(self, store: str | None, provider: str) -> None:
        self.provider = provider
        self._memory: dict[str, TxtRecord] = {}
        self._lock = threading.Lock()
        self._warned = False
        self.folder: str | None = None
        self._store = ""
        self._prefix = ""
        if store is not None:
            self._store = os.path.realpath(os.fspath(store))
            folder, base = os.path.split(self._store)
            self.folder, self._prefix = folder or ".", f".{base}.dns-pending."

    def _key(self, record: TxtRecord) -> str:
        digest = hashlib.sha256(f"{self.provider}\0{record.fqdn}\0{record.value}".encode()).hexdigest()
        return digest[:32]

    def _path(self, key: str) -> str:
        assert self.folder is not None
        return os.path.join(self.folder, f"{self._prefix}{key}.json")

    def add(self, record: TxtRecord) -> None:
        """Remember ``record`` before it is presented. A folder we cannot write in is said once; the
        record is then remembered in memory only (cleanup still happens, a crash forgets it)."""
        key = self._key(record)
        with self._lock:
            self._memory[key] = record
        if self.folder is None:
            return
        entry = {f: getattr(record, f) for f in _FIELDS}
        entry.update(
            provider=self.provider, host=socket.gethostname(), pid=os.getpid(), run=_RUN, at=time.time()
        )
        order = held_here()  # the order lock this thread holds: the entry is a leftover once it is free
        if order is not None:
            entry.update(resolver=order[0], names=list(order[1]))
        try:
            replace_file(self._path(key), json.dumps(entry), ".dns-pending.")
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning(
                    "cannot journal DNS-01 records in %s (%s): a crash would leave them in the zone",
                    self.folder,
                    exc,
                )

    def remove(self, record: TxtRecord) -> None:
        """Forget ``record``: its cleanup succeeded."""
        key = self._key(record)
        with self._lock:
            self._memory.pop(key, None)
        if self.folder is not None:
            try:
                os.unlink(self._path(key))
            except OSError:
                pass  # never written (warned then), or gone

    def leftovers(self) -> list[TxtRecord]:
        """Records of this provider whose order no longer runs (see the module's doc), as of now."""
        return list(self._claimed())

    def sweep(self, clean: Callable[[TxtRecord], object]) -> None:
        """``clean`` each record whose order no longer runs, holding that order's lock meanwhile (the
        names are not ordered again under our feet). Cheap when nothing is journaled: one listdir."""
        for record in self._claimed():
            clean(record)

    def _claimed(self) -> Iterator[TxtRecord]:
        if self.folder is None:
            return
        try:
            names = sorted(
                n for n in os.listdir(self.folder) if n.startswith(self._prefix) and n.endswith(".json")
            )
        except OSError:
            return
        for name in names:
            entry = self._read(os.path.join(self.folder, name))
            if entry is None or entry.get("provider") != self.provider:
                continue
            record = TxtRecord(**{f: str(entry.get(f, "")) for f in _FIELDS})
            lock = self._order_lock(entry)
            taken = lock.try_acquire() if lock is not None else None
            if taken is None:  # no lock recorded, or locks unusable here: judged by host and pid
                if self._abandoned(entry):
                    yield record
            elif taken:
                assert lock is not None
                try:
                    yield record
                finally:
                    lock.release()

    def _order_lock(self, entry: dict) -> OrderLock | None:
        resolver, names = entry.get("resolver"), entry.get("names")
        if not isinstance(resolver, str) or not isinstance(names, list) or not names:
            return None
        if not all(isinstance(n, str) for n in names):
            return None
        return OrderLock(self._store, resolver, names, timeout=0)

    @staticmethod
    def _read(path: str) -> dict | None:
        try:
            with open(path, "rb") as f:
                data = f.read(_MAX_ENTRY + 1)
            entry = json.loads(data) if len(data) <= _MAX_ENTRY else None
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(f), str) for f in ("fqdn", "zone", "value")
        ):
            return None
        return entry

    @staticmethod
    def _abandoned(entry: dict) -> bool:
        if entry.get("run") == _RUN:
            return False
        at = entry.get("at")
        if not isinstance(at, int | float) or time.time() - at > _STALE_AFTER:
            return True
        pid = entry.get("pid")
        if entry.get("host") != socket.gethostname() or not isinstance(pid, int):
            return False
        return pid == os.getpid() or not _alive(pid)
