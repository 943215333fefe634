"""One orderer per name set across replicas on Kubernetes: a Lease (coordination.k8s.io/v1) per
(resolver, name set), taken before ordering and released after, as :mod:`acme_client.order_lock` does
with ``flock`` on one host.

certmagic's pattern, on the API server: take the Lease, re-read the Secret, order only if the certificate
is still missing or due, store it, release. A replica that waited finds what the holder stored.

Why a Lease per name set, hand-written on the Lease API, rather than ``kubernetes.leaderelection``:

- leader election elects one long-lived leader that runs until it dies; here a lock is held for one order
  (seconds) and replicas wanting *different* names must not wait for each other (one Lease per resolver
  would serialise every order of the cluster, with no fairness between waiters);
- the replicas all want the same names at the same time (same configuration): the one that takes the
  Lease orders, the others wait on it and then read the result: exactly ``OrderLock``'s contract
  (``waited``, a deadline, :class:`~acme_client.order_lock.OrderLockTimeout`), which the resolver uses
  unchanged;
- leaderelection runs its own loop thread with callbacks and never releases early on success.

Holding: ``holderIdentity`` (the pod name and a random suffix: a restarted container is another holder),
``leaseDurationSeconds``, ``acquireTime``, ``renewTime``; a thread renews every third of the duration
while the order runs. Releasing clears ``holderIdentity``, so a waiter takes it at its next poll.

Expiry as client-go judges it: a waiter notes when it first saw the Lease's current version, by its own
monotonic clock, and takes the Lease over once that version is older than ``leaseDurationSeconds``
(every renewal makes a new version). No clock is compared with another node's ``renewTime``, so clock
skew between nodes cannot hand a live holder's Lease to another replica. A dead holder's names wait
one lease duration, then the next replica orders them.

Lease names: ``<secret>-<resolver>-<hash of resolver and names>`` (a valid object name whatever the
resolver's name); the names themselves are in an annotation, for ``kubectl get lease -o yaml``. The
Leases are never deleted (one small object per name set, as the lock files on one host): deleting races
with a replica taking it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import re
import threading
import time
from collections.abc import Iterable
from typing import Any

from acme_client.kubernetes.api import ApiError, Conflict, KubeApi
from acme_client.order_lock import OrderLockTimeout
from acme_client.storage import StorageError

log = logging.getLogger("dockroute.acme")

__all__ = ["LeaseLock", "lease_name"]

MANAGED_BY = {"app.kubernetes.io/managed-by": "dockroute"}
STORE_LABEL = "dockroute.io/store"
NAMES_ANNOTATION = "dockroute.io/names"


def lease_name(secret: str, resolver: str, names: Iterable[str]) -> str:
    """The Lease for ``names`` of ``resolver`` (the same for every replica, whatever the names' order)."""
    digest = hashlib.sha256("\n".join([resolver, *sorted(names)]).encode()).hexdigest()[:16]
    readable = re.sub(r"[^a-z0-9-]+", "-", f"{secret}-{resolver}".lower()).strip("-")[:200]
    return f"{readable}-{digest}"


def _now() -> str:
    """Kubernetes' MicroTime (RFC 3339, microseconds, UTC)."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseLock:
    """``with LeaseLock(...) as lock:`` — the Lease held until the block ends; ``lock.waited`` tells
    whether another replica held it first. The same surface as :class:`~acme_client.order_lock.OrderLock`.
    API errors raise :class:`~acme_client.storage.StorageError`: no order without the lock (an order the
    Secret could not keep, or a second one, would be wasted with the CA's rate limits)."""

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        secret: str,
        resolver: str,
        names: Iterable[str],
        identity: str,
        duration: int,
        timeout: float = 900.0,
    ) -> None:
        names = tuple(names)
        self.api, self.namespace, self.identity = api, namespace, identity
        self.name = lease_name(secret, resolver, names)
        self.duration, self.timeout = duration, timeout
        self.poll = min(2.0, duration / 5)  # client-go's retryPeriod is 2 s for a 15 s lease
        self._labels = {**MANAGED_BY, STORE_LABEL: secret[:63]}
        self._annotation = ",".join(names)
        self.waited = False
        self.held = False
        self.lost = False  # another replica took it over while held (this one stalled past the duration)
        self._lease: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    # -- taking it ----------------------------------------------------------------------------------------

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        seen: tuple[str, float] | None = None  # (resourceVersion, when first seen): expiry, client-go's way
        while True:
            lease = self._get()
            if lease is None:
                if self._try(lambda body: self.api.create_lease(self.namespace, body), self._body(None)):
                    return
                continue  # created by another replica meanwhile: look at it
            version = lease["metadata"].get("resourceVersion", "")
            if seen is None or seen[0] != version:
                seen = (version, time.monotonic())
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity") or ""
            duration = spec.get("leaseDurationSeconds") or self.duration
            if not holder or holder == self.identity or time.monotonic() - seen[1] >= duration:
                if holder and holder != self.identity:
                    log.warning(
                        "lease %s/%s of %s not renewed for %ds: taking it over",
                        self.namespace,
                        self.name,
                        holder,
                        duration,
                    )
                replace = lambda body: self.api.replace_lease(self.namespace, self.name, body)  # noqa: E731
                if self._try(replace, self._body(lease)):
                    return
                continue
            if not self.waited:
                self.waited = True
                log.info(
                    "another replica (%s) is ordering this certificate (lease %s/%s held); waiting",
                    holder,
                    self.namespace,
                    self.name,
                )
            if time.monotonic() >= deadline:
                raise OrderLockTimeout(
                    f"lease {self.namespace}/{self.name} held by {holder} over {self.timeout:.0f}s"
                )
            time.sleep(self.poll)

    def _get(self) -> dict[str, Any] | None:
        try:
            return self.api.get_lease(self.namespace, self.name)
        except ApiError as exc:
            raise StorageError(str(exc)) from exc

    def _try(self, write, body: dict[str, Any]) -> bool:
        """Create or replace the Lease as held by us; False when another replica wrote it first (409)."""
        try:
            self._lease = write(body)
        except Conflict:
            return False
        except ApiError as exc:
            raise StorageError(str(exc)) from exc
        self.held = True
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name=f"lease-{self.name}", daemon=True)
        self._renewer.start()
        return True

    def _body(self, lease: dict[str, Any] | None) -> dict[str, Any]:
        """The Lease as held by this replica: ``lease`` (its resourceVersion is the condition) updated."""
        now = _now()
        if lease is None:
            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {"leaseTransitions": 0},
            }
        metadata = {k: v for k, v in lease["metadata"].items() if k != "managedFields"}
        metadata["labels"] = {**(metadata.get("labels") or {}), **self._labels}
        metadata["annotations"] = {**(metadata.get("annotations") or {}), NAMES_ANNOTATION: self._annotation}
        spec = dict(lease.get("spec") or {})
        if spec.get("holderIdentity") != self.identity:
            spec["acquireTime"] = now
            if spec.get("holderIdentity"):
                spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec.update(holderIdentity=self.identity, leaseDurationSeconds=self.duration, renewTime=now)
        return {**lease, "metadata": metadata, "spec": spec}

    # -- holding it ---------------------------------------------------------------------------------------

    def _renew_loop(self) -> None:
        """Every third of the duration, renew; stop when released or when another replica took it."""
        while not self._stop.wait(self.duration / 3):
            try:
                self._renew()
            except ApiError as exc:  # the next try may work; the waiters wait a whole duration meanwhile
                log.warning("lease %s/%s: cannot renew: %s", self.namespace, self.name, exc)
            if self.lost:
                return

    def _renew(self) -> None:
        lease = self._lease
        for _ in range(3):
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                self.lost = True
                log.warning(
                    "lease %s/%s was taken over by another replica while this one ordered; it may order too",
                    self.namespace,
                    self.name,
                )
                return
            try:
                self._lease = self.api.replace_lease(self.namespace, self.name, self._body(lease))
                return
            except Conflict:
                lease = self.api.get_lease(self.namespace, self.name)

    # -- letting it go ------------------------------------------------------------------------------------

    def release(self) -> None:
        """Stop renewing and clear ``holderIdentity`` (unless another replica holds it now), so that a
        waiter takes the Lease at its next poll instead of after a whole duration. Never raises: the
        Lease then simply expires."""
        if not self.held:
            return
        self.held = False
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        lease = self._lease
        try:
            for _ in range(3):
                if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                    return
                body = {**lease, "spec": {**lease["spec"], "holderIdentity": None, "renewTime": _now()}}
                try:
                    self.api.replace_lease(self.namespace, self.name, body)
                    return
                except Conflict:
                    lease = self.api.get_lease(self.namespace, self.name)
        except ApiError as exc:
            log.warning(
                "lease %s/%s: cannot release (%s); it expires in %ds",
                self.namespace,
                self.name,
                exc,
                self.duration,
            )

    def __enter__(self) -> LeaseLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
