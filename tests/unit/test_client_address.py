"""The client's address as Traefik (Go) reports it, whatever socket family the entry point listens on."""

from __future__ import annotations

import ipaddress

from router.proxy_protocol import go_ip, peer_ip


def test_an_ipv4_client_of_a_dual_stack_listener_is_its_ipv4_address():
    # ":80" binds "::" with IPv4 mapped in: Python's peername is ("::ffff:172.21.0.1", port, 0, 0).
    assert peer_ip(("::ffff:172.21.0.1", 40000, 0, 0)) == "172.21.0.1"


def test_other_addresses_are_kept_as_they_are():
    assert peer_ip(("127.0.0.1", 40000)) == "127.0.0.1"
    assert peer_ip(("2001:db8::1", 40000, 0, 0)) == "2001:db8::1"
    assert peer_ip(("::fffe:0:1", 40000, 0, 0)) == "::fffe:0:1"  # not a mapped IPv4 address
    assert peer_ip(None) == ""


def test_a_mapped_address_in_any_spelling_is_unmapped_as_go_prints_it():
    # Go's net.IP.String: ::ffff:0:1 *is* ::ffff:0.0.0.1; ipaddress (before 3.13) writes hex groups
    assert go_ip("::ffff:0:1") == "0.0.0.1"
    assert go_ip(str(ipaddress.IPv6Address("::ffff:192.0.2.1"))) == "192.0.2.1"
    assert go_ip("::ffff:zz") == "::ffff:zz" and go_ip("2001:db8::1") == "2001:db8::1"
