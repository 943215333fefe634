"""What a process sharing ``acme.json`` with others finds there: once it holds the order lock
(:func:`newer_in_store`), and whenever another process writes the file (:class:`StoreWatch`).

Why poll ``stat`` rather than inotify: a write by a process on another host of a shared volume (NFS) raises
no inotify event here, and a ``stat`` every two seconds costs nothing measurable. The file is read (and its
certificates parsed) only when its inode, size or modification time changed, in the watch's own thread:
the resolver's worker thread may be busy for minutes with an order or a wait on another process's lock.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from acme_client.covering import covering
from acme_client.order_lock import OrderLockTimeout
from acme_client.storage import AcmeStorage, ResolverState, StorageError, StoredAccount, StoredCertificate

__all__ = ["StoreWatch", "newer_in_store", "stored_account", "with_newer"]

log = logging.getLogger("dockroute.acme")

WATCH_INTERVAL = 2.0  # seconds between two looks at the store's signature


def newer_in_store(
    storage: AcmeStorage, resolver: str, names: tuple[str, ...], current: StoredCertificate | None
) -> StoredCertificate | None:
    """A certificate for ``names`` that another process wrote to ``storage``: unexpired and expiring later
    than ``current`` (the one this process judged missing or due). Blocks: worker thread only."""
    state = storage.load().get(resolver)
    if state is None:
        return None
    stored = covering(names, state.certificates)
    if stored is None or stored.facts.not_after <= time.time():
        return None
    if current is not None and stored.facts.not_after <= current.facts.not_after:
        return None
    stored.names  # noqa: B018 - parsed here, in the worker thread, not on the event loop
    return stored


def stored_account(storage: AcmeStorage, resolver: str) -> StoredAccount | None:
    """The account another process registered and stored for ``resolver``, if any (worker thread)."""
    state = storage.load().get(resolver)
    return state.account if state is not None else None


Key = tuple[str, ...]


def with_newer(
    held: Mapping[Key, StoredCertificate], stored: Iterable[StoredCertificate], resolver: str, path: str
) -> dict[Key, StoredCertificate] | None:
    """``held`` (a resolver's certificates) with those of ``stored`` (what another process wrote to
    ``path``) that are unexpired and, for a name set already held, expire later: a new dict, or None when
    there are none. Never fewer: a certificate another process dropped or broke stays served here."""
    now = time.time()
    newer: dict[Key, StoredCertificate] = {}
    for cert in stored:
        key = (cert.main, *cert.sans)
        mine = held.get(key)
        if cert.facts.not_after > now and (mine is None or cert.facts.not_after > mine.facts.not_after):
            newer[key] = cert
            log.info(
                "resolver %s: certificate for %s written to %s by another process, now served (until %s)",
                resolver,
                ", ".join(key),
                path,
                cert.not_after,
            )
    return {**held, **newer} if newer else None


class StoreWatch:
    """Looks at ``storage`` every ``interval`` seconds in a daemon thread; when another process wrote it,
    reads it there and hands ``resolver``'s state to ``deliver`` on ``loop``. A file that cannot be read
    is logged once per write, and nothing is delivered: what is served stays."""

    def __init__(
        self,
        storage: AcmeStorage,
        resolver: str,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[ResolverState], None],
        interval: float = WATCH_INTERVAL,
    ) -> None:
        self.storage = storage
        self.resolver = resolver
        self.loop = loop
        self.deliver = deliver
        self.interval = interval
        self._last = storage.seen  # the file the resolver loaded at start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"acme-watch-{resolver}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ends the thread at its next look (it never blocks the caller)."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.look()
            except Exception:  # a bug: said, and the watch goes on
                log.exception("resolver %s: watching %s failed", self.resolver, self.storage.path)

    def look(self) -> None:
        """One look: read the store if it changed since last read, and deliver what it holds."""
        try:
            now = self.storage.signature()
        except OSError:
            return  # the folder is unreadable for now: the next order says why
        if now == self._last:
            return
        try:
            states, self._last = self.storage.reload()
        except OrderLockTimeout:
            return  # a writer holds the store's lock this long: look again next time
        except StorageError as exc:
            self._last = now
            log.error(
                "resolver %s: %s was changed by another process but cannot be read (%s); "
                "serving the certificates already read from it",
                self.resolver,
                self.storage.path,
                exc,
            )
            return
        state = states.get(self.resolver)
        if state is None:
            return
        for cert in state.certificates:
            cert.names  # noqa: B018 - parsed here, not on the event loop
        try:
            self.loop.call_soon_threadsafe(self.deliver, state)
        except RuntimeError:  # the loop is closed: the process is stopping
            self._stop.set()
