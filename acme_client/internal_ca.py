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
- With ``permitted_domains``, the root carries critical X.509 name constraints (RFC 5280 section 4.2.1.10):
  those DNS subtrees only, and no IP address unless a permitted entry is a network (``192.168.1.0/24``).
  A device trusting the root then rejects anything else it might sign, even if ``root.key`` leaked.
- All key generation, signing and file work runs in one worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as _dt
import fcntl
import ipaddress
import logging
import os
import secrets
import stat
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from acme_client.settings import InternalCASettings

__all__ = ["InternalCA", "InternalCAError", "Leaf", "Root", "issue_leaf", "load_or_create_root"]

log = logging.getLogger("dockroute.acme")

ROOT_CERT, ROOT_KEY = "root.crt", "root.key"
ROOT_LIFETIME = _dt.timedelta(days=3653)  # ten years
BACKDATE = _dt.timedelta(minutes=5)  # clients whose clock is a little behind accept a fresh leaf
_RETRY_STORAGE = 600.0  # a storage folder that failed is tried again this often (and on every change)
_RETRY_ISSUE = 60.0  # a name set whose issuance failed (a bug) waits this long
_MIN_WAKE = 1.0  # however short leafLifetime is, the loop never spins

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class InternalCAError(Exception):
    """The CA's storage cannot be used: unsafe permissions, unreadable, unwritable, inconsistent."""


@dataclass(frozen=True, slots=True)
class Leaf:
    """One issued certificate. ``certificate_pem`` is the chain served (leaf first; the leaf alone, as
    the root is the trust anchor). ``renew_at`` is when a third of its lifetime is left."""

    names: tuple[str, ...]
    certificate_pem: bytes
    key_pem: bytes
    serial: int
    not_after: _dt.datetime
    renew_at: _dt.datetime


@dataclass(frozen=True, slots=True)
class Root:
    """The root as read from (or written to) storage. ``dns``/``ips``: its permitted name-constraint
    subtrees (None: unconstrained)."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    pem: bytes
    dns: tuple[str, ...] | None
    ips: tuple[Network, ...] | None


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
    return n


def split_permitted(entries: Iterable[str]) -> tuple[tuple[str, ...], tuple[Network, ...]]:
    """``permittedDomains`` → DNS subtrees and IP networks (an entry such as ``10.0.0.0/8``)."""
    dns: list[str] = []
    nets: list[Network] = []
    for entry in entries:
        e = entry.strip().lower().strip(".")
        if e.startswith("*."):
            e = e[2:]
        try:
            nets.append(ipaddress.ip_network(e, strict=False))
        except ValueError:
            if e:
                dns.append(e)
    return tuple(dict.fromkeys(dns)), tuple(dict.fromkeys(nets))


def permits(name: str | IPAddress, dns: tuple[str, ...] | None, ips: tuple[Network, ...] | None) -> bool:
    """Whether a name falls inside permitted subtrees (RFC 5280: ``lan`` covers ``lan`` and every
    ``*.lan``). None means no constraint of either kind; a constraint of one kind leaves the other
    kind out entirely (the root then excludes every IP address, see :func:`_name_constraints`)."""
    if dns is None and ips is None:
        return True
    if isinstance(name, str):
        n = name[2:] if name.startswith("*.") else name
        return any(n == d or n.endswith("." + d) for d in dns or ())
    return any(name in net for net in ips or ())


# -- the root (worker thread) ---------------------------------------------------------------------------


def _name_constraints(dns: tuple[str, ...], nets: tuple[Network, ...]) -> x509.NameConstraints:
    """Permit ``dns`` and ``nets``; with no network permitted, exclude every IP address, or IP SANs
    would be unconstrained (name constraints apply per name type)."""
    permitted: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    permitted += [x509.IPAddress(net) for net in nets]
    excluded: list[x509.GeneralName] | None = None
    if not nets:
        excluded = [
            x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")),
            x509.IPAddress(ipaddress.ip_network("::/0")),
        ]
    return x509.NameConstraints(permitted_subtrees=permitted or None, excluded_subtrees=excluded)


def _make_root_cert(key: ec.EllipticCurvePrivateKey, label: str, permitted: tuple[str, ...]) -> bytes:
    now = _dt.datetime.now(_dt.UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dockroute"),
            # A random tag: two installations' roots never share a subject in one trust store.
            x509.NameAttribute(NameOID.COMMON_NAME, f"dockroute internal CA {label} {secrets.token_hex(4)}"),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + ROOT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    dns, nets = split_permitted(permitted)
    if dns or nets:
        builder = builder.add_extension(_name_constraints(dns, nets), critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _read_key(path: str) -> bytes | None:
    """``root.key``'s bytes, None when missing; refused when group or others may read it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InternalCAError(f"cannot open {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as f:
        perm = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
        if perm & 0o077:
            raise InternalCAError(f"permissions {perm:o} for {path} are too open, please use 600")
        return f.read()


def _write_new_key(path: str, pem: bytes) -> None:
    """Create ``root.key`` 0600 with O_EXCL: an existing key is never replaced, whoever wrote it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())


def _write_cert(path: str, pem: bytes) -> None:
    """``root.crt`` (public: 0644), written whole or not at all."""
    fd, tmp = tempfile.mkstemp(prefix=".root.crt.", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _parse_root(cert_pem: bytes, key_pem: bytes, folder: str) -> Root:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError as exc:
        raise InternalCAError(f"cannot read the root in {folder}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InternalCAError(f"{os.path.join(folder, ROOT_KEY)} is not an EC key")
    if cert.public_key() != key.public_key():
        raise InternalCAError(f"{ROOT_CERT} and {ROOT_KEY} in {folder} do not belong together")
    try:
        nc = cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return Root(cert, key, cert_pem, None, None)
    subtrees = nc.permitted_subtrees or []
    dns = tuple(str(g.value).lower() for g in subtrees if isinstance(g, x509.DNSName))
    ips = tuple(g.value for g in subtrees if isinstance(g, x509.IPAddress))
    return Root(cert, key, cert_pem, dns, ips)  # type: ignore[arg-type]


def load_or_create_root(folder: str, label: str, permitted: tuple[str, ...] = ()) -> Root:
    """The root in ``folder``: read when there, else created (folder 0700, key 0600). Processes
    sharing the folder (the proxy and ``dockroute internal-ca root``) serialise on a lock file, so
    exactly one creates it and the others read it. Blocking: call it from a worker thread."""
    folder = os.path.abspath(folder)
    try:
        if not os.path.isdir(folder):
            os.makedirs(folder, mode=0o700, exist_ok=True)
            os.chmod(folder, 0o700)
        lock_fd = os.open(os.path.join(folder, ".root.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise InternalCAError(f"cannot use {folder}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        return _load_or_create_locked(folder, label, permitted)
    except OSError as exc:
        raise InternalCAError(f"cannot create the root in {folder}: {exc.strerror or exc}") from exc
    finally:
        os.close(lock_fd)  # releases the lock


def _load_or_create_locked(folder: str, label: str, permitted: tuple[str, ...]) -> Root:
    key_path, cert_path = os.path.join(folder, ROOT_KEY), os.path.join(folder, ROOT_CERT)
    key_pem = _read_key(key_path)
    try:
        with open(cert_path, "rb") as f:
            cert_pem: bytes | None = f.read()
    except FileNotFoundError:
        cert_pem = None
    except OSError as exc:
        raise InternalCAError(f"cannot read {cert_path}: {exc.strerror}") from exc
    if key_pem is not None and cert_pem is not None:
        root = _parse_root(cert_pem, key_pem, folder)
        expiry = root.cert.not_valid_after_utc
        left = expiry - _dt.datetime.now(_dt.UTC)
        if left <= _dt.timedelta(0):
            raise InternalCAError(f"the root in {folder} expired on {expiry:%Y-%m-%d}: rotate it")
        if left < _dt.timedelta(days=90):
            log.warning("internal CA %s: the root in %s expires on %s: rotate it", label, folder, expiry)
        return root
    if key_pem is not None:
        raise InternalCAError(
            f"{key_path} exists without {ROOT_CERT}: restore {ROOT_CERT}, or move {ROOT_KEY} away to "
            "create a new root"
        )
    if cert_pem is not None:
        raise InternalCAError(
            f"{cert_path} exists without {ROOT_KEY}: restore {ROOT_KEY}, or move {ROOT_CERT} away to "
            "create a new root"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert_pem = _make_root_cert(key, label, permitted)
    _write_new_key(key_path, key_pem)
    _write_cert(cert_path, cert_pem)
    log.info("internal CA %s: created a new root in %s", label, folder)
    return _parse_root(cert_pem, key_pem, folder)


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
    # The subject names the first name when it fits a CN; clients match the SAN, never the CN.
    cn = [x509.NameAttribute(NameOID.COMMON_NAME, names[0])] if len(names[0]) <= 64 else []
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
    return Leaf(
        names=names,
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key_pem,
        serial=serial,
        not_after=not_after,
        renew_at=now + (not_after - now) * 2 / 3,
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
        self._dns, self._ips = split_permitted(settings.permitted_domains)
        self._leaves: dict[tuple[str, ...], Leaf] = {}
        self._wanted: list[tuple[str, ...]] = []
        self._root: Root | None = None
        self._root_error: str | None = None
        self._root_retry = 0.0  # time.monotonic() before which a failed storage is not tried again
        self._failures: dict[tuple[str, ...], float] = {}  # name set → monotonic retry time
        self._reported: set[str] = set()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"internal-ca-{name}")
        self._kick: asyncio.Event | None = None

    # -- what the proxy reads -------------------------------------------------------------------------

    def certificates(self) -> list[Leaf]:
        return list(self._leaves.values())

    def key_authorization(self, token: str) -> None:
        return None

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
        restricted = bool(self._dns or self._ips)
        wanted: list[tuple[str, ...]] = []
        for names in name_sets:
            keep = []
            for n in names:
                try:
                    v = normalise(n)
                except ValueError as exc:
                    self._refuse(n, str(exc))
                    continue
                if restricted and not permits(v, self._dns, self._ips):
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
        """Seconds until the earliest renewal, failed-storage or failed-issue retry (None: none)."""
        now, mono = _dt.datetime.now(_dt.UTC), time.monotonic()
        # A leaf whose renewal failed waits for its retry, not for its (past) renewal time.
        waits = [
            max((leaf.renew_at - now).total_seconds(), self._failures.get(names, 0.0) - mono)
            for names, leaf in self._leaves.items()
        ]
        waits += [at - mono for names, at in self._failures.items() if names not in self._leaves]
        if self._root is None and self._wanted:
            waits.append(self._root_retry - mono)
        return max(min(waits), _MIN_WAKE) if waits else None

    async def _pass(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._wanted:
            self._leaves.clear()
            self._failures.clear()
            return
        if not await self._have_root(loop):
            return
        wanted = self._within_root(list(self._wanted))
        for stale in set(self._leaves) - set(wanted):
            del self._leaves[stale]
        for stale in set(self._failures) - set(wanted):
            del self._failures[stale]
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
            log.error("resolver %s: cannot issue for %s", self.name, ", ".join(names), exc_info=exc)
        for names, leaf in issued.items():
            self._failures.pop(names, None)
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
            if str(exc) != self._root_error:
                self._root_error = str(exc)
                log.error("resolver %s: %s; serving no certificates from it", self.name, exc)
            return False
        if self._root_error is not None:
            log.info("resolver %s: the internal CA in %s is usable now", self.name, self.settings.storage)
        self._root_error = None
        self._warn_on_constraint_mismatch()
        return True

    def _warn_on_constraint_mismatch(self) -> None:
        assert self._root is not None
        root = self._root
        want = (set(self._dns), set(self._ips)) if self._dns or self._ips else None
        have = (set(root.dns or ()), set(root.ips or ())) if root.dns is not None else None
        if want != have:
            log.warning(
                "resolver %s: the root in %s was made with permitted domains %s, the configuration says "
                "%s; names are issued only where both allow; rotate the root to change its constraints",
                self.name,
                self.settings.storage,
                _describe(have),
                _describe(want),
            )

    def _within_root(self, wanted: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
        """``wanted`` less the names the root's own constraints forbid (clients would refuse them)."""
        assert self._root is not None
        root = self._root
        if root.dns is None and root.ips is None:
            return wanted
        out = []
        for names in wanted:
            keep = tuple(n for n in names if permits(normalise(n), root.dns, root.ips))
            for n in set(names) - set(keep):
                self._refuse(n, f"outside the name constraints of the root in {self.settings.storage}")
            if keep:
                out.append(keep)
        return out


def _describe(constraints: tuple[set[str], set[Network]] | None) -> str:
    if constraints is None:
        return "(none)"
    return ", ".join(sorted(constraints[0]) + sorted(str(n) for n in constraints[1])) or "(none)"


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
