"""TLS-ALPN-01 (RFC 8737): the challenge type and the certificate that answers it.

certbot's ``acme`` dropped TLS-ALPN-01 in 5.0, so the challenge and its response are registered here
with the library's own registries; once this module is imported, authorizations parse
``tls-alpn-01`` challenges into :class:`TLSALPN01` instead of ``UnrecognizedChallenge``.

The answer is a self-signed certificate for exactly the validated name, carrying the critical
``id-pe-acmeIdentifier`` extension whose value is the DER OCTET STRING of SHA-256(key authorization).
The proxy presents it only to a client whose ClientHello offers ``acme-tls/1`` alone for that name.
"""

from __future__ import annotations

import datetime as _dt
import hashlib

import josepy as jose
from acme import challenges
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

__all__ = ["ID_PE_ACME_IDENTIFIER", "TLSALPN01", "TLSALPN01Response", "challenge_certificate"]

ID_PE_ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")


def _register() -> tuple[type[challenges.Challenge], type[challenges.ChallengeResponse]]:
    """Register once, even if the module is reloaded (the registries refuse a second ``typ``)."""
    existing = challenges.Challenge.TYPES.get("tls-alpn-01")
    if existing is not None:
        return existing, challenges.ChallengeResponse.TYPES["tls-alpn-01"]

    @challenges.ChallengeResponse.register
    class _Response(challenges.KeyAuthorizationChallengeResponse):
        """The (empty, per RFC 8555) body POSTed to say "ready"."""

        typ = "tls-alpn-01"

    @challenges.Challenge.register
    class _Challenge(challenges.KeyAuthorizationChallenge):
        response_cls = _Response
        typ = _Response.typ

        def validation(self, account_key: jose.JWK, **unused: object) -> str:
            """The key authorization; :func:`challenge_certificate` turns it into the certificate."""
            return self.key_authorization(account_key)

    _Response.__name__ = _Response.__qualname__ = "TLSALPN01Response"
    _Challenge.__name__ = _Challenge.__qualname__ = "TLSALPN01"
    return _Challenge, _Response


TLSALPN01, TLSALPN01Response = _register()


def challenge_certificate(domain: str, key_authorization: str) -> tuple[bytes, bytes]:
    """``(cert_pem, key_pem)``: the RFC 8737 validation certificate for ``domain``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ACME TLS-ALPN-01 challenge")])
    now = _dt.datetime.now(_dt.UTC)
    digest = hashlib.sha256(key_authorization.encode("ascii")).digest()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        # The extension's value is itself DER: OCTET STRING (0x04), 32 bytes (0x20), the digest.
        .add_extension(x509.UnrecognizedExtension(ID_PE_ACME_IDENTIFIER, b"\x04\x20" + digest), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
