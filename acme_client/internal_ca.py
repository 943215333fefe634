"""``certificatesResolvers.<name>.internalCA``: dockroute's own CA for names no public CA certifies.

Homelabs live on ``.lan``, ``.home.arpa``, ``.internal``: no public CA issues for those, and a self-signed
certificate per host means a browser warning per host. This resolver keeps one root (``root.crt`` and
``root.key`` in its storage folder, created once, never replaced) that the user trusts once on each
device, and issues short-lived leaf certificates from it for whatever the routers ask.

Choices, and why:

- Leaves are signed by the root itself, with no intermediate. Caddy uses an intermediate, but keeps its
  key on the same disk as the root's, so it protects nothing here, while it adds a certificate to every
  handshake and a second expiry to watch. Name constraints (below) bound what the root can vouch for.
- Leaves live in memory only and are issued again at start: one P-256 key and one signature (well
  under a millisecond each), and no second private-key file to protect. Served chains are the leaf alone:
  clients validate against the root they trust, which they must already have.
- With ``permitted_domains``, the root carries critical X.509 name constraints (see
  :mod:`acme_client.internal_root`, which keeps the root on disk): nothing outside them is issued, and a
  device trusting the root rejects anything else it might sign, even if ``root.key`` leaked.
- All key generation, signing and file work runs in one worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as _dt
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from acme_client.internal_root import BACKDATE, InternalCAError, Root, load_or_create_root
from acme_client.report import CertificateFacts, CertificateStatus, Failure, FailureLog, read_facts
from acme_client.settings import InternalCASettings, parse_permitted_domains

__all__ = ["InternalCA", "InternalCAError", "Leaf", "Root", "issue_leaf", "load_or_create_root"]

log = logging.getLogger("dockroute.acme")

_RETRY_STORAGE = 600.0  # a storage folder that failed is tried again this often (and on every change)
_RETRY_ISSUE = 60.0  # a name set whose issuance failed (a bug) waits this long
_MIN_WAKE = 1.0  # however short leafLifetime is, the loop never spins
# The loop's waits run on the monotonic clock, which stops while the host is suspended: renewal times
# (wall clock) are looked at again at least this often, as the ACME resolver does.
_MAX_WAKE = 600.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Leaf:
    """One issued certificate. ``certificate_pem`` is the chain served (leaf first; the leaf alone, as
    the root is the trust anchor). ``renew_at`` is when a third of its lifetime is left."""

    names: tuple[str, ...]
    certificate_pem: bytes
    key_pem: bytes = field(repr=False)  # a private key: never in a log line that prints the leaf
    serial: int
    not_after: _dt.datetime
    renew_at: _dt.datetime
    facts: CertificateFacts  # for reports: read once, in the worker thread that issued it


# -- names ----------------------------------------------------------------------------------------------


def normalise(name: str) -> str | IPAddress:
    """``name`` as it goes into a SAN: lower case, no trailing dot; an IP address (brackets allowed)
    as an address. Raises ValueError with the reason for a name that cannot be a SAN."""
    n = name.strip().lower().rstrip(".")
    try:
        return ipaddress.ip_address(n.strip("[]"))
    except ValueError:
        pass
    if not n:
        raise ValueError("an empty name")
    if not n.isascii():
        raise ValueError("not ASCII (write internationalised names as xn-- punycode)")
    labels = n.split(".")
    if any(not label or len(label) > 63 for label in labels) or len(n) > 253:
        raise ValueError("not a valid DNS name (empty or too long label)")
    if any(not all(c.isalnum() or c in "-_*" for c in label) for label in labels):
        raise ValueError("not a valid DNS name (characters other than letters, digits, '-', '_')")
    if "*" in n and (labels[0] != "*" or "*" in ".".join(labels[1:])):
        raise ValueError("a wildcard other than a whole leftmost label")
    if labels[0] == "*" and len(labels) < 3:
        # OpenSSL (and browsers) never match a wildcard directly under a single label, as under a TLD.
        raise ValueError("a wildcard over a single label, which clients refuse (name the hosts instead)")
    return n


def permits(name: str | IPAddress, dns: tuple[str, ...] | None) -> bool:
    """Whether a name falls inside permitted DNS subtrees (RFC 5280: ``lan`` covers ``lan`` and every
    ``*.lan``). None means unconstrained; a constrained root excludes every IP address."""
    if dns is None:
        return True
    if isinstance(name, str):
        n = name[2:] if name.startswith("*.") else name
        return any(n == d or n.endswith("." + d) for d in dns)
    return False


# -- leaves (worker thread) -----------------------------------------------------------------------------


def issue_leaf(root: Root, names: tuple[str, ...], lifetime: float) -> Leaf:
    """A P-256 leaf for ``names`` (normalised: DNS names and IP address strings), valid ``lifetime``
    seconds (never past the root), signed by the root."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _dt.datetime.now(_dt.UTC)
    not_after = min(now + _dt.timedelta(seconds=lifetime), root.cert.not_valid_after_utc)
    sans: list[x509.GeneralName] = []
    for n in names:
        v = normalise(n)
        sans.append(x509.DNSName(v) if isinstance(v, str) else x509.IPAddress(v))
    # The subject names the first DNS name that fits a CN; clients match the SAN, never the CN. Never an
    # IP address: OpenSSL checks a CN against the root's DNS name constraints ("permitted subtree
    # violation"). With no CN, the SAN is critical (RFC 5280 section 4.2.1.6).
    dns = [str(s.value) for s in sans if isinstance(s, x509.DNSName) and len(s.value) <= 64]
    cn = [x509.NameAttribute(NameOID.COMMON_NAME, dns[0])] if dns else []
    serial = x509.random_serial_number()
    ski = root.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(cn))
        .issuer_name(root.cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=not cn)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(root.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    return Leaf(
        names=names,
        certificate_pem=cert_pem,
        key_pem=key_pem,
        serial=serial,
        not_after=not_after,
        renew_at=now + (not_after - now) * 2 / 3,
        facts=read_facts(cert_pem),
    )


# -- the resolver ---------------------------------------------------------------------------------------


class InternalCA:
    """Issues leaf certificates from a root kept in ``settings.storage``, with the surface the app uses
    on an :class:`~acme_client.resolver.AcmeResolver` (no ACME challenge ever pending here)."""

    def __init__(self, name: str, settings: InternalCASettings, on_change: Callable[[], None]) -> None:
        self.name = name
        self.settings = settings
        self.on_change = on_change
        self.alpn_certs: dict[str, tuple[bytes, bytes]] = {}  # never any: no ACME challenge here
        # Parsed again by the static configuration's own parser (it checked them at start already).
        self._dns = parse_permitted_domains(settings.permitted_domains)
        self._leaves: dict[tuple[str, ...], Leaf] = {}
        self._wanted: list[tuple[str, ...]] = []
        # wanted set → the set issued for it: less the names the root's own constraints forbid
        self._issued_as: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._root: Root | None = None
        self._root_error: str | None = None
        self._root_retry = 0.0  # time.monotonic() before which a failed storage is not tried again
        self._failures: dict[tuple[str, ...], float] = {}  # name set → monotonic retry time
        self.failure_log = FailureLog(name)  # failed issues and root loads: the last per name set, how many
        self._root_failure: Failure | None = None  # why the root cannot be used, while it cannot
        self._reported: set[str] = set()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"internal-ca-{name}")
        self._kick: asyncio.Event | None = None

    # -- what the proxy reads -------------------------------------------------------------------------

    def certificates(self) -> list[Leaf]:
        return list(self._leaves.values())

    def key_authorization(self, token: str) -> None:
        return None

    def reports(self) -> tuple[CertificateStatus, ...]:
        """Every leaf served, then every name set asked for that has none yet. Cheap (asked on the event
        loop): the leaves' facts were read when they were issued. A root that cannot be used is every
        name set's last error."""
        out = []
        for names, leaf in self._leaves.items():
            failure = self._root_failure or self.failure_log.last(names)
            renew = leaf.renew_at.timestamp()
            retry = max(renew, failure.retry_at) if failure is not None else renew
            out.append(CertificateStatus(names, self.name, "internalCA", leaf.facts, retry, failure))
        # A name the root's own constraints refuse is dropped from its set when issuing (and said once):
        # leaves, failures and retries are kept under the set as issued.
        for wanted in self._wanted:
            names = self._issued_as.get(wanted, wanted)
            if names not in self._leaves:
                failure = self._root_failure or self.failure_log.last(names)
                retry = failure.retry_at if failure is not None else None
                out.append(CertificateStatus(names, self.name, "internalCA", None, retry, failure))
        return tuple(out)

    def alpn_challenge(self, server_name: str) -> None:
        return None

    def ensure_root(self) -> bytes:
        """The root certificate's PEM, created on first use (blocking: for the CLI, or a worker)."""
        if self._root is None:
            self._root = load_or_create_root(
                self.settings.storage, self.name, self.settings.permitted_domains
            )
        return self._root.pem

    # -- what the proxy asks for ----------------------------------------------------------------------

    def want(self, name_sets: Iterable[tuple[str, ...]]) -> None:
        """The name sets to keep leaves for. A name that cannot be a SAN, or outside
        ``permittedDomains``, is left out with one line (once per name)."""
        restricted = bool(self._dns)
        wanted: list[tuple[str, ...]] = []
        for names in name_sets:
            keep = []
            for n in names:
                try:
                    v = normalise(n)
                except ValueError as exc:
                    self._refuse(n, str(exc))
                    continue
                if restricted and not permits(v, self._dns):
                    self._refuse(n, "outside permittedDomains " + ", ".join(self.settings.permitted_domains))
                    continue
                keep.append(str(v))
            if keep:
                wanted.append(tuple(dict.fromkeys(keep)))
        self._wanted = wanted
        if self._kick is not None:
            self._kick.set()

    def _refuse(self, name: str, why: str) -> None:
        if name not in self._reported:
            self._reported.add(name)
            log.error("resolver %s: no certificate issued for %s: %s", self.name, name, why)

    async def run(self) -> None:
        """Issue what is missing at once and on every change of wanted names; renew each leaf with a
        third of its lifetime left (sleeping until the earliest renewal); ``on_change`` after each batch."""
        self._kick = asyncio.Event()
        self._kick.set()
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    async with asyncio.timeout(self._next_wake()):
                        await self._kick.wait()
                except TimeoutError:
                    pass
                self._kick.clear()
                await self._pass(loop)
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _next_wake(self) -> float | None:
        """Seconds until the earliest renewal, failed-storage or failed-issue retry (None: none), at
        most ``_MAX_WAKE`` (a suspended host's monotonic clock stops; renewals are due by wall clock)."""
        now, mono = _dt.datetime.now(_dt.UTC), time.monotonic()
        # A leaf whose renewal failed waits for its retry, not for its (past) renewal time.
        waits = [
            max((leaf.renew_at - now).total_seconds(), self._failures.get(names, 0.0) - mono)
            for names, leaf in self._leaves.items()
        ]
        waits += [at - mono for names, at in self._failures.items() if names not in self._leaves]
        if self._root is None and self._wanted:
            waits.append(self._root_retry - mono)
        return min(max(min(waits), _MIN_WAKE), _MAX_WAKE) if waits else None

    async def _pass(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._wanted:
            self._leaves.clear()
            self._issued_as = {}
            self._forget_failures(set())
            return
        if not await self._have_root(loop):
            return
        self._issued_as = self._within_root(list(self._wanted))
        wanted = list(dict.fromkeys(self._issued_as.values()))
        for stale in set(self._leaves) - set(wanted):
            del self._leaves[stale]
        self._forget_failures(set(wanted))
        now, mono = _dt.datetime.now(_dt.UTC), time.monotonic()
        due = [
            names
            for names in wanted
            if self._failures.get(names, 0.0) <= mono
            and (names not in self._leaves or self._leaves[names].renew_at <= now)
        ]
        if not due:
            return
        assert self._root is not None
        issued, failed = await loop.run_in_executor(
            self._executor, _issue_all, self._root, due, self.settings.leaf_lifetime
        )
        for names, exc in failed.items():
            self._failures[names] = time.monotonic() + _RETRY_ISSUE
            self.failure_log.failed(names, f"{type(exc).__name__}: {exc}", _RETRY_ISSUE)
            log.error("resolver %s: cannot issue for %s", self.name, ", ".join(names), exc_info=exc)
        for names, leaf in issued.items():
            self._failures.pop(names, None)
            self.failure_log.succeeded(names)
            renewed = names in self._leaves
            self._leaves[names] = leaf
            log.info(
                "resolver %s: certificate for %s %s by the internal CA, valid until %s",
                self.name,
                ", ".join(names),
                "renewed" if renewed else "issued",
                leaf.not_after.isoformat(timespec="seconds"),
            )
        if issued:
            self.on_change()

    def _forget_failures(self, keep: set[tuple[str, ...]]) -> None:
        """Retries and last errors of name sets no longer asked for go (a report shows wanted sets only)."""
        for stale in set(self._failures) - keep:
            del self._failures[stale]
            self.failure_log.succeeded(stale)

    async def _have_root(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Load or create the root once (worker thread). A storage that cannot be used is said once
        (again only if the reason changes) and tried again every 10 minutes and on every change."""
        if self._root is not None:
            if self._root.cert.not_valid_after_utc > _dt.datetime.now(_dt.UTC):
                return True
            self._root = None  # expired while running: reading it again says so
        try:
            await loop.run_in_executor(self._executor, self.ensure_root)
        except InternalCAError as exc:
            self._root_retry = time.monotonic() + _RETRY_STORAGE
            self.failure_log.tally()
            now = time.time()
            self._root_failure = Failure(str(exc), now, now + _RETRY_STORAGE)
            if str(exc) != self._root_error:
                self._root_error = str(exc)
                log.error("resolver %s: %s; serving no certificates from it", self.name, exc)
            return False
        if self._root_error is not None:
            log.info("resolver %s: the internal CA in %s is usable now", self.name, self.settings.storage)
        self._root_error = None
        self._root_failure = None
        self._warn_on_constraint_mismatch()
        return True

    def _warn_on_constraint_mismatch(self) -> None:
        assert self._root is not None
        root = self._root
        want = set(self._dns) if self._dns else None
        have = set(root.dns) if root.dns is not None else None
        if want != have:
            log.warning(
                "resolver %s: the root in %s was made with permitted domains %s, the configuration says "
                "%s; names are issued only where both allow; rotate the root to change its constraints",
                self.name,
                self.settings.storage,
                _describe(have),
                _describe(want),
            )

    def _within_root(self, wanted: list[tuple[str, ...]]) -> dict[tuple[str, ...], tuple[str, ...]]:
        """Each wanted set → itself less the names the root's own constraints forbid (clients would
        refuse them); a set left empty is not issued."""
        assert self._root is not None
        root = self._root
        if root.dns is None:
            return {names: names for names in wanted}
        out = {}
        for names in wanted:
            keep = tuple(n for n in names if permits(normalise(n), root.dns))
            for n in set(names) - set(keep):
                self._refuse(n, f"outside the name constraints of the root in {self.settings.storage}")
            if keep:
                out[names] = keep
        return out


def _describe(constraints: set[str] | None) -> str:
    return ", ".join(sorted(constraints or ())) or "(none)"


def _issue_all(
    root: Root, due: list[tuple[str, ...]], lifetime: float
) -> tuple[dict[tuple[str, ...], Leaf], dict[tuple[str, ...], Exception]]:
    """Worker thread: one leaf per name set; one set's failure (a bug) leaves the others issued."""
    issued: dict[tuple[str, ...], Leaf] = {}
    failed: dict[tuple[str, ...], Exception] = {}
    for names in due:
        try:
            issued[names] = issue_leaf(root, names, lifetime)
        except Exception as exc:  # noqa: BLE001 - reported by the caller, with the traceback
            failed[names] = exc
    return issued, failed
