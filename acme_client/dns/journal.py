"""The DNS-01 records a process has presented and not yet cleaned up, kept beside the store.

A record is journaled BEFORE it is presented and the entry removed only after its cleanup succeeded, so
whatever a crash, a kill or a failing DNS API leaves in a zone is known to the next start, which cleans it
up (``recover``). One small file per record, ``.<store>.dns-pending.<key>.json`` (like the challenge
answers of :mod:`acme_client.shared_challenges`): concurrent orders and replicas sharing the folder never
rewrite each other's entries. Each entry names the process that wrote it (host, pid, a per-run id), so a
replica starting beside a live one leaves the live one's records alone: an entry is a leftover when it
is this host's and its process is gone (or is this one's pid from an earlier run: a restarted container
is pid 1 again), or when it is over an hour old (another host's, whose process cannot be checked).

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
import tempfile
import threading
import time
import uuid

from acme_client.dns.base import TxtRecord

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
        self._prefix = ""
        if store is not None:
            folder, base = os.path.split(os.path.realpath(os.fspath(store)))
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
        try:
            fd, tmp = tempfile.mkstemp(prefix=".dns-pending.", suffix=".tmp", dir=self.folder)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(entry, f)
                os.replace(tmp, self._path(key))
            except BaseException:
                os.unlink(tmp)
                raise
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
        """Records of this provider that a dead process (or an earlier run of this one) presented and
        never cleaned up (see the module's doc for how "dead" is judged)."""
        if self.folder is None:
            return []
        try:
            names = sorted(
                n for n in os.listdir(self.folder) if n.startswith(self._prefix) and n.endswith(".json")
            )
        except OSError:
            return []
        found = []
        for name in names:
            entry = self._read(os.path.join(self.folder, name))
            if entry is not None and entry.get("provider") == self.provider and self._abandoned(entry):
                found.append(TxtRecord(**{f: str(entry.get(f, "")) for f in _FIELDS}))
        return found

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
