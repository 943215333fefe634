"""What a resolver tells about its certificates: plain records, read by whoever shows them.

The proxy's API and metrics ask often (a dashboard polls every few seconds) and ask on the event loop, so
nothing here parses a certificate when asked: :func:`read_facts` runs once, where a certificate is
obtained or loaded (the resolver's worker thread, or the storage load at start), and the records below
hold only numbers and strings. This package knows nothing of the API: the app turns these records into
whatever its API shows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

__all__ = ["CertificateFacts", "CertificateStatus", "Failure", "FailureLog", "read_facts"]


@dataclass(frozen=True, slots=True)
class CertificateFacts:
    """What one certificate (the leaf of a PEM chain) says about itself, times in UNIX seconds."""

    dns_names: tuple[str, ...]  # its SAN's DNS names, as written
    ip_addresses: tuple[str, ...]  # its SAN's IP addresses
    common_name: str  # the subject CN ("" when it has none)
    issuer: str  # the issuer's CN, else its whole DN (RFC 4514)
    serial: str  # decimal, as Go's big.Int prints it (Traefik's metric label)
    not_before: float
    not_after: float

    @property
    def names(self) -> tuple[str, ...]:
        """The names it certifies: its SAN (DNS names, then IP addresses), else its subject CN."""
        san = (*self.dns_names, *self.ip_addresses)
        return san or ((self.common_name,) if self.common_name else ())

    @property
    def lifetime(self) -> float:
        return self.not_after - self.not_before


def _common_name(name: x509.Name) -> str:
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else ""


def read_facts(cert_pem: bytes) -> CertificateFacts:
    """Parse the first certificate of ``cert_pem``. Blocking work (x509 parsing): call it where the
    certificate is obtained or loaded, never where a report is asked for. Raises ValueError for a PEM
    that holds no certificate."""
    leaf = x509.load_pem_x509_certificate(cert_pem)
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    return CertificateFacts(
        dns_names=dns,
        ip_addresses=ips,
        common_name=_common_name(leaf.subject),
        issuer=_common_name(leaf.issuer) or leaf.issuer.rfc4514_string(),
        serial=str(leaf.serial_number),
        not_before=leaf.not_valid_before_utc.timestamp(),
        not_after=leaf.not_valid_after_utc.timestamp(),
    )


@dataclass(frozen=True, slots=True)
class Failure:
    """The last failed attempt for one name set: the message logged, and when (UNIX seconds); the next
    attempt is not before ``retry_at`` (UNIX seconds)."""

    message: str
    at: float
    retry_at: float


class FailureLog:
    """The last failure per name set, forgotten when an attempt succeeds, and a count of failed attempts
    that only grows (a Prometheus counter: failures per resolver). ``on_failure``, when the app sets it,
    is told the resolver's name on each failure too, for counters kept elsewhere. Event loop only."""

    def __init__(self, resolver: str) -> None:
        self.resolver = resolver
        self.count = 0
        self.on_failure: Callable[[str], None] | None = None
        self._last: dict[tuple[str, ...], Failure] = {}

    def tally(self) -> None:
        """One more failed attempt that belongs to no single name set (a CA root that cannot be read)."""
        self.count += 1
        if self.on_failure is not None:
            self.on_failure(self.resolver)

    def failed(self, names: tuple[str, ...], message: str, retry_in: float) -> None:
        now = time.time()
        self.tally()
        self._last[names] = Failure(message, now, now + retry_in)

    def succeeded(self, names: tuple[str, ...]) -> None:
        self._last.pop(names, None)

    def last(self, names: tuple[str, ...]) -> Failure | None:
        return self._last.get(names)


@dataclass(frozen=True, slots=True)
class CertificateStatus:
    """One certificate a resolver serves, or one name set it is asked for and has no certificate for yet
    (``facts`` None: the first order is under way, or failed with ``last_error``).

    ``next_renewal`` (UNIX seconds) is when the resolver's renewal rule makes the certificate due (for a
    name set still failing: not before its next retry); the resolver's loop renews it at its first pass
    from then, which comes at most its check interval later. None when it is never renewed (a
    certificate no router asks for any more is served until it expires) or not issued yet."""

    domains: tuple[str, ...]  # the main name first
    resolver: str
    source: str  # "acme" or "internalCA"
    facts: CertificateFacts | None
    next_renewal: float | None = None
    last_error: Failure | None = None
