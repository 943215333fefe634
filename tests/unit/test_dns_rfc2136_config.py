"""The rfc2136 provider's variables are checked at start, in lego's spellings (the updates themselves are
tested against a real BIND in tests/integration/test_acme_dns_rfc2136.py)."""

from __future__ import annotations

import dns.message
import dns.query
import dns.rdatatype
import dns.tsig
import pytest

from acme_client.dns.base import DnsConfigError, TxtRecord
from acme_client.dns.registry import build_provider, read_provider
from acme_client.dns.rfc2136 import parse_nameserver, read_tsig_file, tsig_algorithm

SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ns.example", ("ns.example", 53)),
        ("192.0.2.1:5353", ("192.0.2.1", 5353)),
        ("[2001:db8::1]:54", ("2001:db8::1", 54)),
        ("[2001:db8::1]", ("2001:db8::1", 53)),
        ("2001:db8::1", ("2001:db8::1", 53)),
    ],
)
def test_nameserver_forms(text: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize("text", ["ns:0", "ns:99999", "ns:x", "[::1", "a:b:c", ":53"])
def test_malformed_nameserver_names_the_variable(text: str) -> None:
    with pytest.raises(DnsConfigError) as caught:
        parse_nameserver(text)
    assert caught.value.variable == "RFC2136_NAMESERVER"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hmac-sha256.", dns.tsig.HMAC_SHA256),
        ("HMAC-SHA256", dns.tsig.HMAC_SHA256),
        ("hmac-sha512.", dns.tsig.HMAC_SHA512),
        ("hmac-md5.sig-alg.reg.int.", dns.tsig.HMAC_MD5),
        ("hmac-sha1", dns.tsig.HMAC_SHA1),
    ],
)
def test_tsig_algorithms_in_lego_and_bind_spellings(text: str, expected) -> None:
    assert tsig_algorithm(text) == expected


def test_unknown_algorithm_is_refused_at_start() -> None:
    env = {
        "RFC2136_NAMESERVER": "192.0.2.1",
        "RFC2136_TSIG_KEY": "k",
        "RFC2136_TSIG_SECRET": SECRET,
        "RFC2136_TSIG_ALGORITHM": "hmac-sha3.",
    }
    with pytest.raises(DnsConfigError) as caught:
        read_provider("rfc2136", env)
    assert caught.value.variable == "RFC2136_TSIG_ALGORITHM"
    assert "hmac-sha256." in str(caught.value)


def test_missing_nameserver_is_named() -> None:
    with pytest.raises(DnsConfigError) as caught:
        read_provider("rfc2136", {"RFC2136_TSIG_KEY": "k"})
    assert caught.value.variable == "RFC2136_NAMESERVER"


@pytest.mark.parametrize(
    ("given", "missing"),
    [("RFC2136_TSIG_KEY", "RFC2136_TSIG_SECRET"), ("RFC2136_TSIG_SECRET", "RFC2136_TSIG_KEY")],
)
def test_half_a_tsig_key_is_refused(given: str, missing: str) -> None:
    with pytest.raises(DnsConfigError) as caught:
        read_provider("rfc2136", {"RFC2136_NAMESERVER": "192.0.2.1", given: SECRET})
    assert caught.value.variable == missing


def test_bad_secret_is_named() -> None:
    env = {"RFC2136_NAMESERVER": "192.0.2.1", "RFC2136_TSIG_KEY": "k", "RFC2136_TSIG_SECRET": "not base64!"}
    with pytest.raises(DnsConfigError) as caught:
        read_provider("rfc2136", env)
    assert caught.value.variable == "RFC2136_TSIG_SECRET"


def test_knobs_and_the_older_timeout_name_and_an_ignored_sequence_interval() -> None:
    env = {
        "RFC2136_NAMESERVER": "192.0.2.1:5353",
        "RFC2136_TTL": "60",
        "RFC2136_TIMEOUT": "180",
        "RFC2136_POLLING_INTERVAL": "1",
        "RFC2136_DNS_TIMEOUT": "4",
        "RFC2136_SEQUENCE_INTERVAL": "60",
    }
    config, warnings = read_provider("rfc2136", env)
    assert (config.ttl, config.propagation_timeout, config.polling_interval) == (60, 180.0, 1.0)
    assert [w for w in warnings if "RFC2136_SEQUENCE_INTERVAL" in w] == warnings and len(warnings) == 1
    provider = build_provider(config)
    assert provider.server == "192.0.2.1:5353"
    assert SECRET not in repr(config)


KEYGEN = """key "lego" {
\talgorithm hmac-sha512;
\tsecret "/pW7MyeuWUOLbM7aHpxyZEJechk0rbNxfrn1IH8sYoOv0pB7sfC29hKqjvbFbomWdNx9ZwjAGssvnhW5P690rQ==";
};
"""


def test_a_tsig_keygen_file_is_read_and_wins(tmp_path) -> None:
    path = tmp_path / "lego.key"
    path.write_text("# made by tsig-keygen -a hmac-sha512 lego\n" + KEYGEN)
    assert read_tsig_file(str(path)) == (
        "lego",
        "hmac-sha512",
        "/pW7MyeuWUOLbM7aHpxyZEJechk0rbNxfrn1IH8sYoOv0pB7sfC29hKqjvbFbomWdNx9ZwjAGssvnhW5P690rQ==",
    )
    env = {"RFC2136_NAMESERVER": "192.0.2.1", "RFC2136_TSIG_FILE": str(path), "RFC2136_TSIG_KEY": "other"}
    config, warnings = read_provider("rfc2136", env)
    assert warnings == []
    key = build_provider(config)._key  # noqa: SLF001
    assert (key.name.to_text(), key.algorithm) == ("lego.", dns.tsig.HMAC_SHA512)


@pytest.mark.parametrize(
    ("content", "what"),
    [("nothing here", "holds no key"), ('key "k" { secret "c2VjcmV0"; };', "has no algorithm")],
)
def test_a_bad_key_file_is_named(tmp_path, content: str, what: str) -> None:
    path = tmp_path / "k.key"
    path.write_text(content)
    with pytest.raises(DnsConfigError, match=what) as caught:
        read_provider("rfc2136", {"RFC2136_NAMESERVER": "192.0.2.1", "RFC2136_TSIG_FILE": str(path)})
    assert caught.value.variable == "RFC2136_TSIG_FILE"
    with pytest.raises(DnsConfigError) as caught:
        read_provider(
            "rfc2136", {"RFC2136_NAMESERVER": "192.0.2.1", "RFC2136_TSIG_FILE": str(tmp_path / "none")}
        )
    assert caught.value.variable == "RFC2136_TSIG_FILE"


def test_the_update_carries_rfc2136_ttl_and_legos_default_algorithm(monkeypatch) -> None:
    """RFC2136_TTL is the added record's TTL; without RFC2136_TSIG_ALGORITHM the key signs with
    hmac-sha1 (lego's default: a Traefik user's BIND key made for it keeps working)."""
    sent = []

    def exchange(update, where, timeout=None, port=53, **kw):
        sent.append(update)
        return dns.message.make_response(update), False

    monkeypatch.setattr(dns.query, "udp_with_fallback", exchange)
    env = {
        "RFC2136_NAMESERVER": "192.0.2.1",
        "RFC2136_TTL": "42",
        "RFC2136_TSIG_KEY": "lego",
        "RFC2136_TSIG_SECRET": SECRET,
    }
    config, _ = read_provider("rfc2136", env)
    build_provider(config).present(TxtRecord("a.test", "_acme-challenge.a.test.", "a.test.", "v1"))
    (update,) = sent
    (rrset,) = update.update
    assert (rrset.rdtype, rrset.ttl) == (dns.rdatatype.TXT, 42)
    assert update.keyalgorithm == dns.tsig.HMAC_SHA1
