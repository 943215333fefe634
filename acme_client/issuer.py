"""Blocking ACME v2 issuance over HTTP-01, TLS-ALPN-01 or DNS-01 (certbot's ``acme`` library).

Everything here blocks (``requests`` and ``time.sleep`` while polling): run it in an executor thread,
one :class:`Issuer` per thread, since it owns a ``ClientNetwork`` that keeps nonces.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import logging
import math
import os
import re
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import josepy as jose
import requests
from acme import challenges, client, crypto_util, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from acme_client import tls_alpn
from acme_client.nonce_retry import NonceRetryNetwork

__all__ = [
    "AcmeError",
    "AriError",
    "IssuedCertificate",
    "Issuer",
    "RenewalAdvice",
    "Solver",
    "ca_bundle",
    "generate_key",
]

log = logging.getLogger("dockroute.acme")

_SAID_LOCK = threading.Lock()  # around Issuer._said: the issuers of one resolver's threads share it
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
# RFC 9773 section 4.3.3: without a usable Retry-After, ask again in six hours.
_ARI_DEFAULT_RECHECK = 6 * 3600.0

# Traefik/lego spellings are accepted too ("P256", "4096", ...).
_KEY_TYPES = {
    "EC256": ("ec", ec.SECP256R1),
    "P256": ("ec", ec.SECP256R1),
    "EC384": ("ec", ec.SECP384R1),
    "P384": ("ec", ec.SECP384R1),
    "RSA2048": ("rsa", 2048),
    "2048": ("rsa", 2048),
    "RSA4096": ("rsa", 4096),
    "4096": ("rsa", 4096),
    "RSA8192": ("rsa", 8192),
    "8192": ("rsa", 8192),
}


class AcmeError(Exception):
    """Anything that went wrong talking to the CA; ``str()`` carries the CA's problem document if any."""


class AriError(AcmeError):
    """The CA's renewal information (ARI) could not be had for a certificate.

    ``recheck_in`` is how many seconds to wait before asking again, so that a failing CA is not asked on
    every check."""

    def __init__(
        self, message: str, recheck_in: float = _ARI_DEFAULT_RECHECK, unreachable: bool = False
    ) -> None:
        super().__init__(message)
        self.recheck_in = recheck_in
        self.unreachable = unreachable  # no answer at all (connection, timeout), not a problem document


@dataclass(frozen=True)
class RenewalAdvice:
    """The CA's answer about one certificate (RFC 9773 ACME Renewal Information)."""

    renew_at: _dt.datetime  # timezone-aware; a random point in the CA's suggested window
    recheck_in: float  # seconds until the CA wants to be asked again (its Retry-After)


class _NewOrder(messages.NewOrder):
    """newOrder with RFC 9773's ``replaces`` (acme 5.9 has no field for it)."""

    replaces: str | None = jose.field("replaces", omitempty=True)


def ari_cert_id(cert_pem: bytes) -> str | None:
    """RFC 9773 certificate identifier of the first certificate in ``cert_pem``: base64url(Authority Key
    Identifier) "." base64url(DER serial); None when the certificate has no Authority Key Identifier."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        return None
    if aki is None:
        return None
    serial = cert.serial_number
    der = serial.to_bytes(math.ceil((serial.bit_length() + 1) / 8), "big", signed=True)
    return ".".join(base64.urlsafe_b64encode(b).decode("ascii").rstrip("=") for b in (aki, der))


@dataclass(frozen=True)
class Solver:
    """How one challenge type gets answered.

    ``publish(domain, token, answer)`` must make the answer reachable before it returns (for ``http-01``
    at ``http://<domain>/.well-known/acme-challenge/<token>``, for ``tls-alpn-01`` as the certificate
    presented to ``acme-tls/1`` clients asking for ``domain``, for ``dns-01`` as a TXT record at
    ``_acme-challenge.<domain>``); ``answer`` is the key authorization (the DNS solver derives the TXT
    value from it). ``unpublish(domain, token)`` withdraws it.

    ``settle(published)``, when set, is called once per order after every answer of the order is
    published and before the CA is asked to validate any, with this solver's (domain, token) pairs: the
    DNS solver waits there for the authoritative servers, once for all records. ``recover()``, when set,
    is called in a worker thread at the start of every resolver check: it withdraws what orders that no
    longer run left published (DNS records journaled beside the store by a crashed run, or whose cleanup
    failed).
    """

    typ: str  # "http-01", "tls-alpn-01" or "dns-01"
    publish: Callable[[str, str, str], None]
    unpublish: Callable[[str, str], None]
    settle: Callable[[Sequence[tuple[str, str]]], None] | None = None
    recover: Callable[[], None] | None = None


_CHALLENGE_CLASSES: dict[str, type[challenges.Challenge]] = {
    "http-01": challenges.HTTP01,
    "tls-alpn-01": tls_alpn.TLSALPN01,
    "dns-01": challenges.DNS01,
}


@dataclass(frozen=True)
class IssuedCertificate:
    names: tuple[str, ...]
    fullchain_pem: bytes  # leaf first
    key_pem: bytes


def generate_key(key_type: str = "EC256") -> bytes:
    """A new private key as PKCS#8 PEM."""
    try:
        kind, param = _KEY_TYPES[key_type.upper()]
    except KeyError:
        raise ValueError(f"unknown key type {key_type!r}") from None
    if kind == "ec":
        key = ec.generate_private_key(param())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=param)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _jwk_and_alg(key_pem: bytes) -> tuple[jose.JWK, jose.JWASignature]:
    key = serialization.load_pem_private_key(key_pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = {256: jose.ES256, 384: jose.ES384, 521: jose.ES512}.get(key.curve.key_size)
        if alg is None:
            raise ValueError(f"unsupported EC curve {key.curve.name}")
        return jose.JWKEC(key=key), alg
    if isinstance(key, rsa.RSAPrivateKey):
        return jose.JWKRSA(key=key), jose.RS256
    raise ValueError(f"unsupported account key type {type(key).__name__}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, messages.Error):  # RFC 8555 problem document
        parts = [f"type={exc.typ}"]
        if exc.detail:
            parts.append(f"detail={exc.detail}")
        for sub in exc.subproblems or ():
            parts.append(f"subproblem={sub}")
        return "CA problem: " + " ".join(parts)
    if isinstance(exc, errors.ValidationError):
        out = []
        for authzr in exc.failed_authzrs:
            ident = authzr.body.identifier.value
            for chall in authzr.body.challenges:
                if chall.error is not None:
                    out.append(f"{ident}: {chall.typ}: {_describe(chall.error)}")
            if not out:
                out.append(f"{ident}: authorization {authzr.body.status}")
        return "validation failed: " + "; ".join(out)
    if isinstance(exc, requests.RequestException):
        return f"cannot reach CA: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _seconds_until(when: _dt.datetime) -> float:
    """Seconds from now until ``when``: the ``acme`` library hands out naive local times for Retry-After
    (``datetime.now() + delta``), aware ones are compared as they are."""
    now = _dt.datetime.now(when.tzinfo) if when.tzinfo is not None else _dt.datetime.now()
    return (when - now).total_seconds()


class Issuer:
    """Blocking: run it in an executor thread. One instance per thread (it owns a ClientNetwork).

    ``eab`` is Traefik's ``(kid, hmacEncoded)`` External Account Binding (RFC 8555 section 7.3.4), the
    HMAC key base64url-encoded as CAs hand it out. ``profile`` is the certificate profile asked for in
    newOrder (draft-ietf-acme-profiles) when the CA offers profiles. ``label`` starts every log line, so
    a line names the resolver it is about. ``said``: the notes already logged, shared by the issuers of
    one resolver (one per worker thread), so that each is said once per resolver, not once per thread.
    """

    def __init__(
        self,
        directory_url: str,
        account_key_pem: bytes | None,
        email: str | None,
        ca_bundle: str | None = None,
        key_type: str = "EC256",
        timeout: float = 30.0,
        eab: tuple[str, str] | None = None,
        profile: str | None = None,
        label: str = "ACME",
        said: set[str] | None = None,
    ) -> None:
        if key_type.upper() not in _KEY_TYPES:
            raise ValueError(f"unknown key type {key_type!r}")
        self.directory_url = directory_url
        self.email = email
        self.key_type = key_type.upper()
        self.account_key_pem = account_key_pem or generate_key("EC256")
        self.registration_uri: str | None = None
        self.eab = eab
        self.profile = profile or None
        self.label = label
        self._said = said if said is not None else set()
        self._jwk, alg = _jwk_and_alg(self.account_key_pem)
        # requests' ``verify`` accepts a CA bundle path as well as a bool.
        verify: bool | str = ca_bundle if ca_bundle else True
        # badNonce retried at once with the nonce the error carries (RFC 8555 section 6.5).
        self._net = NonceRetryNetwork(
            self._jwk, alg=alg, verify_ssl=verify, user_agent="dockroute", timeout=timeout
        )
        self._client: client.ClientV2 | None = None

    def _acme(self) -> client.ClientV2:
        """The client, with the directory fetched once for the life of this issuer."""
        if self._client is None:
            try:
                directory = client.ClientV2.get_directory(self.directory_url, self._net)
            except Exception as exc:
                raise AcmeError(f"directory {self.directory_url}: {_describe(exc)}") from exc
            self._client = client.ClientV2(directory, self._net)
        return self._client

    def register(self, known: bool = False) -> None:
        """Create the account (terms agreed, bound to the external account if ``eab`` is set), or find
        the existing one for this key.

        ``known``: the key has an account on record, so it is first looked up (``onlyReturnExisting``)
        and the external account binding is sent only if the CA has no such account: a CA may accept
        an EAB key once.
        """
        acme = self._acme()
        try:
            if known:
                found = self._existing_account(acme)
                if found is not None:
                    self.registration_uri = found
                    return
            reg = messages.NewRegistration.from_data(
                email=self.email,
                terms_of_service_agreed=True,
                external_account_binding=self._external_account_binding(acme.directory),
            )
            try:
                # newAccount must be signed with the JWK, not a kid: forget any account known so far.
                self._net.account = None
                regr = acme.new_account(reg)
            except errors.ConflictError as conflict:
                existing = messages.RegistrationResource(uri=conflict.location, body=reg)
                regr = acme.query_registration(existing)
        except AcmeError:
            raise
        except Exception as exc:
            raise AcmeError(f"account registration: {_describe(exc)}") from exc
        self.registration_uri = regr.uri

    def _existing_account(self, acme: client.ClientV2) -> str | None:
        """The account URL for this key if the CA has one (None if it has not)."""
        self._net.account = None
        try:
            return acme.new_account(messages.NewRegistration(only_return_existing=True)).uri
        except errors.ConflictError as conflict:  # acme's way of saying "200 OK, it exists"
            existing = messages.RegistrationResource(uri=conflict.location, body=messages.Registration())
            return acme.query_registration(existing).uri
        except messages.Error as exc:
            if exc.typ == "urn:ietf:params:acme:error:accountDoesNotExist":
                return None
            raise

    def _external_account_binding(self, directory: messages.Directory) -> dict | None:
        """The EAB JWS: the account's public key MACed with the CA-issued key (None without ``eab``)."""
        if self.eab is None:
            return None
        kid, hmac_encoded = self.eab
        if not _BASE64URL.fullmatch(hmac_encoded):  # the decoder would skip stray characters silently
            raise AcmeError(
                f"account registration: eab.hmacEncoded for kid {kid!r} is not base64url "
                "(A-Z, a-z, 0-9, '-', '_')"
            )
        try:
            return messages.ExternalAccountBinding.from_data(
                account_public_key=self._jwk.public_key(),
                kid=kid,
                hmac_key=hmac_encoded,
                directory=directory,
            )
        except (binascii.Error, ValueError, TypeError) as exc:
            raise AcmeError(
                f"account registration: eab.hmacEncoded for kid {kid!r} is not base64url: {exc}"
            ) from exc

    # -- profiles (draft-ietf-acme-profiles) --------------------------------------------------------

    def offered_profiles(self) -> dict[str, str]:
        """Profile name → description from the CA's directory ({} when it offers none)."""
        meta = getattr(self._acme().directory, "meta", None)
        return dict(getattr(meta, "profiles", None) or {})

    def _order_profile(self) -> str | None:
        """The profile to send in newOrder: ours if the CA offers profiles at all, else none (a CA that
        knows nothing of profiles may refuse the unknown field). Says so once per issuer."""
        if self.profile is None:
            return None
        offered = self.offered_profiles()
        if not offered:
            self._note_profile(
                logging.INFO,
                "%s: the CA offers no profiles; ordering without profile %r",
                self.label,
                self.profile,
            )
            return None
        if self.profile not in offered:
            # Sent anyway: the CA's problem document explains the refusal better than we could.
            self._note_profile(
                logging.WARNING,
                "%s: the CA does not offer profile %r (it offers %s); asking for it anyway",
                self.label,
                self.profile,
                ", ".join(sorted(offered)),
            )
        return self.profile

    def _note_profile(self, level: int, msg: str, *args: object) -> None:
        with _SAID_LOCK:
            if "profile" in self._said:
                return
            self._said.add("profile")
        log.log(level, msg, *args)

    # -- ACME Renewal Information (RFC 9773) --------------------------------------------------------

    def offers_renewal_info(self) -> bool:
        """Whether the CA's directory has ``renewalInfo``; fetches the directory at most once."""
        try:
            self._acme().directory["renewalInfo"]
        except KeyError:
            return False
        return True

    def renewal_advice(self, cert_pem: bytes) -> RenewalAdvice:
        """When the CA suggests renewing ``cert_pem`` (leaf first), and when to ask again.

        Raises :class:`AriError` for anything that keeps us from a usable answer (CA unreachable, problem
        document, malformed reply, certificate without an Authority Key Identifier)."""
        try:
            acme = self._acme()
        except AcmeError as exc:
            raise AriError(f"renewal information: {exc}") from exc
        try:
            renew_at, next_check = acme.renewal_time(cert_pem)
        except errors.ARIError as exc:
            # str(ARIError) is its args tuple: take the message, then what the CA actually said.
            what = str(exc.args[0]) if exc.args else "ARI request failed"
            if exc.__cause__ is not None:
                what = f"{what}: {_describe(exc.__cause__)}"
            raise AriError(
                f"renewal information: {what}",
                _seconds_until(exc.retry_after),
                unreachable=isinstance(exc.__cause__, requests.RequestException),
            ) from exc
        except Exception as exc:
            unreachable = isinstance(exc, requests.RequestException)
            raise AriError(f"renewal information: {_describe(exc)}", unreachable=unreachable) from exc
        if renew_at is None:  # no renewalInfo in the directory: callers ask offers_renewal_info() first
            raise AriError("renewal information: the CA has no renewalInfo resource")
        return RenewalAdvice(renew_at=renew_at, recheck_in=_seconds_until(next_check))

    def issue(
        self,
        names: Sequence[str],
        solvers: Sequence[Solver],
        deadline: float = 60.0,
        replaces: bytes | None = None,
    ) -> IssuedCertificate:
        """Order a certificate for ``names``, each authorization answered by the first of ``solvers``
        whose challenge type the CA offers for it. Every published answer is withdrawn when done,
        whatever the outcome.

        ``deadline``: the seconds the CA gets to validate and issue, counted from the moment every answer
        is published and settled (the DNS propagation wait is the solvers', however long it takes).

        ``replaces``: the certificate (PEM) this order renews. Where the CA offers ARI, the order says so
        (RFC 9773 section 5), which lets the CA relate the two (Let's Encrypt exempts such renewals from
        some rate limits)."""
        names = tuple(dict.fromkeys(n.strip().lower() for n in names if n.strip()))
        if not names:
            raise ValueError("no names to issue for")
        unknown = [s.typ for s in solvers if s.typ not in _CHALLENGE_CLASSES]
        if unknown or not solvers:
            raise ValueError(f"unsupported challenge types {unknown or 'none'}")
        if self.registration_uri is None:
            self.register()
        acme = self._acme()
        key_pem = generate_key(self.key_type)
        csr_pem = crypto_util.make_csr(key_pem, list(names))
        published: list[tuple[Solver, str, str]] = []
        try:
            try:
                order = self._new_order(acme, csr_pem, replaces)
                # All answers out first, then one wait, then the CA asked: a DNS record takes its time
                # to reach every authoritative server, and the order's records reach them together.
                answers = self._publish_all(order, solvers, published)
                _settle(published)
                # The CA's time starts once the answers are out and settled: a DNS propagation wait
                # (delayBeforeChecks, a slow provider) must not eat the time the CA gets to validate.
                # poll_and_finalize compares against datetime.datetime.now(): naive local time.
                until = _dt.datetime.now() + _dt.timedelta(seconds=deadline)
                for challb, response in answers:
                    acme.answer_challenge(challb, response)
                order = acme.poll_and_finalize(order, until)
            except AcmeError:
                raise
            except errors.TimeoutError as exc:
                raise AcmeError(f"order for {', '.join(names)}: not done within {deadline:g}s") from exc
            except Exception as exc:
                raise AcmeError(f"order for {', '.join(names)}: {_describe(exc)}") from exc
        finally:
            for solver, domain, token in published:
                try:
                    solver.unpublish(domain, token)
                except Exception:  # noqa: BLE001 - cleanup must not mask the real outcome
                    pass
        if not order.fullchain_pem:
            raise AcmeError(f"order for {', '.join(names)}: CA returned no certificate")
        return IssuedCertificate(names=names, fullchain_pem=order.fullchain_pem.encode(), key_pem=key_pem)

    def _new_order(
        self, acme: client.ClientV2, csr_pem: bytes, replaces: bytes | None
    ) -> messages.OrderResource:
        profile = self._order_profile()
        cert_id = ari_cert_id(replaces) if replaces is not None and self.offers_renewal_info() else None
        if cert_id is None:
            return acme.new_order(csr_pem, profile=profile)
        try:
            return self._new_order_replacing(acme, csr_pem, profile, cert_id)
        except (messages.Error, errors.ConflictError) as exc:
            # alreadyReplaced (409: renewed elsewhere meanwhile) or a CA that dislikes the field: a plain
            # order still gets the certificate.
            why = exc.typ if isinstance(exc, messages.Error) else "409 Conflict"
            log.info("%s: the CA refused replaces=%s (%s); ordering without it", self.label, cert_id, why)
            return acme.new_order(csr_pem, profile=profile)

    @staticmethod
    def _new_order_replacing(
        acme: client.ClientV2, csr_pem: bytes, profile: str | None, cert_id: str
    ) -> messages.OrderResource:
        """``ClientV2.new_order`` with ``replaces`` in the payload (same steps as the library's)."""
        csr = x509.load_pem_x509_csr(csr_pem)
        dns_names, ips = crypto_util.get_identifiers_from_x509(csr.subject, csr.extensions)
        identifiers = [messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=n) for n in dns_names]
        identifiers += [messages.Identifier(typ=messages.IDENTIFIER_IP, value=str(ip)) for ip in ips]
        order = _NewOrder(identifiers=identifiers, profile=profile or "", replaces=cert_id)
        response = acme._post(acme.directory["newOrder"], order)  # noqa: SLF001
        body = messages.Order.from_json(response.json())
        authorizations = [
            acme._authzr_from_response(acme._post_as_get(url), uri=url)  # noqa: SLF001
            for url in body.authorizations
        ]
        return messages.OrderResource(
            body=body, uri=response.headers.get("Location"), authorizations=authorizations, csr_pem=csr_pem
        )

    def _publish_all(
        self,
        order: messages.OrderResource,
        solvers: Sequence[Solver],
        published: list[tuple[Solver, str, str]],
    ) -> list[tuple[messages.ChallengeBody, challenges.ChallengeResponse]]:
        """Publish the answer of every authorization still pending, each appended to ``published`` as
        soon as it is out (the caller withdraws those whatever happens next); the responses to send."""
        answers = []
        for authzr in order.authorizations:
            if authzr.body.status == messages.STATUS_VALID:
                continue
            domain = authzr.body.identifier.value
            challb, solver = self._pick(authzr, solvers)
            response, validation = challb.response_and_validation(self._jwk)
            if isinstance(challb.chall, challenges.DNS01):  # validation is the TXT value: hand the source
                validation = challb.chall.key_authorization(self._jwk)
            token = challb.chall.encode("token")
            solver.publish(domain, token, validation)
            published.append((solver, domain, token))
            answers.append((challb, response))
        return answers

    @staticmethod
    def _pick(
        authzr: messages.AuthorizationResource, solvers: Sequence[Solver]
    ) -> tuple[messages.ChallengeBody, Solver]:
        for solver in solvers:
            cls = _CHALLENGE_CLASSES[solver.typ]
            for challb in authzr.body.challenges:
                if isinstance(challb.chall, cls):
                    return challb, solver
        offered = ", ".join(c.typ for c in authzr.body.challenges) or "none"
        wanted = ", ".join(s.typ for s in solvers)
        raise AcmeError(f"{authzr.body.identifier.value}: CA offers no {wanted} challenge (offers {offered})")


def _settle(published: Sequence[tuple[Solver, str, str]]) -> None:
    """Each solver's ``settle`` once, with its own (domain, token) pairs of this order."""
    by_solver: dict[int, tuple[Solver, list[tuple[str, str]]]] = {}
    for solver, domain, token in published:
        if solver.settle is not None:
            by_solver.setdefault(id(solver), (solver, []))[1].append((domain, token))
    for solver, pairs in by_solver.values():
        assert solver.settle is not None
        solver.settle(pairs)


def ca_bundle(files: tuple[str, ...]) -> str | None:
    """One PEM bundle for ``caCertificates`` (``requests`` takes a single file): the file itself when
    there is one, else the files concatenated into a temporary file kept for the life of the process.
    A file that cannot be read is left out with one error line; the others are still trusted."""
    if len(files) <= 1:
        return files[0] if files else None
    parts = []
    for path in files:
        try:
            with open(path, "rb") as f:
                parts.append(f.read().strip() + b"\n")
        except OSError as exc:
            log.error("caCertificates: cannot read %s (%s); left out", path, exc)
    fd, bundle = tempfile.mkstemp(prefix="dockroute-ca-", suffix=".pem")
    with os.fdopen(fd, "wb") as f:
        f.write(b"".join(parts))
    return bundle
