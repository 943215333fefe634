"""Traefik-compatible ``acme.json`` storage.

The file layout matches what Traefik's ``LocalStore`` writes (pkg/provider/acme), so a Traefik
user's ``acme.json`` can be used unchanged in both directions::

    {
      "<resolver>": {
        "Account": {
          "Email": "...",
          "Registration": {"body": {...}, "uri": "https://..."},
          "PrivateKey": "<base64 of PKCS#1 DER>",   # Go []byte -> base64; x509.MarshalPKCS1PrivateKey
          "KeyType": "4096"                          # lego certcrypto.KeyType: 2048/4096/8192/P256/P384
        },
        "Certificates": [
          {"domain": {"main": "...", "sans": [...]},
           "certificate": "<base64 of PEM chain>", "key": "<base64 of PEM key>", "Store": "default"}
        ]
      }
    }

Anything in the file this module does not understand (other resolvers, unknown keys) is kept on save.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as _dt
import errno
import json
import logging
import os
import stat
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from acme_client import shared_alpn, shared_challenges
from acme_client.order_lock import OrderLock, StoreLock
from acme_client.report import CertificateFacts, read_facts

log = logging.getLogger(__name__)

__all__ = [
    "AcmeStorage",
    "CorruptStore",
    "ResolverState",
    "StorageError",
    "StoredAccount",
    "StoredCertificate",
    "file_signature",
]


class StorageError(Exception):
    """acme.json cannot be used (unsafe permissions, unreadable, unwritable)."""


class CorruptStore(StorageError):
    """acme.json holds no JSON object (a broken write by another program)."""


# (device, inode, size, modification time in ns): a new inode after an atomic rename, a new size or time
# after a write in place.
Signature = tuple[int, int, int, int]


def file_signature(st: os.stat_result) -> Signature:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class StoredAccount:
    email: str
    registration_uri: str | None
    registration_body: Mapping[str, Any]
    # Unencrypted PEM. Loaded keys come back as PKCS#8 PEM ("BEGIN PRIVATE KEY").
    private_key_pem: bytes
    key_type: str = "4096"


@dataclass(frozen=True)
class StoredCertificate:
    main: str
    sans: tuple[str, ...]
    certificate_pem: bytes  # full chain, leaf first
    key_pem: bytes
    store: str = "default"

    @cached_property
    def _leaf(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate_pem)

    @cached_property
    def facts(self) -> CertificateFacts:
        """Issuer, dates, serial of the leaf, for reports (parsed once: see ``acme_client.report``)."""
        return read_facts(self.certificate_pem)

    @property
    def not_after(self) -> _dt.datetime:
        """Expiry of the leaf certificate (timezone-aware, UTC)."""
        return self._leaf.not_valid_after_utc

    @cached_property
    def names(self) -> tuple[str, ...]:
        """DNS names the leaf certificate covers (SAN, else the subject CN)."""
        leaf = self._leaf
        try:
            san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            dns = tuple(san.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            dns = ()
        if dns:
            return dns
        cns = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return tuple(str(a.value) for a in cns)


@dataclass(frozen=True)
class ResolverState:
    account: StoredAccount | None = None
    certificates: tuple[StoredCertificate, ...] = field(default_factory=tuple)


# ---------------------------------------------------------------------------------------------
# Encoding helpers (Go's encoding/json writes []byte as standard, padded base64)


def _b64e(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64d(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("expected a base64 string")
    return base64.b64decode(value.encode("ascii"), validate=False)


def _account_key_to_traefik(pem: bytes) -> bytes:
    """PEM -> the DER Traefik stores: PKCS#1 for RSA (what Traefik reads); SEC1 for EC."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise StorageError(f"unsupported ACME account key type {type(key).__name__}")
    if not isinstance(key, rsa.RSAPrivateKey):
        log.warning("ACME account key is not RSA; Traefik itself can only read RSA (PKCS#1) account keys")
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _account_key_from_traefik(raw: bytes) -> bytes:
    """DER (PKCS#1 / SEC1 / PKCS#8) or PEM -> PKCS#8 PEM."""
    if raw.lstrip().startswith(b"-----BEGIN"):
        key = serialization.load_pem_private_key(raw, password=None)
    else:
        key = serialization.load_der_private_key(raw, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _parse_account(raw: Any) -> StoredAccount | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("Account is not an object")
    pk = raw.get("PrivateKey")
    if not pk:
        raise ValueError("Account has no PrivateKey")
    reg = raw.get("Registration") or {}
    if not isinstance(reg, dict):
        raise ValueError("Account.Registration is not an object")
    body = reg.get("body") or {}
    if not isinstance(body, dict):
        raise ValueError("Account.Registration.body is not an object")
    return StoredAccount(
        email=str(raw.get("Email") or ""),
        registration_uri=reg.get("uri") or None,
        registration_body=body,
        private_key_pem=_account_key_from_traefik(_b64d(pk)),
        key_type=str(raw.get("KeyType") or ""),
    )


def _parse_certificate(raw: Any) -> StoredCertificate | None:
    """One Certificates[] entry; None for entries Traefik would drop too (empty cert or key)."""
    if not isinstance(raw, dict):
        raise ValueError("certificate entry is not an object")
    if not raw.get("certificate") or not raw.get("key"):
        return None
    domain = raw.get("domain") or {}
    if not isinstance(domain, dict):
        raise ValueError("certificate domain is not an object")
    sans = domain.get("sans") or []
    if not isinstance(sans, list):
        raise ValueError("certificate domain.sans is not a list")
    cert = StoredCertificate(
        main=str(domain.get("main") or ""),
        sans=tuple(str(s) for s in sans),
        certificate_pem=_b64d(raw["certificate"]),
        key_pem=_b64d(raw["key"]),
        store=str(raw.get("Store") or "default"),
    )
    cert.not_after  # noqa: B018 - parse now so a broken entry is reported at load, not later
    cert.facts  # noqa: B018 - and read what reports show now, not when the API asks (on the event loop)
    return cert


def _account_to_json(acc: StoredAccount, old: Any) -> dict[str, Any]:
    out: dict[str, Any] = dict(old) if isinstance(old, dict) else {}
    if acc.registration_uri is None and not acc.registration_body:
        registration: Any = None
    else:
        old_reg = out.get("Registration")
        registration = dict(old_reg) if isinstance(old_reg, dict) else {}
        registration["body"] = copy.deepcopy(dict(acc.registration_body))
        if acc.registration_uri is not None:
            registration["uri"] = acc.registration_uri
        else:
            registration.pop("uri", None)
    out.update(
        {
            "Email": acc.email,
            "Registration": registration,
            "PrivateKey": _b64e(_account_key_to_traefik(acc.private_key_pem)),
            "KeyType": acc.key_type,
        }
    )
    return out


def _certificate_to_json(cert: StoredCertificate, old: Any) -> dict[str, Any]:
    out: dict[str, Any] = dict(old) if isinstance(old, dict) else {}
    old_domain = out.get("domain")
    domain: dict[str, Any] = dict(old_domain) if isinstance(old_domain, dict) else {}
    domain["main"] = cert.main
    if cert.sans:
        domain["sans"] = list(cert.sans)
    else:
        domain.pop("sans", None)  # Go: `json:"sans,omitempty"`
    out.update(
        {
            "domain": domain,
            "certificate": _b64e(cert.certificate_pem),
            "key": _b64e(cert.key_pem),
            "Store": cert.store,
        }
    )
    return out


def _unreadable(parse, raw: Any) -> bool:
    try:
        parse(raw)
    except (ValueError, TypeError, binascii.Error):
        return True
    return False


def _entry_main(entry: Any) -> str | None:
    if isinstance(entry, dict) and isinstance(entry.get("domain"), dict):
        return str(entry["domain"].get("main") or "")
    return None


def _resolver_to_json(state: ResolverState, old: Any) -> dict[str, Any]:
    """``state`` is authoritative for what it can express; entries this module could not read
    (and so could not have been handed to the caller) are kept rather than silently dropped."""
    out: dict[str, Any] = dict(old) if isinstance(old, dict) else {}
    old_account = out.get("Account")
    if state.account is not None:
        out["Account"] = _account_to_json(state.account, old_account)
    elif old_account is None or not _unreadable(_parse_account, old_account):
        out["Account"] = None
    old_entries = out.get("Certificates") if isinstance(out.get("Certificates"), list) else []
    old_by_main: dict[str, Any] = {}
    for entry in old_entries:
        main = _entry_main(entry)
        if main is not None:
            old_by_main.setdefault(main, entry)
    new_mains = {c.main for c in state.certificates}
    certs = [_certificate_to_json(c, old_by_main.get(c.main)) for c in state.certificates]
    certs += [
        e for e in old_entries if _entry_main(e) not in new_mains and _unreadable(_parse_certificate, e)
    ]
    out["Certificates"] = certs or None  # Traefik writes null for an empty list
    return out


# ---------------------------------------------------------------------------------------------


_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(path: str) -> threading.RLock:
    """One lock per file, shared by every resolver storing into it: Traefik users often point several
    resolvers at one acme.json, and each write is a read-modify-write of the whole file."""
    key = os.path.realpath(path)
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.RLock())


_TMP_PREFIX, _TMP_SUFFIX = ".acme.json.", ".tmp"
# A temporary file untouched this long belongs to a writer that died (kill -9, power cut) between creating
# it and renaming it: no live write takes a minute.
_STALE_TEMPORARY_AFTER = 60.0


def _remove_stale_temporaries(folder: str) -> None:
    """Remove the temporary files that killed writers left in ``folder``: they never break a load (only
    acme.json itself is read) but hold private keys and would pile up, one per crash."""
    limit = time.time() - _STALE_TEMPORARY_AFTER
    try:
        names = [n for n in os.listdir(folder) if n.startswith(_TMP_PREFIX) and n.endswith(_TMP_SUFFIX)]
    except OSError:
        return
    for name in names:
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_mtime < limit:
                os.unlink(path)
        except OSError:
            pass  # gone meanwhile, or not ours to remove: harmless either way


class AcmeStorage:
    """One acme.json file. Thread-safe within a process; writes are atomic."""

    shares_files = True  # challenge answers and replica files beside it (acme_client.shared_alpn)

    def __init__(self, path: str) -> None:
        self.path = os.fspath(path)
        self._lock = _lock_for(self.path)
        self.seen: Signature | None = None  # the file as last read (under ``_lock``)
        self.written: Signature | None = None  # the file as this object last wrote it: nothing new in it

    # -- reading ------------------------------------------------------------------------------

    def _read_raw(self, keep_corrupt: bool = False) -> dict[str, Any]:
        """The file's JSON object; {} if missing/empty. Corrupt files are moved aside, or with
        ``keep_corrupt`` left where they are and raised as :class:`CorruptStore`."""
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            self.seen = None
            return {}
        except OSError as e:
            raise StorageError(f"cannot open {self.path}: {e}") from e
        try:
            st = os.fstat(fd)
            self.seen = file_signature(st)
            perm = stat.S_IMODE(st.st_mode)
            if perm & 0o077:
                raise StorageError(f"permissions {perm:o} for {self.path} are too open, please use 600")
            with os.fdopen(fd, "rb") as f:
                fd = -1
                data = f.read()
        except OSError as e:
            raise StorageError(f"cannot read {self.path}: {e}") from e
        finally:
            if fd >= 0:
                os.close(fd)
        if not data.strip():
            return {}
        try:
            parsed = json.loads(data)
            if not isinstance(parsed, dict):
                raise ValueError(f"top level is {type(parsed).__name__}, not an object")
        except (ValueError, UnicodeDecodeError) as e:
            if keep_corrupt:
                raise CorruptStore(f"{self.path} is not a JSON object: {e}") from e
            aside = self._move_aside()
            log.error(
                "ACME storage %s is corrupt (%s); moved it to %s and starting with empty ACME state",
                self.path,
                e,
                aside,
            )
            return {}
        return parsed

    def _move_aside(self) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        base = f"{self.path}.corrupt-{stamp}"
        aside, n = base, 0
        while os.path.lexists(aside):
            n += 1
            aside = f"{base}.{n}"
        try:
            os.rename(self.path, aside)
        except OSError as e:
            raise StorageError(f"{self.path} is corrupt and could not be moved aside: {e}") from e
        return aside

    def load(self, keep_corrupt: bool = False) -> dict[str, ResolverState]:
        """Every resolver's state. A corrupt file is moved aside (start with empty state, as Traefik), or
        with ``keep_corrupt`` raised as :class:`CorruptStore` and left alone."""
        with self._lock:
            raw = self._read_raw(keep_corrupt)
        result: dict[str, ResolverState] = {}
        for name, entry in raw.items():
            if entry is None:
                continue
            if not isinstance(entry, dict):
                log.error("ACME storage %s: resolver %r is not an object; ignoring it", self.path, name)
                continue
            try:
                account = _parse_account(entry.get("Account"))
            except (ValueError, TypeError, binascii.Error) as e:
                log.error("ACME storage %s: unreadable account for resolver %r: %s", self.path, name, e)
                account = None
            certs: list[StoredCertificate] = []
            for i, c in enumerate(entry.get("Certificates") or []):
                try:
                    cert = _parse_certificate(c)
                except (ValueError, TypeError, binascii.Error) as e:
                    log.error(
                        "ACME storage %s: skipping unreadable certificate #%d of resolver %r: %s",
                        self.path,
                        i,
                        name,
                        e,
                    )
                    continue
                if cert is not None:
                    certs.append(cert)
            result[name] = ResolverState(account=account, certificates=tuple(certs))
        return result

    # -- writing ------------------------------------------------------------------------------

    def save(self, state: Mapping[str, ResolverState]) -> None:
        """Write the given resolvers; resolvers not in ``state`` and unknown keys are kept as they are.
        The read-modify-write holds a lock shared with other processes using the same file too, so that
        two replicas storing different certificates at once both keep theirs."""
        with self._lock, self._across_processes():
            self._save(state)

    def _across_processes(self) -> StoreLock:
        return StoreLock(self.path)

    def order_lock(self, resolver: str, names: Iterable[str], timeout: float) -> OrderLock:
        """The lock one orderer of ``names`` holds among the processes sharing this store (``flock``)."""
        return OrderLock(self.path, resolver, names, timeout=timeout)

    # -- pending challenge answers, for the replicas the CA's validation reaches (worker threads only) --

    def publish_answer(self, kind: str, key: str, key_authorization: str) -> None:
        """Make the answer to a ``kind`` challenge for ``key`` (HTTP-01 token, TLS-ALPN-01 domain) known to
        the other processes sharing this store, before the CA is told: a file beside it, which a TLS-ALPN-01
        answer waits for every live replica to have taken (:mod:`acme_client.shared_alpn`)."""
        if kind == "tls-alpn-01":
            shared_alpn.published(self.path, key, True)
        shared_challenges.publish_answer(self.path, kind, key, key_authorization)
        if kind == "tls-alpn-01":
            shared_alpn.wait_for_replicas(self.path, key, key_authorization)

    def withdraw_answer(self, kind: str, key: str) -> None:
        shared_challenges.withdraw_answer(self.path, kind, key)
        if kind == "tls-alpn-01":
            shared_alpn.withdraw_acks(self.path, key)
            shared_alpn.published(self.path, key, False)

    def read_answer(self, kind: str, key: str) -> str | None:
        """The answer another process published for ``key``, or None."""
        return shared_challenges.read_answer(self.path, kind, key)

    def read_answers(self, kind: str) -> dict[str, str]:
        """Every ``kind`` answer published for the processes sharing this store (key → key
        authorization), in one read: what a lookup of any token is answered from."""
        return shared_challenges.read_answers(self.path, kind)

    def signature(self) -> Signature | None:
        """The file's :data:`Signature` (None when missing): one ``stat``, cheap enough to ask every few
        seconds to learn whether another process wrote it."""
        try:
            return file_signature(os.stat(self.path))
        except FileNotFoundError:
            return None

    def reload(self) -> tuple[dict[str, ResolverState], Signature | None]:
        """What another process wrote, and the signature of the file read, read under the lock its writes
        hold (a store rewritten in place is never read half-written). A corrupt file is left where it is
        for its writer: :class:`CorruptStore`. Blocks: worker thread only."""
        with self._lock, self._across_processes():
            return self.load(keep_corrupt=True), self.seen

    def _save(self, state: Mapping[str, ResolverState]) -> None:
        raw = self._read_raw()
        for name, rs in state.items():
            raw[name] = _resolver_to_json(rs, raw.get(name))
        self._write_atomic(json.dumps(raw, indent=2).encode("utf-8"))

    def _write_atomic(self, data: bytes) -> None:
        """A temporary file next to acme.json, renamed over it: a crash leaves the old file or the new one.
        A file bind-mounted on its own (Traefik's ``./acme.json:/acme.json``) cannot be renamed over
        (EBUSY), and its folder is often not ours to write in: then it is rewritten in place, as Traefik
        does."""
        target = os.path.realpath(self.path)
        folder = os.path.dirname(target) or "."
        try:
            fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX, dir=folder)  # mode 0600
        except OSError as e:
            # only "this folder is not ours" (a file mounted at /): a full disk, quota or fd limit must not
            # turn into a non-atomic rewrite that a partial write would corrupt
            if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and os.access(target, os.W_OK):
                return self._write_in_place(target, data)
            raise StorageError(f"cannot create a temporary file next to {self.path}: {e}") from e
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
                written = file_signature(os.fstat(f.fileno()))  # a rename keeps inode, size and mtime
            os.replace(tmp, target)
            self.written = written
            _remove_stale_temporaries(folder)
        except BaseException as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if isinstance(e, OSError) and e.errno in (errno.EBUSY, errno.EXDEV):
                return self._write_in_place(target, data)
            if isinstance(e, OSError):
                raise StorageError(f"cannot write {self.path}: {e}") from e
            raise
        try:
            dfd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            return  # the data is in place; a folder we cannot open cannot be fsynced
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)

    def _write_in_place(self, target: str, data: bytes) -> None:
        """Overwrite the file itself (same inode, so a bind mount keeps it), then cut what is left over."""
        try:
            with open(target, "r+b") as f:
                f.write(data)
                f.truncate()
                f.flush()
                os.fsync(f.fileno())
                self.written = file_signature(os.fstat(f.fileno()))
        except OSError as e:
            raise StorageError(f"cannot write {self.path}: {e}") from e

    def _update(self, resolver: str, change) -> None:
        with self._lock, self._across_processes():
            current = self.load().get(resolver) or ResolverState()
            self._save({resolver: change(current)})

    def put_certificate(self, resolver: str, cert: StoredCertificate) -> None:
        """Add ``cert`` to ``resolver``, replacing any certificate with the same main domain."""

        def change(rs: ResolverState) -> ResolverState:
            certs = [cert if c.main == cert.main else c for c in rs.certificates]
            if cert not in certs:
                certs.append(cert)
            return ResolverState(account=rs.account, certificates=tuple(certs))

        self._update(resolver, change)

    def put_account(self, resolver: str, account: StoredAccount) -> None:
        self._update(resolver, lambda rs: ResolverState(account=account, certificates=rs.certificates))
