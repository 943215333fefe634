"""The resolver with dnsChallenge: wildcards are ordered, name sets a wanted wildcard covers order nothing
of their own, and a stored wildcard certificate stands for the hosts under it in the reports as in the
loop."""

from __future__ import annotations

from acme_client.dns.base import DnsChallengeSettings, ProviderConfig
from acme_client.resolver import AcmeResolver
from acme_client.settings import ResolverSettings
from tests.unit.test_acme_concurrent_orders import _cert

DNS = DnsChallengeSettings(ProviderConfig("rfc2136"))


def _resolver(tmp_path, dns: bool) -> AcmeResolver:
    settings = ResolverSettings(storage=str(tmp_path / "acme.json"), dns_challenge=DNS if dns else None)
    return AcmeResolver("le", settings, lambda: None)


def test_with_dns_01_a_wanted_wildcard_covers_the_routers_under_it(tmp_path, caplog):
    wanted = [
        ("*.h.example.com", "h.example.com"),
        ("a.h.example.com",),
        ("b.a.h.example.com",),
        ("h.example.com", "x.example.com"),
    ]
    r = _resolver(tmp_path, dns=True)
    r.want(wanted)
    # a.h.example.com: the wildcard; b.a.h.example.com is two labels below; x.example.com is nobody's.
    assert r._wanted == [
        ("*.h.example.com", "h.example.com"),
        ("b.a.h.example.com",),
        ("h.example.com", "x.example.com"),
    ]  # noqa: SLF001
    caplog.set_level("INFO")
    r = _resolver(tmp_path, dns=False)
    r.want(wanted)
    assert r._wanted == [
        ("h.example.com",),
        ("a.h.example.com",),
        ("b.a.h.example.com",),
        ("h.example.com", "x.example.com"),
    ]  # noqa: SLF001
    assert (
        "no certificate ordered for *.h.example.com (a wildcard: it needs the DNS-01 challenge" in caplog.text
    )


def test_a_stored_wildcard_certificate_stands_for_a_host_under_it_in_loop_and_reports(tmp_path):
    r = _resolver(tmp_path, dns=True)
    wildcard = _cert(("*.h.example.com",))
    r._certs[("*.h.example.com",)] = wildcard  # noqa: SLF001 - from an earlier configuration
    r.want([("a.h.example.com",)])
    assert r._due(("a.h.example.com",))[0] is False  # noqa: SLF001 - the loop orders nothing
    (report,) = r.reports()  # and the reports agree: the wildcard serves it, nothing is pending
    assert report.domains == ("*.h.example.com",) and report.next_renewal is not None
