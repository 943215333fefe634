"""Self-signed stored certificates for the resolver's unit tests: which names, how old, how long left.

The resolver judges certificates by their names and validity only, so a self-signed EC certificate with
those is all a test needs (the issuing paths are tested against Pebble)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acme_client.storage import StoredCertificate

__all__ = ["stored_certificate"]


def stored_certificate(names: Sequence[str], days_in: float = 10, days_left: float = 80) -> StoredCertificate:
    """A certificate for ``names`` (the first is its main domain and common name), valid since
    ``days_in`` days and for ``days_left`` more (negative: expired)."""
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=days_in))
        .not_valid_after(now + dt.timedelta(days=days_left))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return StoredCertificate(
        names[0], tuple(names[1:]), cert.public_bytes(serialization.Encoding.PEM), key_pem
    )
