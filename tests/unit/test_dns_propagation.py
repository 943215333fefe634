"""Which servers the propagation wait asks, per dnsChallenge's switches, and how resolvers are read.

A fake ``query`` stands in for the network here (the real waits run against BIND in
tests/integration/test_acme_dns_rfc2136.py); it answers NS/A like an authoritative server and TXT with
the values each server is told to hold.
"""

from __future__ import annotations

import dataclasses
import re

import dns.message
import dns.rdatatype
import dns.resolver
import dns.rrset
import pytest

from acme_client.dns import propagation
from acme_client.dns import zone as zones
from acme_client.dns.base import DnsChallengeSettings, DnsError, ProviderConfig, TxtRecord

RECORD = TxtRecord("a.test", "_acme-challenge.a.test.", "a.test.", "v1")
SETTINGS = DnsChallengeSettings(
    ProviderConfig("rfc2136", {}, propagation_timeout=10, polling_interval=1), resolvers=("192.0.2.53:5353",)
)


class FakeDns:
    def __init__(self) -> None:
        self.txt: dict[tuple[str, int], list[str]] = {}
        self.asked: list[tuple[str, str, tuple[str, int], bool]] = []

    def query(self, name, rdtype, among, timeout=5.0, recursion=True):
        server = among[0]
        self.asked.append((str(name), rdtype, server, recursion))
        q = dns.message.make_query(name, rdtype)
        r = dns.message.make_response(q)
        if rdtype == "NS":
            r.answer.append(dns.rrset.from_text(name, 60, "IN", "NS", "ns1.a.test.", "ns2.a.test."))
            r.additional.append(dns.rrset.from_text("ns1.a.test.", 60, "IN", "A", "192.0.2.1"))
        elif rdtype == "A":
            r.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "192.0.2.2"))
        elif rdtype == "TXT" and self.txt.get(server):
            r.answer.append(dns.rrset.from_text(name, 60, "IN", "TXT", *(f'"{v}"' for v in self.txt[server])))
        return r


@pytest.fixture
def fake(monkeypatch) -> FakeDns:
    f = FakeDns()
    monkeypatch.setattr(zones, "query", f.query)
    return f


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_every_address_of_every_ns_is_asked_without_recursion(fake: FakeDns) -> None:
    fake.txt = {("192.0.2.1", 53): ["v1"], ("192.0.2.2", 53): ["other", "v1"]}
    clock = Clock()
    propagation.wait_for_records([RECORD], SETTINGS, clock, clock.sleep)
    txt = [(server, rec) for name, t, server, rec in fake.asked if t == "TXT"]
    assert txt == [(("192.0.2.1", 53), False), (("192.0.2.2", 53), False)]
    assert clock.slept == []


def test_polls_until_the_last_server_has_it_then_gives_up_naming_it(fake: FakeDns) -> None:
    fake.txt = {("192.0.2.1", 53): ["v1"]}
    clock = Clock()
    with pytest.raises(DnsError) as caught:
        propagation.wait_for_records([RECORD], SETTINGS, clock, clock.sleep)
    assert "TXT _acme-challenge.a.test. not seen at ns2.a.test. (192.0.2.2:53) within 10s" in str(
        caught.value
    )
    assert clock.slept == [1.0] * 10
    # the server that answered is not asked again
    assert [s for _, t, s, _ in fake.asked if t == "TXT"].count(("192.0.2.1", 53)) == 1


def test_a_failed_ns_lookup_is_retried_within_the_timeout(fake: FakeDns, monkeypatch) -> None:
    """A timeout or SERVFAIL looking up the zone's NS is "not yet" (lego's wait.For), not a failed order."""
    fake.txt = {("192.0.2.1", 53): ["v1"], ("192.0.2.2", 53): ["v1"]}
    answer = fake.query
    failures = iter([DnsError("a.test. NS: no answer from 192.0.2.53:5353 (timed out)")] * 2)

    def flaky(name, rdtype, among, timeout=5.0, recursion=True):
        if rdtype == "NS":
            failure = next(failures, None)
            if failure is not None:
                raise failure
        return answer(name, rdtype, among, timeout, recursion)

    monkeypatch.setattr(zones, "query", flaky)
    clock = Clock()
    propagation.wait_for_records([RECORD], SETTINGS, clock, clock.sleep)
    assert clock.slept == [1.0, 1.0]
    assert [t for _, t, _, _ in fake.asked].count("NS") == 1  # found once: not asked again


def test_an_ns_lookup_failing_until_the_deadline_raises_the_last_error(monkeypatch) -> None:
    tries: list[int] = []

    def failing(name, rdtype, among, timeout=5.0, recursion=True):
        tries.append(1)
        raise DnsError(f"a.test. NS: SERVFAIL from 192.0.2.53:5353 (try {len(tries)})")

    monkeypatch.setattr(zones, "query", failing)
    clock = Clock()
    with pytest.raises(DnsError, match=r"SERVFAIL from 192.0.2.53:5353 \(try 11\)"):
        propagation.wait_for_records([RECORD], SETTINGS, clock, clock.sleep)
    assert clock.slept == [1.0] * 10


def test_delay_first_and_disable_checks_asks_nothing(fake: FakeDns) -> None:
    clock = Clock()
    settings = dataclasses.replace(SETTINGS, delay_before_checks=7, disable_checks=True)
    propagation.wait_for_records([RECORD], settings, clock, clock.sleep)
    assert clock.slept == [7] and fake.asked == []


def test_require_all_rns_asks_the_resolvers_and_disable_ans_skips_the_authoritative(fake: FakeDns) -> None:
    fake.txt = {("192.0.2.53", 5353): ["v1"]}
    settings = dataclasses.replace(SETTINGS, disable_ans_checks=True, require_all_rns=True)
    clock = Clock()  # one clock: its sleep moves the deadline, so a broken switch fails instead of hanging
    propagation.wait_for_records([RECORD], settings, clock, clock.sleep)
    assert fake.asked == [("_acme-challenge.a.test.", "TXT", ("192.0.2.53", 5353), True)]


def test_another_value_at_the_name_is_not_the_record(fake: FakeDns) -> None:
    """A stale value, or the other record of a wildcard + apex pair, is not THE value: poll, then give up."""
    fake.txt = {("192.0.2.1", 53): ["v1"], ("192.0.2.2", 53): ["other"]}
    clock = Clock()
    with pytest.raises(DnsError) as caught:
        propagation.wait_for_records([RECORD], SETTINGS, clock, clock.sleep)
    assert "not seen at ns2.a.test. (192.0.2.2:53)" in str(caught.value)
    assert "it answers other" in str(caught.value)
    assert clock.slept == [1.0] * 10


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("192.0.2.1:5353", ("192.0.2.1", 5353)),
        ("192.0.2.1", ("192.0.2.1", 53)),
        ("[2001:db8::1]:54", ("2001:db8::1", 54)),
    ],
)
def test_configured_resolvers(entry: str, expected: tuple[str, int]) -> None:
    assert zones.servers([entry]) == [expected]


@pytest.mark.parametrize(
    "entry", ["192.0.2.1:x", "[::1", "[::1]x", "ns:0", "ns:70000", ":53", "a..b", "1.2.3.999", "[ns]:53"]
)
def test_a_malformed_resolver_is_named(entry: str) -> None:
    with pytest.raises(ValueError):
        zones.parse_server(entry)
    with pytest.raises(DnsError, match=re.escape(repr(entry))):
        zones.servers([entry])


def test_a_host_name_is_kept_for_later() -> None:
    assert zones.parse_server("DNS.Example.:5353") == ("dns.example", 5353)
    assert zones.parse_server("2001:db8::1") == ("2001:db8::1", 53)


def test_an_ns_unreachable_over_ipv6_is_asked_over_ipv4(monkeypatch) -> None:
    """A home without IPv6: the NS's AAAA address fails at once, its A address answers; one NS, one check."""
    asked: list[str] = []

    def exchange(q, where, timeout=None, port=53, **kw):
        asked.append(where)
        r = dns.message.make_response(q)
        name, rdtype = q.question[0].name, dns.rdatatype.to_text(q.question[0].rdtype)
        if rdtype == "NS":
            r.answer.append(dns.rrset.from_text(name, 60, "IN", "NS", "ns1.a.test."))
            r.additional.append(dns.rrset.from_text("ns1.a.test.", 60, "IN", "AAAA", "2001:db8::1"))
            r.additional.append(dns.rrset.from_text("ns1.a.test.", 60, "IN", "A", "192.0.2.1"))
        elif ":" in where:
            raise OSError(101, "Network is unreachable")
        else:
            r.answer.append(dns.rrset.from_text(name, 60, "IN", "TXT", '"v1"'))
        return r, False

    monkeypatch.setattr(zones.dns.query, "udp_with_fallback", exchange)
    servers = propagation.authoritative_servers("a.test.", [("192.0.2.53", 53)])
    assert servers == [("ns1.a.test.", (("192.0.2.1", 53), ("2001:db8::1", 53)))]
    clock = Clock()
    propagation.wait_for_records([RECORD], SETTINGS, clock, clock.sleep)
    assert clock.slept == [] and asked[-1] == "192.0.2.1"


def test_system_resolvers_or_legos_fallback(monkeypatch) -> None:
    class NoConfig:
        def __init__(self) -> None:
            raise dns.resolver.NoResolverConfiguration("no nameservers")

    monkeypatch.setattr(zones.dns.resolver, "Resolver", NoConfig)
    assert zones.servers(()) == [("8.8.8.8", 53), ("8.8.4.4", 53)]
