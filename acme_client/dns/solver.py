"""The DNS-01 solver: what every provider gets around it (zone lookup, journal, propagation wait, cleanup).

The issuer calls, for one order: ``publish`` for each authorization (the record's name and zone found,
the record journaled, then presented), ``settle`` once with all of them (the propagation wait, so an order
of a wildcard and its apex, or of ten names, waits once, not ten times), then asks the CA to validate,
and ``unpublish`` for each whatever happened (cleanup, then the journal entry dropped: a cleanup that
fails keeps its entry, retried by ``recover``, which the resolver runs on every check pass).

Everything here blocks: worker threads only.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from collections.abc import Sequence

from acme_client.dns import zone as zones
from acme_client.dns.base import DnsChallengeSettings, DnsProvider, TxtRecord
from acme_client.dns.journal import Journal
from acme_client.dns.propagation import wait_for_records
from acme_client.dns.registry import build_provider
from acme_client.issuer import Solver

__all__ = ["DnsSolver", "txt_value"]

log = logging.getLogger("dockroute.acme")


def txt_value(key_authorization: str) -> str:
    """The DNS-01 TXT value: base64url(SHA-256(key authorization)), unpadded (RFC 8555 section 8.4)."""
    digest = hashlib.sha256(key_authorization.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


class DnsSolver:
    """One resolver's DNS-01 answers. Shared by the resolver's worker threads (orders run concurrently):
    the records in flight are kept per (domain, token) under a lock.

    ``store`` is the acme.json path the journal goes beside (None: a store without a folder, such as a
    Kubernetes Secret: the journal is kept in memory, which a crash loses). ``provider`` replaces the
    one the settings name (tests)."""

    def __init__(
        self,
        settings: DnsChallengeSettings,
        store: str | None,
        label: str = "ACME",
        provider: DnsProvider | None = None,
    ) -> None:
        self.settings = settings
        self.label = label
        self._provider = provider
        self.journal = Journal(store, settings.provider.provider)
        self._records: dict[tuple[str, str], TxtRecord] = {}
        self._lock = threading.Lock()
        self._sweeping = threading.Lock()  # one recover at a time; another call meanwhile returns at once
        if store is None:
            log.warning(
                "%s: DNS-01 records are remembered in memory only (the store is no folder): records a "
                "crash leaves in the zone are not cleaned up at the next start",
                label,
            )

    @property
    def provider(self) -> DnsProvider:
        """The provider, built at first use (read_provider has checked its config at start)."""
        with self._lock:
            if self._provider is None:
                self._provider = build_provider(self.settings.provider)
            return self._provider

    def solver(self) -> Solver:
        return Solver("dns-01", self.publish, self.unpublish, settle=self.settle, recover=self.recover)

    def publish(self, domain: str, token: str, key_authorization: str) -> None:
        """Present the TXT record answering ``domain``'s challenge (journaled first). A present that
        fails is cleaned up at once, as far as it went."""
        among = zones.servers(self.settings.resolvers)
        fqdn, zone = zones.challenge_target(domain, among)
        record = TxtRecord(domain, fqdn, zone, txt_value(key_authorization), token, key_authorization)
        self.journal.add(record)
        try:
            self.provider.present(record)
        except BaseException:
            # A present that failed most likely wrote nothing: its entry goes even when this cleanup
            # fails too (a server refusing or down would otherwise add one entry per retry, each tried
            # again at every start); the warning names the record in case it did reach the zone.
            if not self._cleanup(record, "if the failed present reached the zone, the record stays there"):
                self.journal.remove(record)
            raise
        with self._lock:
            self._records[(domain, token)] = record
        log.info("%s: presented TXT %s in zone %s (for %s)", self.label, fqdn, zone, domain)

    def settle(self, published: Sequence[tuple[str, str]]) -> None:
        """Wait until every authoritative server answers the records of ``published`` (domain, token)."""
        with self._lock:
            records = [self._records[key] for key in published if key in self._records]
        wait_for_records(records, self.settings)

    def unpublish(self, domain: str, token: str) -> None:
        with self._lock:
            record = self._records.pop((domain, token), None)
        if record is not None:
            self._cleanup(record)

    def recover(self) -> None:
        """Clean up the journaled records whose order no longer runs: left by a crashed run, a replica that
        died, or a cleanup of this process that failed (:meth:`Journal.sweep`). Called on every check
        pass: one listdir when nothing is journaled, and a call while another runs returns at once."""
        if not self._sweeping.acquire(blocking=False):
            return
        try:
            self.journal.sweep(self._remove_leftover)
        finally:
            self._sweeping.release()

    def _remove_leftover(self, record: TxtRecord) -> None:
        log.info("%s: removing TXT %s left by an order that no longer runs", self.label, record.fqdn)
        self._cleanup(record)

    def _cleanup(self, record: TxtRecord, then: str = "tried again at the next check") -> bool:
        """Remove ``record`` and its journal entry (True when done); a failure is logged (never raised:
        cleanup runs after the outcome is known) and the entry kept, so the next check tries again."""
        try:
            self.provider.cleanup(record)
        except Exception as exc:  # noqa: BLE001 - DnsError or a provider's bug: the record stays journaled
            log.warning(
                "%s: could not remove TXT %s (zone %s): %s; %s",
                self.label,
                record.fqdn,
                record.zone,
                exc,
                then,
            )
            return False
        self.journal.remove(record)
        return True
