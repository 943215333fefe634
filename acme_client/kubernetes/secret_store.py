"""``acme.json`` in a Kubernetes Secret: the same JSON as the file (Traefik's format), under the key
``acme.json``, so several replicas share one account and every certificate.

Writes are read-modify-write with optimistic concurrency: the change is computed from the Secret as read,
and the replacement carries that read's ``resourceVersion``; when another replica wrote in between, the
API server answers 409 Conflict and the whole change is made again on a fresh read. So two replicas
storing different certificates at once both keep theirs, with no lock held across the network.

The parsing and JSON of :class:`~acme_client.storage.AcmeStorage` are used as they are; only where the
bytes come from and go to differs (``_read_raw``, ``_write_atomic``), and the process-wide ``flock`` of
the file store gives way to the retry. A Secret that does not hold JSON is never written over: every
load and write fails naming it, so certificates another tool broke are not replaced by an empty store.
The Secret is created when missing (the Helm chart creates it empty, so that the pods' Role needs no
``create`` on Secrets). A Secret holds at most 1 MiB: about 150 certificates.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from acme_client.kubernetes.api import ApiError, Conflict, KubeApi
from acme_client.kubernetes.lease import MANAGED_BY, LeaseLock
from acme_client.kubernetes.settings import KubernetesStore
from acme_client.storage import AcmeStorage, CorruptStore, ResolverState, StorageError

log = logging.getLogger("dockroute.acme")

__all__ = ["KEY", "SecretStorage"]

KEY = "acme.json"  # the Secret's data key
_TRIES = 20  # read-modify-write attempts before giving up: each conflict means another replica succeeded
# The resolver's store watch asks for the signature every 2 s (a stat for a file); for a Secret that is a
# GET of up to 1 MiB, so at most every 10 s: other replicas' certificates are served within that.
_SIGNATURE_EVERY = 10.0


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _signature(secret: dict[str, Any] | None) -> tuple[int, int, int, int] | None:
    """What the store watch compares: the Secret's resourceVersion (None: no Secret)."""
    if secret is None:
        return None
    version = str(secret["metadata"].get("resourceVersion", ""))
    return (0, 0, 0, int(version) if version.isdigit() else hash(version))


_ANSWER_KEY = re.compile(r"[A-Za-z0-9_.-]{1,200}")  # an HTTP-01 token (base64url) or a DNS name
_ANSWER_PREFIX = "challenge."
_ANSWER_TTL = 3600.0  # no CA asks about a challenge older than this


def _answer_key(kind: str, key: str) -> str | None:
    """The Secret's data key for an answer (None: ``key`` is no token or name, e.g. from a stranger's
    request path; Secret keys allow letters, digits, ``-``, ``_`` and ``.``)."""
    if kind not in ("http-01", "tls-alpn-01") or not _ANSWER_KEY.fullmatch(key):
        return None
    return f"{_ANSWER_PREFIX}{kind}.{key}"


def _stale_answer(name: str, encoded: str) -> bool:
    if not name.startswith(_ANSWER_PREFIX):
        return False
    try:
        stamp = float(base64.b64decode(encoded).decode("ascii").rsplit("\n", 1)[1])
    except (ValueError, IndexError, binascii.Error, UnicodeDecodeError):
        return True
    return time.time() - stamp > _ANSWER_TTL


class SecretStorage(AcmeStorage):
    """The store of ``store.url``; ``identity`` names this replica in the Leases it holds."""

    shares_files = False  # no folder: the file store's challenge files and acknowledgements do not apply

    def __init__(self, api: KubeApi, store: KubernetesStore, identity: str) -> None:
        super().__init__(store.url)
        self.api, self.store, self.identity = api, store, identity
        self.conflicts = 0  # writes made again after a 409 (for tests and the curious)
        # Inside one read-modify-write (this thread): the Secret as first read, which the write is
        # conditioned on. Outside one, every read asks the API server.
        self._pinned = threading.local()
        self._signature_at = 0.0  # when signature() last asked the API server (monotonic)
        self._signature: tuple[int, int, int, int] | None = None

    def load(self, keep_corrupt: bool = False) -> dict[str, ResolverState]:
        """Every resolver's state, read from the Secret. Never on the event loop: the resolver loads its
        store when it is made, in the app's start-up on the loop; there it gets an empty state, and its
        store watch reads the Secret in its own thread at its first look (2 s) and delivers it."""
        if _on_event_loop():
            return {}
        return super().load(keep_corrupt)

    def signature(self) -> tuple[int, int, int, int] | None:
        """The Secret's version, asked at most every 10 s (the store watch's thread: a GET)."""
        now = time.monotonic()
        if self._signature_at and now - self._signature_at < _SIGNATURE_EVERY:
            return self._signature
        self._signature_at = now
        try:
            self._signature = _signature(self._get_secret())
        except StorageError as exc:
            raise OSError(str(exc)) from exc  # the watch looks again later; an order says why
        return self._signature

    def order_lock(self, resolver: str, names: Iterable[str], timeout: float) -> LeaseLock:
        s = self.store
        return LeaseLock(
            self.api, s.namespace, s.secret, resolver, names, self.identity, s.lease_duration, timeout
        )

    # -- pending challenge answers, for the replicas the CA's validation reaches -------------------------

    def publish_answer(self, kind: str, key: str, key_authorization: str) -> None:
        """Put the answer to a ``kind`` challenge for ``key`` (an HTTP-01 token) in the Secret, under
        ``challenge.<kind>.<key>``, before the CA is told: a replica the CA's request reaches reads it
        there (a GET is read from etcd's quorum: no delay to wait for). Answers older than an hour (an
        orderer that died) are dropped meanwhile. Trouble is said, and the answer stays in this replica's
        memory only, as with one replica."""
        name = _answer_key(kind, key)
        if name is None:
            return
        stamped = f"{key_authorization}\n{time.time():.0f}"
        try:
            self._set_answer(name, base64.b64encode(stamped.encode()).decode("ascii"))
        except StorageError as exc:
            log.warning(
                "cannot share the %s answer through %s (%s): only this replica answers", kind, self.path, exc
            )

    def withdraw_answer(self, kind: str, key: str) -> None:
        name = _answer_key(kind, key)
        if name is not None:
            try:
                self._set_answer(name, None)
            except StorageError as exc:  # dropped by the next publish, an hour on
                log.debug("cannot withdraw the %s answer from %s: %s", kind, self.path, exc)

    def read_answer(self, kind: str, key: str) -> str | None:
        """The answer another replica published for ``key``, or None (a GET: a worker thread only)."""
        name = _answer_key(kind, key)
        if name is None or _on_event_loop():
            return None
        try:
            encoded = ((self._get_secret() or {}).get("data") or {}).get(name)
            if not encoded:
                return None
            return base64.b64decode(encoded).decode("ascii").split("\n", 1)[0] or None
        except (StorageError, ValueError, binascii.Error, UnicodeDecodeError):
            return None

    def read_answers(self, kind: str) -> dict[str, str]:
        """Every ``kind`` answer published in the Secret (key → key authorization), from ONE GET: a
        lookup of many tokens costs one read of the Secret, whatever the tokens (a worker thread only)."""
        prefix = f"{_ANSWER_PREFIX}{kind}."
        if _on_event_loop():
            return {}
        try:
            data = (self._get_secret() or {}).get("data") or {}
        except StorageError:
            return {}
        answers = {}
        for name, encoded in data.items():
            if not name.startswith(prefix) or not encoded:
                continue
            try:
                answer = base64.b64decode(encoded).decode("ascii").split("\n", 1)[0]
            except (ValueError, binascii.Error, UnicodeDecodeError):
                continue
            if answer:
                answers[name[len(prefix) :]] = answer
        return answers

    def _set_answer(self, name: str, value: str | None) -> None:
        """Set (or remove: None) one answer key of the Secret, conditioned on the version read."""
        s = self.store
        for _ in range(_TRIES):
            secret = self._get_secret()
            data = dict((secret or {}).get("data") or {})
            if value is None and name not in data:
                return
            data = {k: v for k, v in data.items() if not _stale_answer(k, v)}
            if value is None:
                data.pop(name, None)
            else:
                data[name] = value
            try:
                if secret is None:
                    metadata = {"name": s.secret, "namespace": s.namespace, "labels": dict(MANAGED_BY)}
                    self.api.create_secret(
                        s.namespace,
                        {
                            "apiVersion": "v1",
                            "kind": "Secret",
                            "type": "Opaque",
                            "metadata": metadata,
                            "data": data,
                        },
                    )
                else:
                    metadata = {k: v for k, v in secret["metadata"].items() if k != "managedFields"}
                    self.api.replace_secret(
                        s.namespace, s.secret, {**secret, "metadata": metadata, "data": data}
                    )
                return
            except Conflict:
                self.conflicts += 1
            except ApiError as exc:
                raise StorageError(str(exc)) from exc
        raise StorageError(f"{self.path}: changed by other writers {_TRIES} times in a row")

    # -- bytes from and to the API server -----------------------------------------------------------------

    def _get_secret(self) -> dict[str, Any] | None:
        s = self.store
        try:
            return self.api.get_secret(s.namespace, s.secret)
        except ApiError as exc:
            raise StorageError(str(exc)) from exc

    def _fetch(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The acme.json object and the Secret it came from (None: no Secret yet)."""
        s, secret = self.store, self._get_secret()
        encoded = ((secret or {}).get("data") or {}).get(KEY)
        if not encoded:
            return {}, secret
        try:
            raw = json.loads(base64.b64decode(encoded, validate=True))
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise CorruptStore(
                f"secret {s.namespace}/{s.secret}, key {KEY}: not JSON ({exc}); left as it is"
            ) from exc
        if not isinstance(raw, dict):
            raise CorruptStore(
                f"secret {s.namespace}/{s.secret}, key {KEY}: not a JSON object; left as it is"
            )
        return raw, secret

    def _read_raw(self, keep_corrupt: bool = False) -> dict[str, Any]:
        """The Secret's acme.json object (a corrupt one is always kept: :class:`CorruptStore`)."""
        pinned = getattr(self._pinned, "read", None)
        if pinned is not None:
            return copy.deepcopy(pinned[0])
        raw, secret = self._fetch()
        self.seen = _signature(secret)  # what the store watch compares signature() with
        if getattr(self._pinned, "active", False):
            self._pinned.read = (copy.deepcopy(raw), secret)
        return raw

    def _write_atomic(self, data: bytes) -> None:
        """Replace the Secret read at the start of this change (its resourceVersion the condition), or
        create it; :class:`Conflict` when another replica wrote first."""
        pinned = getattr(self._pinned, "read", None)
        if pinned is None:
            raise RuntimeError("SecretStorage writes only inside a read-modify-write")
        s, secret = self.store, pinned[1]
        encoded = base64.b64encode(data).decode("ascii")
        try:
            if secret is None:
                metadata = {"name": s.secret, "namespace": s.namespace, "labels": dict(MANAGED_BY)}
                body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata}
                written = self.api.create_secret(s.namespace, {**body, "data": {KEY: encoded}})
            else:
                metadata = {k: v for k, v in secret["metadata"].items() if k != "managedFields"}
                body = {**secret, "metadata": metadata, "data": {**(secret.get("data") or {}), KEY: encoded}}
                written = self.api.replace_secret(s.namespace, s.secret, body)
        except Conflict:
            raise
        except ApiError as exc:
            raise StorageError(str(exc)) from exc
        self.written = _signature(written)  # the store watch skips reading back this replica's own write

    # -- read-modify-write --------------------------------------------------------------------------------

    def _transaction(self, change: Callable[[], None]) -> None:
        """Run ``change`` (reads then one write) until its write is not refused for a newer version."""
        for attempt in range(_TRIES):
            self._pinned.active, self._pinned.read = True, None
            try:
                with self._lock:
                    change()
                return
            except Conflict:
                self.conflicts += 1
                log.debug(
                    "%s changed by another replica meanwhile; reading it again (%d)", self.path, attempt + 1
                )
            finally:
                self._pinned.active, self._pinned.read = False, None
        raise StorageError(f"{self.path}: changed by other writers {_TRIES} times in a row; not stored")

    def _across_processes(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # optimistic concurrency instead: see _transaction

    def save(self, state: Mapping[str, ResolverState]) -> None:
        if _on_event_loop():
            raise RuntimeError("the Kubernetes Secret store is written from worker threads only")
        self._transaction(lambda: self._save(state))

    def _update(self, resolver: str, change: Callable[[ResolverState], ResolverState]) -> None:
        if _on_event_loop():  # load() answers {} there: a write would keep only this change
            raise RuntimeError("the Kubernetes Secret store is written from worker threads only")

        def read_change_write() -> None:
            current = self.load().get(resolver) or ResolverState()
            self._save({resolver: change(current)})

        self._transaction(read_change_write)
