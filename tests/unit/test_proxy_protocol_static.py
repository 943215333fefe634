"""``entryPoints.<ep>.proxyProtocol`` read from files and flags as Traefik reads it: the section's presence
turns PROXY headers on, ``trustedIPs`` are addresses or CIDRs checked as ``forwardedHeaders.trustedIPs``
are, and nothing of it is reported as ignored any more."""

from __future__ import annotations

import pytest

from dockroute.static.build import load_static
from dockroute.static.settings import StaticConfigError
from router.settings import ProxyProtocolIn


def proxy_protocol(*flags: str) -> ProxyProtocolIn | None:
    static = load_static(["--entrypoints.web.address=:80", *flags], {}, search_dirs=[])
    assert not static.ignored
    (ep,) = static.entry_points
    return ep.proxy_protocol


def test_absent_or_switched_off_reads_no_header():
    assert proxy_protocol() is None
    assert proxy_protocol("--entrypoints.web.proxyprotocol=false") is None


@pytest.mark.parametrize(
    "flags",
    [
        ("--entrypoints.web.proxyprotocol=true",),  # a bare switch
        ("--entrypoints.web.proxyprotocol",),
        ("--entrypoints.web.proxyprotocol.insecure=false",),
        ("--entrypoints.web.proxyprotocol.trustedips=",),  # an empty list
    ],
)
def test_neither_trusted_ips_nor_insecure_stops_the_start_as_in_traefik(flags):
    # Traefik's entry point fails to build: ip.NewChecker([]) -> "no trusted IPs provided"
    with pytest.raises(StaticConfigError) as err:
        load_static(["--entrypoints.web.address=:80", *flags], {}, search_dirs=[])
    assert str(err.value).startswith("entryPoints.web.proxyProtocol.trustedIPs: required")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("section", ["{}", "{trustedIPs: []}", "{insecure: false}"])
def test_an_empty_section_in_a_file_stops_the_start(tmp_path, section):
    cfg = tmp_path / "traefik.yml"
    cfg.write_text(f"entryPoints:\n  web:\n    address: ':80'\n    proxyProtocol: {section}\n")
    with pytest.raises(StaticConfigError) as err:
        load_static([], {}, config_file=str(cfg))
    assert err.value.key == "entryPoints.web.proxyProtocol.trustedIPs"


def test_trusted_ips_and_insecure():
    found = proxy_protocol("--entrypoints.web.proxyprotocol.trustedips=10.0.0.0/8,192.0.2.7,2001:db8::/32")
    assert found == ProxyProtocolIn(trusted_ips=("10.0.0.0/8", "192.0.2.7", "2001:db8::/32"))
    assert proxy_protocol("--entrypoints.web.proxyprotocol.insecure") == ProxyProtocolIn(insecure=True)


def test_from_a_file(tmp_path):
    cfg = tmp_path / "traefik.yml"
    cfg.write_text(
        "entryPoints:\n  web:\n    address: ':80'\n"
        "    proxyProtocol:\n      trustedIPs: ['127.0.0.1', '10.0.0.0/8']\n      insecure: false\n"
    )
    static = load_static([], {}, config_file=str(cfg))
    assert static.entry_points[0].proxy_protocol == ProxyProtocolIn(trusted_ips=("127.0.0.1", "10.0.0.0/8"))
    assert not static.ignored


@pytest.mark.parametrize(
    ("flag", "key"),
    [
        (
            "--entrypoints.web.proxyprotocol.trustedips=10.0.0.x",
            "entryPoints.web.proxyProtocol.trustedIPs[0]",
        ),
        ("--entrypoints.web.proxyprotocol.insecure=maybe", "entryPoints.web.proxyProtocol.insecure"),
        ("--entrypoints.web.proxyprotocol.trusted=1.2.3.4", "entryPoints.web.proxyProtocol.trusted"),
    ],
)
def test_bad_values_stop_the_start_naming_the_key(flag, key):
    with pytest.raises(StaticConfigError) as err:
        load_static(["--entrypoints.web.address=:80", flag], {}, search_dirs=[])
    assert key in str(err.value)


def test_a_udp_entry_point_ignores_it_as_traefik_does():
    # Traefik builds no PROXY listener for UDP: nothing to refuse, the key is warned as ignored
    flags = ["--entrypoints.dns.address=:53/udp", "--entrypoints.dns.proxyprotocol"]
    static = load_static(flags, {}, search_dirs=[])
    (ep,) = static.entry_points
    assert ep.proxy_protocol is None
    ignored = "entryPoints.dns.proxyProtocol has no effect on a UDP entry point"
    assert any(ignored in w for w in static.warnings)
