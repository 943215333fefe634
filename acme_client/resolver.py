"""One ``certificatesResolvers.<name>.acme``: keeps a certificate for every name set it is asked for.

The proxy tells the resolver which name sets it wants (one per router with ``tls.certResolver``); the
resolver orders what is missing or due for renewal, one order at a time, in a single worker thread (the
``acme`` library blocks, and a ``ClientNetwork`` must stay in one thread). Issued certificates go to
``acme.json`` first, then ``on_change`` tells the proxy to rebuild its certificate store. Failures back off
per name set from 1 minute to 6 hours, so an unreachable or refusing CA sees a few attempts, never a loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as _dt
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from acme_client.issuer import AcmeError, Issuer, Solver, generate_key
from acme_client.storage import AcmeStorage, StoredAccount, StoredCertificate
from acme_client.tls_alpn import challenge_certificate

log = logging.getLogger("dockroute.acme")

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
_PRIVATE_SUFFIXES = (
    ".local",
    ".localhost",
    ".internal",
    ".lan",
    ".home.arpa",
    ".test",
    ".example",
    ".invalid",
)
_BACKOFF_MIN, _BACKOFF_MAX = 60.0, 6 * 3600.0
_AFTER_FAILED_VALIDATION = 3600.0
# Problem types that mean "the CA looked and your proof was wrong", as opposed to the CA being unreachable,
# overloaded or rate limiting.
_VALIDATION_PROBLEMS = (
    "unauthorized",
    "incorrectResponse",
    "connection",
    "dns",
    "caa",
    "rejectedIdentifier",
    "tls",
)


def _validation_failed(exc: BaseException) -> bool:
    text = str(exc)
    return any(f"urn:ietf:params:acme:error:{p}" in text for p in _VALIDATION_PROBLEMS)


def why_not_public(name: str) -> str | None:
    """Why no public CA would issue for ``name`` (None when it could)."""
    n = name.lower().rstrip(".")
    try:
        ipaddress.ip_address(n.strip("[]"))
        return "an IP address"
    except ValueError:
        pass
    if "." not in n:
        return "a single-label name"
    for suffix in _PRIVATE_SUFFIXES:
        if n.endswith(suffix) or n == suffix[1:]:
            return f"a {suffix} name"
    return None


def _enabled(value: Any) -> bool:
    """Traefik's switch sections: ``tlsChallenge: {}`` (present, empty) turns it on, as does ``true``
    from a flag or env; absent, ``false`` or ``null`` leave it off."""
    if isinstance(value, str):
        return value.strip().lower() in ("", "true", "1", "yes", "on")
    return value is not None and value is not False


@dataclass(frozen=True, slots=True)
class ResolverSettings:
    """``certificatesResolvers.<name>.acme`` (Traefik's keys, read case-insensitively)."""

    email: str | None = None
    storage: str = "acme.json"
    ca_server: str = LETS_ENCRYPT
    key_type: str = "EC256"
    http_entry_point: str | None = None
    tls_challenge: bool = False
    ca_certificates: tuple[str, ...] = ()

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> ResolverSettings:
        def get(d: Mapping[str, Any], key: str, default: Any = None) -> Any:
            for k, v in d.items():
                if k.lower() == key.lower():
                    return v
            return default

        http = get(raw, "httpChallenge") or {}
        cas = get(raw, "caCertificates") or ()
        if isinstance(cas, str):
            cas = tuple(c.strip() for c in cas.split(",") if c.strip())
        ca_server = get(raw, "caServer", LETS_ENCRYPT)
        return cls(
            email=get(raw, "email"),
            storage=get(raw, "storage", "acme.json"),
            ca_server=ca_server,
            key_type=str(get(raw, "keyType", "EC256")),
            http_entry_point=get(http, "entryPoint") if isinstance(http, Mapping) else None,
            tls_challenge=_enabled(get(raw, "tlsChallenge")),
            ca_certificates=tuple(cas),
        )


class AcmeResolver:
    def __init__(self, name: str, settings: ResolverSettings, on_change: Callable[[], None]) -> None:
        self.name = name
        self.settings = settings
        self.on_change = on_change
        self.storage = AcmeStorage(settings.storage)
        self.tokens: dict[str, str] = {}  # HTTP-01: token → key authorization, read by the proxy
        # TLS-ALPN-01: name → (certificate, key) to present to acme-tls/1 clients, read by the proxy
        self.alpn_certs: dict[str, tuple[bytes, bytes]] = {}
        self._solvers = self._make_solvers(settings)
        self._certs: dict[tuple[str, ...], StoredCertificate] = {}
        self._account: StoredAccount | None = None
        self._wanted: list[tuple[str, ...]] = []
        self._failures: dict[tuple[str, ...], tuple[float, float]] = {}  # names → (retry at, delay)
        self._reported: set[str] = set()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"acme-{name}")
        self._local = threading.local()
        self._task: asyncio.Task[None] | None = None
        self._kick: asyncio.Event | None = None
        self._load()

    def _load(self) -> None:
        try:
            state = self.storage.load().get(self.name)
        except Exception as exc:
            log.error("resolver %s: %s; starting without stored certificates", self.name, exc)
            return
        if state is not None:
            self._account = state.account
            for cert in state.certificates:
                self._certs[(cert.main, *cert.sans)] = cert

    # -- what the proxy reads (structurally the router's CertificateSource) ----------------------------

    def certificates(self) -> list[StoredCertificate]:
        return list(self._certs.values())

    def key_authorization(self, token: str) -> str | None:
        return self.tokens.get(token)

    def alpn_challenge(self, server_name: str) -> tuple[bytes, bytes] | None:
        """The TLS-ALPN-01 certificate and key pending for ``server_name``, if any."""
        return self.alpn_certs.get(server_name)

    def _make_solvers(self, settings: ResolverSettings) -> list[Solver]:
        solvers = []
        if settings.http_entry_point or not settings.tls_challenge:
            solvers.append(
                Solver(
                    "http-01",
                    lambda domain, token, key_auth: self.tokens.__setitem__(token, key_auth),
                    lambda domain, token: self.tokens.pop(token, None),
                )
            )
        if settings.tls_challenge:
            solvers.append(
                Solver(
                    "tls-alpn-01",
                    lambda domain, token, key_auth: self.alpn_certs.__setitem__(
                        domain, challenge_certificate(domain, key_auth)
                    ),
                    lambda domain, token: self.alpn_certs.pop(domain, None),
                )
            )
        return solvers

    # -- what the proxy asks for ------------------------------------------------------------------------

    def want(self, name_sets: Iterable[tuple[str, ...]]) -> None:
        wanted = []
        for names in name_sets:
            keep = []
            for n in names:
                why = why_not_public(n)
                if why is None:
                    keep.append(n.lower().rstrip("."))
                elif n not in self._reported:
                    self._reported.add(n)
                    log.info(
                        "resolver %s: no certificate ordered for %s (%s): the default one serves it",
                        self.name,
                        n,
                        why,
                    )
            if keep:
                wanted.append(tuple(dict.fromkeys(keep)))
        self._wanted = wanted
        if self._kick is not None:
            self._kick.set()

    async def run(self) -> None:
        """Check at once, on every change of wanted names, and every 10 minutes (renewals)."""
        self._kick = asyncio.Event()
        self._kick.set()
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    async with asyncio.timeout(600):
                        await self._kick.wait()
                except TimeoutError:
                    pass
                self._kick.clear()
                for names in list(self._wanted):
                    retry_at, delay = self._failures.get(names, (0.0, 0.0))
                    if time.monotonic() < retry_at:
                        loop.call_later(retry_at - time.monotonic(), self._kick.set)
                        continue
                    try:
                        if not self._due(names):
                            continue
                        cert = await loop.run_in_executor(self._executor, self._order, names)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # AcmeError, storage trouble, a bug: never end the loop
                        if not isinstance(exc, AcmeError):
                            log.exception("resolver %s: unexpected error for %s", self.name, ", ".join(names))
                        delay = min(max(delay * 2, _BACKOFF_MIN), _BACKOFF_MAX)
                        if _validation_failed(exc):
                            # Let's Encrypt's failed-validation limit: no new order for these names within
                            # the hour, however the backoff stands.
                            delay = max(delay, _AFTER_FAILED_VALIDATION)
                        self._failures[names] = (time.monotonic() + delay, delay)
                        log.error(
                            "resolver %s: order for %s failed: %s; next try in %ds",
                            self.name,
                            ", ".join(names),
                            exc,
                            delay,
                        )
                        continue
                    self._failures.pop(names, None)
                    self._certs[names] = cert
                    log.info(
                        "resolver %s: certificate for %s obtained, valid until %s",
                        self.name,
                        ", ".join(names),
                        cert.not_after,
                    )
                    self.on_change()
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _due(self, names: tuple[str, ...]) -> bool:
        """No certificate covering ``names``, or less than a third of its lifetime left."""
        for cert in self._certs.values():
            if set(names) <= set(cert.names):
                leaf = cert._leaf  # noqa: SLF001 - parsed once and cached by the storage record
                lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
                left = leaf.not_valid_after_utc - _dt.datetime.now(_dt.UTC)
                return left < lifetime / 3
        return True

    # -- the worker thread --------------------------------------------------------------------------------

    def _issuer(self) -> Issuer:
        issuer = getattr(self._local, "issuer", None)
        if issuer is None:
            s = self.settings
            ca_bundle = s.ca_certificates[0] if s.ca_certificates else None
            # An RSA account key: the only kind Traefik can read back from acme.json.
            key = self._account.private_key_pem if self._account is not None else generate_key("RSA2048")
            issuer = Issuer(s.ca_server, key, s.email, ca_bundle=ca_bundle, key_type=s.key_type)
            self._local.issuer = issuer
        return issuer

    def _order(self, names: tuple[str, ...]) -> StoredCertificate:
        issuer = self._issuer()
        if self._account is None or issuer.registration_uri is None:
            issuer.register()
            self._account = StoredAccount(
                email=self.settings.email or "",
                registration_uri=issuer.registration_uri,
                registration_body={},
                private_key_pem=issuer.account_key_pem,
                key_type=self.settings.key_type,
            )
            self.storage.put_account(self.name, self._account)
        issued = issuer.issue(list(names), self._solvers)
        cert = StoredCertificate(
            main=names[0],
            sans=tuple(names[1:]),
            certificate_pem=issued.fullchain_pem,
            key_pem=issued.key_pem,
        )
        self.storage.put_certificate(self.name, cert)  # on disk before it is served
        return cert
