"""acme_client.tls_alpn: the TLS-ALPN-01 challenge type and its RFC 8737 certificate."""

from __future__ import annotations

import hashlib

import josepy as jose
from acme import challenges
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from acme_client.issuer import generate_key
from acme_client.tls_alpn import ID_PE_ACME_IDENTIFIER, TLSALPN01, challenge_certificate


def test_certificate_carries_the_critical_acme_identifier_for_one_name():
    cert_pem, key_pem = challenge_certificate("app.example.com", "tok.thumb")
    cert = x509.load_pem_x509_certificate(cert_pem)
    ext = cert.extensions.get_extension_for_oid(ID_PE_ACME_IDENTIFIER)
    assert ext.critical
    assert ext.value.value == b"\x04\x20" + hashlib.sha256(b"tok.thumb").digest()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["app.example.com"]
    key = serialization.load_pem_private_key(key_pem, None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()


def test_the_challenge_type_is_registered_and_answers_with_an_empty_body():
    token = jose.b64encode(b"t" * 32).decode()
    chall = challenges.Challenge.from_json({"type": "tls-alpn-01", "token": token})
    assert isinstance(chall, TLSALPN01)
    account = jose.JWKEC(key=serialization.load_pem_private_key(generate_key("EC256"), None))
    response, validation = chall.response_and_validation(account)
    assert validation == chall.key_authorization(account)
    assert validation.startswith(token + ".")
    assert response.to_partial_json() == {}  # RFC 8555: the "ready" POST has an empty object
