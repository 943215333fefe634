"""The built-in CA's root on disk: ``root.crt`` and ``root.key`` in the storage folder, read or created.

Split from :mod:`acme_client.internal_ca` (which issues leaves from it). Everything here blocks: the CA
calls it from its worker thread, ``dockroute internal-ca root`` directly.

- An existing root is read without any lock, so a read-only storage folder (a read-only mount, a
  folder owned by another user) serves a root made earlier. Only creating takes the lock file.
- Creation survives a crash at any point: the key and the certificate are written whole to
  ``.root.key.new`` and ``.root.crt.new``, the key is linked in (never over an existing one), and the
  certificate renamed in last. A ``root.key`` found without ``root.crt`` but with the matching pending
  certificate is completed; one without it (a deleted ``root.crt``) is an error naming the file, never a
  reason to make another root, since devices may trust the old one.
- With permitted domains, the root carries critical X.509 name constraints (RFC 5280 section
  4.2.1.10): those DNS subtrees only, and every IP address excluded, so a device trusting the root
  rejects any other name it might sign, even if ``root.key`` leaked. The CommonName of leaves is kept to
  DNS names for the same reason (OpenSSL checks a CN against DNS constraints).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import ipaddress
import logging
import os
import secrets
import stat
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acme_client.settings import parse_permitted_domains

__all__ = ["ROOT_CERT", "ROOT_KEY", "InternalCAError", "Root", "load_or_create_root", "load_root"]

log = logging.getLogger("dockroute.acme")

ROOT_CERT, ROOT_KEY = "root.crt", "root.key"
_LOCK, _NEW_KEY, _NEW_CERT = ".root.lock", ".root.key.new", ".root.crt.new"
ROOT_LIFETIME = _dt.timedelta(days=3653)  # ten years
BACKDATE = _dt.timedelta(minutes=5)  # clients whose clock is a little behind accept a fresh certificate


class InternalCAError(Exception):
    """The CA's storage cannot be used: unsafe permissions, unreadable, unwritable, inconsistent."""


@dataclass(frozen=True, slots=True)
class Root:
    """The root as read from (or written to) storage. ``dns``: its permitted DNS subtrees (None:
    unconstrained; a constrained root permits no IP address). ``created``: made by this call."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey = field(repr=False)
    pem: bytes
    dns: tuple[str, ...] | None
    created: bool = False


def _make_root_cert(key: ec.EllipticCurvePrivateKey, label: str, permitted: tuple[str, ...]) -> bytes:
    now = _dt.datetime.now(_dt.UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dockroute"),
            # A random tag: two installations' roots never share a subject in one trust store.
            x509.NameAttribute(NameOID.COMMON_NAME, f"dockroute internal CA {label} {secrets.token_hex(4)}"),
        ]
    )
    usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)  # certs and CRLs
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + ROOT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    dns = parse_permitted_domains(permitted)
    if dns:
        # Name constraints apply per name type: without the exclusion, IP SANs would be unconstrained.
        every_ip = [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
        constraints = x509.NameConstraints(
            permitted_subtrees=[x509.DNSName(d) for d in dns],
            excluded_subtrees=[x509.IPAddress(net) for net in every_ip],
        )
        builder = builder.add_extension(constraints, critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _read_key(path: str) -> bytes | None:
    """``root.key``'s bytes, None when missing; refused when group or others may read it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):  # not there: creating it says why it cannot be
        return None
    except OSError as exc:
        raise InternalCAError(f"cannot open {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as f:
        perm = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
        if perm & 0o077:
            raise InternalCAError(f"permissions {perm:o} for {path} are too open, please use 600")
        return f.read()


def _read_cert(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):  # not there: creating it says why it cannot be
        return None
    except OSError as exc:
        raise InternalCAError(f"cannot read {path}: {exc.strerror}") from exc


def _write_new(path: str, pem: bytes, mode: int) -> None:
    """Write ``path`` whole (fsynced), replacing a leftover of an earlier crash."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), mode)
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())


def _sync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _parse_root(cert_pem: bytes, key_pem: bytes, folder: str, label: str, created: bool = False) -> Root:
    """Both files as a :class:`Root`: they must belong together, and the root must not have expired
    (warned of 90 days before)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError as exc:
        raise InternalCAError(f"cannot read the root in {folder}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InternalCAError(f"{os.path.join(folder, ROOT_KEY)} is not an EC key")
    if cert.public_key() != key.public_key():
        raise InternalCAError(f"{ROOT_CERT} and {ROOT_KEY} in {folder} do not belong together")
    expiry = cert.not_valid_after_utc
    left = expiry - _dt.datetime.now(_dt.UTC)
    if left <= _dt.timedelta(0):
        raise InternalCAError(f"the root in {folder} expired on {expiry:%Y-%m-%d}: rotate it")
    if left < _dt.timedelta(days=90):
        log.warning("internal CA %s: the root in %s expires on %s: rotate it", label, folder, expiry)
    try:
        nc = cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return Root(cert, key, cert_pem, None, created)
    dns = tuple(str(g.value).lower() for g in nc.permitted_subtrees or [] if isinstance(g, x509.DNSName))
    return Root(cert, key, cert_pem, dns, created)


def load_root(folder: str, label: str) -> Root | None:
    """The complete root in ``folder``, read without the lock (a read-only folder is fine); None when
    either file is missing (not created yet, or being created right now)."""
    folder = os.path.abspath(folder)
    key_pem = _read_key(os.path.join(folder, ROOT_KEY))
    cert_pem = _read_cert(os.path.join(folder, ROOT_CERT))
    if key_pem is None or cert_pem is None:
        return None
    return _parse_root(cert_pem, key_pem, folder, label)


def load_or_create_root(folder: str, label: str, permitted: tuple[str, ...] = ()) -> Root:
    """The root in ``folder``: read when there, else created (folder 0700, key 0600). Processes
    sharing the folder (the proxy and ``dockroute internal-ca root``) serialise creation on a lock
    file, so exactly one creates it and the others read it."""
    folder = os.path.abspath(folder)
    root = load_root(folder, label)
    if root is not None:
        return root
    try:
        if not os.path.isdir(folder):
            os.makedirs(folder, mode=0o700, exist_ok=True)
            os.chmod(folder, 0o700)
        lock_fd = os.open(os.path.join(folder, _LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
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
    key_pem, cert_pem = _read_key(key_path), _read_cert(cert_path)
    if key_pem is not None and cert_pem is not None:
        return _parse_root(cert_pem, key_pem, folder, label)  # another process made it meanwhile
    if key_pem is not None:
        return _complete(folder, label, key_pem)
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
    new_key, new_cert = os.path.join(folder, _NEW_KEY), os.path.join(folder, _NEW_CERT)
    _write_new(new_key, key_pem, 0o600)
    _write_new(new_cert, cert_pem, 0o644)
    _link_in(new_key, key_path)
    os.replace(new_cert, cert_path)  # last: root.crt present means the root is whole
    _sync_folder(folder)
    log.info("internal CA %s: created a new root in %s", label, folder)
    return _parse_root(cert_pem, key_pem, folder, label, created=True)


def _link_in(new_key: str, key_path: str) -> None:
    """``new_key`` becomes ``root.key``, never over an existing key, whoever wrote it (EEXIST then).
    A file system without hard links (vfat, some network shares) gets a rename: the lock is held and
    no key was there a moment ago."""
    try:
        os.link(new_key, key_path)
    except FileExistsError:
        raise
    except OSError:
        os.rename(new_key, key_path)
        return
    os.unlink(new_key)


def _complete(folder: str, label: str, key_pem: bytes) -> Root:
    """``root.key`` without ``root.crt``: a creation interrupted before its last rename is finished
    with the certificate written for that key; anything else is left for the user to repair."""
    key_path, cert_path = os.path.join(folder, ROOT_KEY), os.path.join(folder, ROOT_CERT)
    pending = _read_cert(os.path.join(folder, _NEW_CERT))
    if pending is not None:
        with contextlib.suppress(InternalCAError):
            root = _parse_root(pending, key_pem, folder, label, created=True)
            os.replace(os.path.join(folder, _NEW_CERT), cert_path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, _NEW_KEY))
            _sync_folder(folder)
            log.warning(
                "internal CA %s: finished creating the root in %s (interrupted before)", label, folder
            )
            return root
    raise InternalCAError(
        f"{key_path} exists without {ROOT_CERT}: restore {ROOT_CERT}, or move {ROOT_KEY} away to "
        "create a new root"
    )
