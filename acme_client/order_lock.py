"""One orderer per name across processes sharing one ``acme.json`` (replicas on one host, a shared volume).

certmagic's pattern: before ordering a name set, a process takes the lock for (resolver, names) next to the
store, re-reads the store, orders only if the certificate is still missing or still due, writes it, and
releases. A process that waited on the lock finds the certificate the holder wrote and serves it instead
of ordering a second one.

Why ``flock`` on a per-name lock file rather than a lock file created with ``O_CREAT|O_EXCL``:

- the kernel drops an ``flock`` when its holder dies, however it dies (SIGKILL, OOM killer, a container
  stopped with ``docker kill``): the next process gets the lock at once, with no expiry to guess, no
  heartbeat thread refreshing it during a long order, and no risk of two holders when a slow holder's
  expiry passes while it is still ordering;
- an ``O_EXCL`` file outlives a killed holder and needs such an expiry, plus a pid/host check that means
  nothing across containers (pid namespaces) or hosts.

The lock files are never deleted (deleting a flocked file races with a process opening it): one small
empty file per name set, ``.<store>.lock.<resolver>.<hash>``, beside the store. On Linux, ``flock`` on
NFS is carried by NFS byte-range locks, so a shared NFSv4 volume works too; a filesystem without locks
makes ``flock`` fail, and the order then goes ahead without one (said once in the log), as before.

Everything here blocks: call it from a worker thread, never from the event loop. Waiting polls with
``LOCK_NB`` so that a wait has a deadline.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterable

log = logging.getLogger("dockroute.acme")

__all__ = ["OrderLock", "OrderLockTimeout", "StoreLock", "held_here", "lock_path"]

_POLL = 0.1  # seconds between two tries while another process holds the lock
_warned: set[str] = set()  # folders already said to refuse locks: said once, not on every order
_held = threading.local()  # .stack: (resolver, names) of the order locks this thread holds, innermost last


def held_here() -> tuple[str, tuple[str, ...]] | None:
    """``(resolver, sorted names)`` of the innermost order lock this thread holds, None when it holds none
    (or its lock could not be used). What an order leaves beside the store (a DNS-01 journal entry)
    records it: the entry is a leftover once that lock is free again (:meth:`OrderLock.try_acquire`)."""
    stack = _stack()
    return stack[-1] if stack else None


def _stack() -> list[tuple[str, tuple[str, ...]]]:
    stack = getattr(_held, "stack", None)
    if stack is None:
        stack = _held.stack = []
    return stack


def _cannot_lock(path: str, exc: OSError) -> None:
    folder = os.path.dirname(path)
    if folder not in _warned:
        _warned.add(folder)
        log.warning("cannot lock %s (%s); ordering without a lock shared with other processes", path, exc)


class OrderLockTimeout(Exception):
    """Another process held the lock past the deadline (an order that hangs there)."""


def lock_path(store: str, resolver: str, names: Iterable[str]) -> str:
    """The lock file for ``names`` of ``resolver``, beside ``store`` (the same for every process, whatever
    the order of the names)."""
    target = os.path.realpath(os.fspath(store))
    folder, base = os.path.split(target)
    digest = hashlib.sha256("\n".join([resolver, *sorted(names)]).encode()).hexdigest()[:32]
    return os.path.join(folder or ".", f".{base}.lock.{digest}")


class OrderLock:
    """``with OrderLock(store, resolver, names, timeout=...) as lock:`` — held across processes until the
    block ends; ``lock.waited`` tells whether another process held it first (then re-read the store)."""

    _what = "ordering this certificate"  # what a holder does, for the log line of a waiter

    def __init__(self, store: str, resolver: str, names: Iterable[str], timeout: float = 900.0) -> None:
        self.resolver, self.names = resolver, tuple(sorted(names))
        self.path = lock_path(store, resolver, self.names)
        self.timeout = timeout
        self.waited = False
        self.held = False  # False too when the lock could not be used at all (see the module docstring)
        self._fd = -1
        self._pushed = False  # on this thread's held_here() stack

    def acquire(self) -> None:
        try:
            fd = self._open()
        except OSError as exc:
            _cannot_lock(self.path, exc)
            return
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pass
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    _cannot_lock(self.path, exc)
                    return
            if not self.waited:
                self.waited = True
                log.info("another process is %s (%s held); waiting", self._what, self.path)
            if time.monotonic() >= deadline:
                os.close(fd)
                raise OrderLockTimeout(f"{self.path} held by another process for over {self.timeout:.0f}s")
            time.sleep(_POLL)
        self._fd = fd
        self.held = True
        self._note_holder()
        if self._tracked:
            self._pushed = True
            _stack().append((self.resolver, self.names))

    def try_acquire(self) -> bool | None:
        """Take the lock only if nobody holds it now (no process, and no other thread of this one: each
        ``flock`` is on its own open file), without waiting and without saying so: True when taken (then
        :meth:`release` it), False when held, None when the lock cannot be used here."""
        try:
            fd = self._open()
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            return False if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK) else None
        self._fd = fd
        self.held = True
        return True

    _tracked = True  # order locks are what held_here() tells

    def _open(self) -> int:
        return os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)

    def _note_holder(self) -> None:
        fd = self._fd
        try:  # who holds it, for a human looking at the folder; never read back
            os.ftruncate(fd, 0)
            os.pwrite(
                fd, f"pid {os.getpid()} host {os.uname().nodename} since {time.time():.0f}\n".encode(), 0
            )
        except OSError:
            pass

    def release(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            self.held = False
            if self._pushed:  # released by the thread that took it (a with block)
                self._pushed = False
                with contextlib.suppress(ValueError):
                    _stack().remove((self.resolver, self.names))
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __enter__(self) -> OrderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class StoreLock(OrderLock):
    """The lock around one read-modify-write of the store: an ``flock`` on the store's folder itself,
    whose inode, unlike the store's, survives the atomic rename of every write, and which needs no file
    of its own (the folder of a store mounted alone may not be ours to write in). Stores sharing a folder
    share this lock: each write is short."""

    _what = "writing the store"
    _tracked = False

    def __init__(self, store: str, timeout: float = 60.0) -> None:
        super().__init__(store, "", (), timeout)
        self.path = os.path.dirname(os.path.realpath(os.fspath(store))) or "."

    def _open(self) -> int:
        return os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))

    def _note_holder(self) -> None:
        pass
