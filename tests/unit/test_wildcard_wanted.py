"""A wildcard in ``tls.domains`` becomes one wanted name set of its resolver, and routers whose hosts it
covers order nothing of their own (what the ACME resolver keeps of the app's wanted sets: the names it
may order, then :func:`~acme_client.covering.prune_covered`)."""

from __future__ import annotations

from acme_client.covering import prune_covered
from acme_client.ordered_names import why_left_out
from discover.model import Domain, LoadBalancer, Router, RouterTLS, Server, Service, merge
from dockroute.certificates import wanted_certificates
from router.compile import compile_config
from router.settings import EntryPoint
from tests.unit.test_model import cfg

EPS = (EntryPoint("websecure", ":443"),)
WILD = Domain("*.home.example.test", ("home.example.test",))


def _wanted(*routers: Router) -> list[tuple[str, ...]]:
    svc = Service("s", load_balancer=LoadBalancer(servers=(Server("http://127.0.0.1:1"),)))
    merged = merge({"file": cfg(routers=routers, services=[svc])})
    return wanted_certificates(merged, compile_config(merged, EPS), EPS, {"le": object()})["le"]


def _ordered(sets: list[tuple[str, ...]], dns01: bool) -> list[tuple[str, ...]]:
    """The resolver's reading of the wanted sets: names it may order, then the sets wildcards cover."""
    kept = [
        tuple(n for n in names if why_left_out(n, public_ca=False, dns01=dns01) is None) for names in sets
    ]
    return prune_covered(names for names in kept if names)


def test_a_wildcard_domain_is_one_set_and_covers_routers_without_domains():
    wanted = _wanted(
        Router("wild", "Host(`home.example.test`)", "s", tls=RouterTLS(cert_resolver="le", domains=(WILD,))),
        Router("a", "Host(`a.home.example.test`)", "s", tls=RouterTLS(cert_resolver="le")),
        Router("b", "Host(`b.home.example.test`)", "s", tls=RouterTLS(cert_resolver="le")),
        Router("deep", "Host(`x.a.home.example.test`)", "s", tls=RouterTLS(cert_resolver="le")),
    )
    wanted.sort()
    assert wanted == [
        ("*.home.example.test", "home.example.test"),
        ("a.home.example.test",),
        ("b.home.example.test",),
        ("x.a.home.example.test",),
    ]
    # with DNS-01: the wildcard, and the one host it cannot cover (two labels down)
    assert _ordered(wanted, dns01=True) == [
        ("*.home.example.test", "home.example.test"),
        ("x.a.home.example.test",),
    ]
    # without: no wildcard is ordered, so every router orders its own
    assert _ordered(wanted, dns01=False) == [
        ("home.example.test",),
        ("a.home.example.test",),
        ("b.home.example.test",),
        ("x.a.home.example.test",),
    ]


def test_an_entry_points_wildcard_domains_are_what_its_routers_want():
    eps = (EntryPoint("websecure", ":443", tls=RouterTLS(cert_resolver="le", domains=(WILD,))),)
    svc = Service("s", load_balancer=LoadBalancer(servers=(Server("http://127.0.0.1:1"),)))
    merged = merge(
        {
            "file": cfg(
                routers=[Router("a", "Host(`a.home.example.test`)", "s")],
                services=[svc],
            )
        }
    )
    wanted = wanted_certificates(merged, compile_config(merged, eps), eps, {"le": object()})["le"]
    assert wanted == [("*.home.example.test", "home.example.test")]  # the entry point's domains, not the host
    assert _ordered(wanted, dns01=True) == wanted
