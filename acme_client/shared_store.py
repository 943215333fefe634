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
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from acme_client import shared_alpn
from acme_client.covering import covering
from acme_client.order_lock import OrderLockTimeout
from acme_client.storage import AcmeStorage, ResolverState, StorageError, StoredAccount, StoredCertificate
from acme_client.tls_alpn import challenge_certificate

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
        alpn: Callable[[dict[str, tuple[bytes, bytes]]], None] | None = None,
    ) -> None:
        self.storage = storage
        self.resolver = resolver
        self.loop = loop
        self.deliver = deliver
        self.interval = interval
        # given: TLS-ALPN-01 answers of other replicas too (domain → certificate, key), from files beside
        # a file store
        self.alpn = alpn if storage.shares_files else None
        self._last = storage.seen  # the file the resolver loaded at start
        self._folder_seen: int | None = None
        self._answers: dict[str, str] = {}  # domain → key authorization, as last handed over
        self._alpn_certs: dict[str, tuple[bytes, bytes]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"acme-watch-{resolver}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ends the thread at its next look (it never blocks the caller)."""
        self._stop.set()

    def _run(self) -> None:
        if self.alpn is not None:
            shared_alpn.join(self.storage.path)  # orderers of TLS-ALPN-01 answers wait for this one
        try:
            while not self._stop.wait(self.interval):
                try:
                    self.look()
                except Exception:  # a bug: said, and the watch goes on
                    log.exception("resolver %s: watching %s failed", self.resolver, self.storage.path)
        finally:
            if self.alpn is not None:
                shared_alpn.leave(self.storage.path)

    def look(self) -> None:
        """One look at the store, and at the TLS-ALPN-01 answers beside it when asked to."""
        self._look_store()
        if self.alpn is not None:
            self._look_answers()

    def _look_answers(self) -> None:
        """When the store's folder changed (or changed within the last second: a file created in the same
        clock tick as the last look leaves the same time), the TLS-ALPN-01 answers published there get
        their certificates made here, handed to the loop, and only then acknowledged."""
        folder = os.path.dirname(os.path.realpath(self.storage.path)) or "."
        try:
            seen = os.stat(folder).st_mtime_ns
        except OSError:
            return
        if seen == self._folder_seen and time.time_ns() - seen > 1_000_000_000:
            return
        self._folder_seen = seen
        answers = shared_alpn.pending_answers(self.storage.path)
        if answers == self._answers:
            return
        old = self._answers
        certs = {
            domain: self._alpn_certs[domain] if old.get(domain) == ka else challenge_certificate(domain, ka)
            for domain, ka in answers.items()
        }
        if not self._hand_over(certs):
            self._folder_seen = None  # not taken: look again next time
            return
        self._answers, self._alpn_certs = answers, certs
        for domain, key_authorization in answers.items():
            if old.get(domain) != key_authorization:
                shared_alpn.acknowledge(self.storage.path, domain, key_authorization)

    def _hand_over(self, certs: dict[str, tuple[bytes, bytes]]) -> bool:
        """``certs`` to the ``alpn`` callback on the loop; True once it ran there."""
        assert self.alpn is not None
        done = threading.Event()
        alpn = self.alpn

        def apply() -> None:
            alpn(certs)
            done.set()

        try:
            self.loop.call_soon_threadsafe(apply)
        except RuntimeError:  # the loop is closed: the process is stopping
            self._stop.set()
            return False
        return done.wait(5.0)

    def _look_store(self) -> None:
        """Read the store if it changed since last read, and deliver what it holds."""
        try:
            now = self.storage.signature()
        except OSError:
            return  # the folder is unreadable for now: the next order says why
        if now == self._last:
            return
        if now == self.storage.written:  # this process's own write: what it holds already
            self._last = now
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
