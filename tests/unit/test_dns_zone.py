"""Where a DNS-01 record goes (acme_client/dns/zone.py): CNAME chains, loops, and resolvers asked in turn.

A fake exchange stands in for the network here, answering from a small table as a recursive resolver
would; the same lookups run against real BIND in tests/integration/test_acme_dns_rfc2136.py.
"""

from __future__ import annotations

import dns.exception
import dns.message
import dns.rdatatype
import dns.rrset
import pytest

from acme_client.dns import zone as zones
from acme_client.dns.base import DnsError

FIRST, SECOND = ("192.0.2.1", 53), ("192.0.2.2", 5353)


class FakeResolver:
    """Answers CNAME and SOA questions from ``records``; ``silent`` servers time out."""

    def __init__(self, records: dict[tuple[str, str], str], silent: tuple[str, ...] = ()) -> None:
        self.records, self.silent = records, silent
        self.asked: list[tuple[str, str, str]] = []

    def exchange(self, q, where, timeout=None, port=53, **kw):
        name, rdtype = q.question[0].name, dns.rdatatype.to_text(q.question[0].rdtype)
        self.asked.append((where, name.to_text(), rdtype))
        if where in self.silent:
            raise dns.exception.Timeout
        response = dns.message.make_response(q)
        value = self.records.get((name.to_text(), rdtype))
        if value is not None:
            response.answer.append(dns.rrset.from_text(name, 60, "IN", rdtype, value))
        return response, False


SOA = "ns1.home.test. admin.home.test. 1 60 60 60 60"


@pytest.fixture
def resolver(monkeypatch) -> FakeResolver:
    fake = FakeResolver({})
    monkeypatch.setattr(zones.dns.query, "udp_with_fallback", fake.exchange)
    return fake


def test_a_cname_chain_of_two_hops_is_followed_to_the_delegated_zone(resolver: FakeResolver) -> None:
    resolver.records = {
        ("_acme-challenge.a.home.test.", "CNAME"): "_acme-challenge.hop.home.test.",
        ("_acme-challenge.hop.home.test.", "CNAME"): "a.acme.delegated.test.",
        ("acme.delegated.test.", "SOA"): SOA,
        ("home.test.", "SOA"): SOA,
    }
    assert zones.challenge_target("a.home.test", [FIRST]) == (
        "a.acme.delegated.test.",
        "acme.delegated.test.",
    )


def test_a_cname_loop_is_refused_naming_it(resolver: FakeResolver) -> None:
    resolver.records = {
        ("_acme-challenge.a.home.test.", "CNAME"): "x.home.test.",
        ("x.home.test.", "CNAME"): "y.home.test.",
        ("y.home.test.", "CNAME"): "x.home.test.",
    }
    with pytest.raises(DnsError, match=r"CNAME loop at _acme-challenge\.a\.home\.test\. \(back to x\.home"):
        zones.challenge_target("a.home.test", [FIRST])
    assert len(resolver.asked) == 3  # stopped at the loop, not at the 50-hop limit


def test_the_second_resolver_answers_when_the_first_does_not(resolver: FakeResolver) -> None:
    resolver.records = {("home.test.", "SOA"): SOA}
    resolver.silent = (FIRST[0],)
    assert zones.challenge_target("a.home.test", [FIRST, SECOND], timeout=1) == (
        "_acme-challenge.a.home.test.",
        "home.test.",
    )
    assert ("192.0.2.2", "home.test.", "SOA") in resolver.asked


def test_no_resolver_answering_names_every_one_asked(resolver: FakeResolver) -> None:
    resolver.silent = (FIRST[0], SECOND[0])
    with pytest.raises(DnsError) as caught:
        zones.challenge_target("a.home.test", [FIRST, SECOND], timeout=1)
    assert "192.0.2.1:53: no answer within 1s" in str(caught.value)
    assert "192.0.2.2:5353: no answer within 1s" in str(caught.value)
