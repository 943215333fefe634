"""Which certificate stands for a name set, with one-label wildcards (RFC 6125 section 6.4.3, as the
router's SNI choice): ``covers``, ``covering``, ``superseded``, ``prune_covered``; and which names an
ACME resolver orders (``why_left_out``: a wildcard only with DNS-01)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from acme_client.covering import cover_keys, covering, covers, prune_covered, superseded
from acme_client.dns.base import DnsChallengeSettings, ProviderConfig
from acme_client.ordered_names import why_left_out
from acme_client.resolver import AcmeResolver
from acme_client.settings import ResolverSettings
from acme_client.storage import StoredCertificate

DNS_SETTINGS = DnsChallengeSettings(ProviderConfig("rfc2136"))
_KEY = ec.generate_private_key(ec.SECP256R1())  # one key for every test certificate: they are never served
_KEY_PEM = _KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)


def stored(*names: str, days_left: float = 89) -> StoredCertificate:
    """A self-signed certificate for ``names`` (SAN), stored under them as a resolver keeps it."""
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Test CA")]))
        .public_key(_KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days_left))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(_KEY, hashes.SHA256())
    )
    return StoredCertificate(names[0], names[1:], cert.public_bytes(serialization.Encoding.PEM), _KEY_PEM)


# -- covers: exactly one label ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cert_names", "name", "covered"),
    [
        (("*.home.example.test",), "a.home.example.test", True),
        (("*.home.example.test",), "A.Home.Example.Test.", True),  # DNS names compare without case/dot
        (("*.HOME.example.test",), "b.home.example.test", True),
        (("*.home.example.test",), "home.example.test", False),  # not the apex
        (("*.home.example.test",), "b.a.home.example.test", False),  # not two labels down
        (("*.home.example.test",), "ahome.example.test", False),
        (("*.home.example.test",), "*.home.example.test", True),  # a wildcard by itself only
        (("*.example.test",), "*.home.example.test", False),
        (("a.home.example.test",), "*.home.example.test", False),
        (("a.home.example.test", "home.example.test"), "home.example.test", True),
        (("a.example.test",), "b.example.test", False),
        ((), "a.example.test", False),
        (("*.test",), "localhost", False),
    ],
)
def test_covers(cert_names, name, covered):
    assert covers(cert_names, name) is covered


def test_cover_keys_name_what_may_cover_a_name():
    assert cover_keys("a.home.example.test") == ("a.home.example.test", "*.home.example.test")
    assert cover_keys("*.home.example.test") == ("*.home.example.test",)
    assert cover_keys("localhost") == ("localhost",)


# -- covering: the certificate judged for a name set ------------------------------------------------------


def test_a_wildcard_certificate_covers_the_sets_one_label_below():
    wild = stored("*.home.example.test", "home.example.test")
    assert covering(("a.home.example.test",), [wild]) is wild
    assert covering(("a.home.example.test", "b.home.example.test"), [wild]) is wild
    assert covering(("home.example.test", "a.home.example.test"), [wild]) is wild
    assert covering(("b.a.home.example.test",), [wild]) is None
    assert covering(("a.home.example.test", "other.test"), [wild]) is None


def test_of_an_exact_and_a_wildcard_certificate_the_later_expiring_covers():
    exact, wild = stored("a.home.example.test", days_left=20), stored("*.home.example.test", days_left=80)
    assert covering(("a.home.example.test",), [exact, wild]) is wild
    exact_later = stored("a.home.example.test", days_left=85)
    assert covering(("a.home.example.test",), [wild, exact_later]) is exact_later


def test_an_exact_certificate_older_than_a_covering_wildcard_is_superseded():
    """Else SNI would keep choosing the exact name's certificate, never renewed, until it expired."""
    exact, wild = stored("a.home.example.test", days_left=20), stored("*.home.example.test", days_left=80)
    certs = {("a.home.example.test",): exact, ("*.home.example.test",): wild}
    assert superseded(certs) == [("a.home.example.test",)]
    later = stored("a.home.example.test", days_left=85)
    assert superseded({("a.home.example.test",): later, ("*.home.example.test",): wild}) == []
    # an exact name never supersedes the wildcard, nor does a wildcard cover the apex or two labels down
    apex = stored("home.example.test", "b.a.home.example.test", days_left=20)
    assert (
        superseded({("home.example.test", "b.a.home.example.test"): apex, ("*.home.example.test",): wild})
        == []
    )


# -- prune_covered: the wanted sets that order something of their own -------------------------------------


@pytest.mark.parametrize(
    ("sets", "kept"),
    [
        # a router's own host under another router's wildcard orders nothing
        (
            [
                ("*.home.example.test", "home.example.test"),
                ("a.home.example.test",),
                ("b.home.example.test",),
            ],
            [("*.home.example.test", "home.example.test")],
        ),
        # the apex is covered only by a set naming it
        (
            [("*.home.example.test",), ("home.example.test",)],
            [("*.home.example.test",), ("home.example.test",)],
        ),
        (
            [("*.home.example.test", "home.example.test"), ("home.example.test",)],
            [("*.home.example.test", "home.example.test")],
        ),
        # two labels down, or one name outside: ordered
        (
            [("*.home.example.test",), ("x.a.home.example.test",), ("a.home.example.test", "other.test")],
            [("*.home.example.test",), ("x.a.home.example.test",), ("a.home.example.test", "other.test")],
        ),
        # names covered by two wildcard sets between them
        ([("*.a.test",), ("*.b.test",), ("x.a.test", "y.b.test")], [("*.a.test",), ("*.b.test",)]),
        # sets holding a wildcard are always kept: no two drop each other
        (
            [("*.home.example.test", "a.home.example.test"), ("*.home.example.test",)],
            [("*.home.example.test", "a.home.example.test"), ("*.home.example.test",)],
        ),
        # no wildcard at all: every set, as given
        ([("b.test",), ("a.test", "b.test")], [("b.test",), ("a.test", "b.test")]),
        ([], []),
    ],
)
def test_prune_covered(sets, kept):
    assert prune_covered(sets) == kept
    assert prune_covered(iter(sets)) == kept  # any iterable, as want() is handed


# -- why_left_out: a wildcard is ordered only with DNS-01 -------------------------------------------------


def test_a_wildcard_is_ordered_only_by_a_resolver_with_dns_challenge():
    why = why_left_out("*.home.example.com", public_ca=True)
    assert why is not None and "wildcard" in why and "dnsChallenge" in why
    assert why_left_out("*.home.example.com", public_ca=False) == why
    assert why_left_out("*.home.example.com", public_ca=True, dns01=True) is None
    assert why_left_out("*.home.example.test", public_ca=False, dns01=True) is None
    # a public CA's policy still applies to the name below the wildcard
    assert "a .lan name" in (why_left_out("*.home.lan", public_ca=True, dns01=True) or "")
    # the other names are as before, whatever the challenge
    assert why_left_out("a.example.com", public_ca=True, dns01=True) is None
    assert "IP address" in (why_left_out("192.0.2.1", public_ca=False, dns01=True) or "")


def test_a_wildcard_of_a_single_label_is_never_asked_of_a_public_ca(tmp_path, caplog):
    """``*.com`` (a whole top-level domain): a public CA refuses it (rejectedIdentifier, then an hour of
    backoff), so the resolver leaves it out with its one log line; a private CA is still asked."""
    for name in ("*.com", "*.COM.", "*.lan"):
        why = why_left_out(name, public_ca=True, dns01=True)
        assert why is not None and "which a public CA does not certify" in why
    assert "a wildcard of a single-label name" in (why_left_out("*.com", public_ca=True, dns01=True) or "")
    assert why_left_out("*.com", public_ca=False, dns01=True) is None
    assert why_left_out("*.example.com", public_ca=True, dns01=True) is None
    caplog.set_level("INFO")
    settings = ResolverSettings(storage=str(tmp_path / "acme.json"), dns_challenge=DNS_SETTINGS)
    resolver = AcmeResolver("le", settings, lambda: None)
    resolver.want([("*.com", "shop.example.com")])
    resolver.want([("*.com", "shop.example.com")])
    assert resolver._wanted == [("shop.example.com",)]  # noqa: SLF001
    assert caplog.text.count("no certificate ordered for *.com (a wildcard of a single-label name") == 1


@pytest.mark.parametrize(
    "name", ["*", "*.", "a.*.example.com", "*.*.example.com", "a*.example.com", "*example.com"]
)
def test_a_malformed_wildcard_is_never_ordered(name):
    why = why_left_out(name, public_ca=False, dns01=True)
    assert why is not None and "'*.' as the whole first label" in why
