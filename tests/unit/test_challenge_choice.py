"""Which challenge proves each authorization, as lego (Traefik's ACME library) chooses it: its solver
manager sorts the challenges a CA offers by type, descending (tls-alpn-01, http-01, dns-01), and takes the
first it has a solver for. So a resolver with ``httpChallenge`` and ``dnsChallenge`` proves a plain name
over HTTP-01 and only a wildcard, for which a CA offers DNS-01 alone, over DNS-01.

The solvers are the resolver's own (``make_solvers``); the CA is a fake offering what Pebble and Let's
Encrypt offer: all three types for a plain name, dns-01 only for a wildcard.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
from acme import challenges, messages

from acme_client import tls_alpn
from acme_client.dns.base import DnsChallengeSettings, ProviderConfig
from acme_client.issuer import Issuer, Solver
from acme_client.settings import ResolverSettings
from acme_client.shared_challenges import make_solvers
from acme_client.storage import AcmeStorage

DNS = DnsChallengeSettings(ProviderConfig("rfc2136", {"RFC2136_NAMESERVER": "192.0.2.1"}))
ALL = ("dns-01", "http-01", "tls-alpn-01")
_CLASSES = {"http-01": challenges.HTTP01, "tls-alpn-01": tls_alpn.TLSALPN01, "dns-01": challenges.DNS01}


def _authz(domain: str, offered: tuple[str, ...], wildcard: bool = False) -> messages.AuthorizationResource:
    token = (domain.strip("*.") + "-token-padding-to-16").encode()[:24]
    challbs = [
        messages.ChallengeBody(
            chall=_CLASSES[typ](token=token),
            uri=f"https://ca.test/chall/{typ}",
            status=messages.STATUS_PENDING,
        )
        for typ in offered
    ]
    body = messages.Authorization(
        identifier=messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=domain),
        challenges=challbs,
        status=messages.STATUS_PENDING,
        wildcard=wildcard,
    )
    return messages.AuthorizationResource(body=body, uri=f"https://ca.test/authz/{domain}")


def _solvers(tmp_path, http: str | None, tls: bool) -> list[Solver]:
    holder = SimpleNamespace(
        tokens={}, alpn_certs={}, storage=AcmeStorage(str(tmp_path / "acme.json")), name="le"
    )
    settings = ResolverSettings(http_entry_point=http, tls_challenge=tls, dns_challenge=DNS)
    return make_solvers(settings, holder)


@pytest.mark.parametrize("offered", list(itertools.permutations(ALL)))
@pytest.mark.parametrize(
    ("http", "tls", "plain"),
    [
        ("web", False, "http-01"),
        (None, True, "tls-alpn-01"),
        ("web", True, "tls-alpn-01"),
        (None, False, "dns-01"),
    ],
)
def test_each_authorization_gets_lego_s_choice(tmp_path, offered, http, tls, plain) -> None:
    solvers = _solvers(tmp_path, http, tls)
    challb, solver = Issuer._pick(_authz("a.example.com", offered), solvers)  # noqa: SLF001
    assert solver.typ == plain and challb.chall.typ == plain
    challb, solver = Issuer._pick(_authz("example.com", ("dns-01",), wildcard=True), solvers)  # noqa: SLF001
    assert solver.typ == "dns-01" and challb.chall.typ == "dns-01"


def test_an_order_of_a_wildcard_and_plain_names_proves_only_the_wildcard_over_dns(
    tmp_path, monkeypatch
) -> None:
    """Through Issuer.issue: with httpChallenge + dnsChallenge, the plain names' answers go to HTTP-01 and
    only the wildcard's to DNS-01 (the one settle, the propagation wait, has the wildcard's record only)."""
    events: list[tuple[str, ...]] = []
    authzs = [
        _authz("example.com", ("dns-01",), wildcard=True),
        _authz("example.com", ("dns-01", "http-01", "tls-alpn-01")),  # Pebble's order for a plain name
        _authz("shop.example.com", ("tls-alpn-01", "dns-01", "http-01")),
    ]
    order = messages.OrderResource(
        body=messages.Order(), authorizations=authzs, uri="https://ca.test/order/1"
    )
    fake_ca = SimpleNamespace(
        answer_challenge=lambda challb, response: events.append(("answer", challb.chall.typ)),
        poll_and_finalize=lambda order, until: order.update(fullchain_pem="CERT"),
    )
    issuer = Issuer("https://ca.test/dir", None, None)
    issuer.registration_uri = "https://ca.test/acct/1"
    monkeypatch.setattr(issuer, "_acme", lambda: fake_ca)
    monkeypatch.setattr(issuer, "_new_order", lambda acme, csr, replaces: order)

    def recording(real: Solver) -> Solver:  # the resolver's solvers, in their order, writing nowhere
        return Solver(
            real.typ,
            lambda domain, token, answer: events.append(("publish", real.typ, domain)),
            lambda domain, token: events.append(("unpublish", real.typ, domain)),
            settle=(lambda pairs: events.append(("settle", real.typ, *(d for d, _ in pairs))))
            if real.settle is not None
            else None,
        )

    solvers = [recording(s) for s in _solvers(tmp_path, "web", False)]
    issuer.issue(["*.example.com", "example.com", "shop.example.com"], solvers)
    published = sorted(e[1:] for e in events if e[0] == "publish")
    assert published == [
        ("dns-01", "example.com"),
        ("http-01", "example.com"),
        ("http-01", "shop.example.com"),
    ]
    assert ("settle", "dns-01", "example.com") in events
    assert sorted(e[1] for e in events if e[0] == "answer") == ["dns-01", "http-01", "http-01"]
