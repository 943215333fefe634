"""acme_client.issuer against a real Pebble CA (no mocks)."""

from __future__ import annotations

import socket
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import PolicyBuilder, Store

from acme_client.issuer import AcmeError, Issuer, Solver
from tests.integration.pebble_env import ChallengeServer, free_port, run_pebble

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def challenges():
    srv = ChallengeServer()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def pebble(tmp_path_factory, challenges):
    with run_pebble(tmp_path_factory.mktemp("pebble"), challenges.port) as env:
        yield env


def _issuer(pebble, key_pem=None, **kw) -> Issuer:
    return Issuer(pebble.directory_url, key_pem, "ops@example.com", ca_bundle=pebble.ca_bundle, **kw)


def _verify(fullchain_pem: bytes, root_pem: bytes, name: str) -> x509.Certificate:
    chain = x509.load_pem_x509_certificates(fullchain_pem)
    leaf = chain[0]
    roots = x509.load_pem_x509_certificates(root_pem)
    verifier = PolicyBuilder().store(Store(roots)).build_server_verifier(x509.DNSName(name))
    verifier.verify(leaf, chain[1:])  # raises VerificationError if it does not chain to Pebble's root
    return leaf


@pytest.mark.parametrize("key_type", ["EC256", "RSA2048"])
def test_issue_chain_verifies_to_pebble_root(pebble, challenges, key_type):
    issuer = _issuer(pebble, key_type=key_type)
    published: list[str] = []

    def publish(domain: str, token: str, key_auth: str) -> None:
        published.append(token)
        challenges.publish(token, key_auth)

    solver = Solver("http-01", publish, lambda domain, token: challenges.unpublish(token))
    cert = issuer.issue(["app.example.com"], [solver], deadline=30)

    assert cert.names == ("app.example.com",)
    leaf = _verify(cert.fullchain_pem, pebble.root_pem(), "app.example.com")
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["app.example.com"]
    assert issuer.registration_uri  # issue() registered on demand
    assert published, "a fresh account must have answered an http-01 challenge"
    assert not challenges.tokens, "tokens are unpublished afterwards"
    # the key returned is the one the leaf certifies
    key = serialization.load_pem_private_key(cert.key_pem, None)
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()


def test_register_twice_same_key_same_account(pebble):
    first = _issuer(pebble)
    first.register()
    assert first.registration_uri

    second = _issuer(pebble, key_pem=first.account_key_pem)
    second.register()
    assert second.registration_uri == first.registration_uri

    first.register()  # same instance again: still the same account
    assert first.registration_uri == second.registration_uri


def test_failed_validation_raises_with_problem_document(pebble, challenges):
    issuer = _issuer(pebble)
    unpublished: list[str] = []

    def wrong(domain: str, token: str, key_auth: str) -> None:
        challenges.publish(token, "not-the-key-authorization")

    def unpublish(domain: str, token: str) -> None:
        unpublished.append(token)
        challenges.unpublish(token)

    with pytest.raises(AcmeError) as info:
        issuer.issue(["bad.example.com"], [Solver("http-01", wrong, unpublish)], deadline=30)
    assert "urn:ietf:params:acme:error:" in str(info.value)
    assert unpublished and not challenges.tokens


def test_unreachable_ca_raises_quickly():
    port = free_port()  # nothing listens here
    issuer = Issuer(f"https://127.0.0.1:{port}/dir", None, None, timeout=2)
    started = time.monotonic()
    with pytest.raises(AcmeError, match="cannot reach CA"):
        issuer.register()
    assert time.monotonic() - started < 5


def test_blackholed_ca_bounded_by_timeout():
    # A socket that accepts (via the backlog) but never answers: the request must time out.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        issuer = Issuer(f"https://127.0.0.1:{s.getsockname()[1]}/dir", None, None, timeout=1)
        started = time.monotonic()
        with pytest.raises(AcmeError):
            issuer.register()
        assert time.monotonic() - started < 4
