"""The client's address as Traefik (Go) reports it, whatever socket family the entry point listens on."""

from __future__ import annotations

from router.proxy_protocol import peer_ip


def test_an_ipv4_client_of_a_dual_stack_listener_is_its_ipv4_address():
    # ":80" binds "::" with IPv4 mapped in: Python's peername is ("::ffff:172.21.0.1", port, 0, 0).
    assert peer_ip(("::ffff:172.21.0.1", 40000, 0, 0)) == "172.21.0.1"


def test_other_addresses_are_kept_as_they_are():
    assert peer_ip(("127.0.0.1", 40000)) == "127.0.0.1"
    assert peer_ip(("2001:db8::1", 40000, 0, 0)) == "2001:db8::1"
    assert peer_ip(("::ffff:0:1", 40000, 0, 0)) == "::ffff:0:1"  # not a mapped IPv4 address
    assert peer_ip(None) == ""
