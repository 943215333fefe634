from router.headers import TrustedNetworks, connection_tokens


def test_connection_tokens_are_collected_lowercased():
    raw = [(b"Connection", b"keep-alive, X-Foo"), (b"connection", b"Upgrade"), (b"X-Foo", b"1")]
    assert connection_tokens(raw) == {b"keep-alive", b"x-foo", b"upgrade"}


def test_trusted_networks():
    t = TrustedNetworks(["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"])
    assert t.trusts("10.1.2.3")
    assert t.trusts("192.0.2.7")
    assert not t.trusts("192.0.2.8")
    assert t.trusts("2001:db8::1")
    assert t.trusts("::ffff:10.0.0.1")  # IPv4-mapped
    assert not t.trusts("not-an-ip")
    assert not TrustedNetworks([]).trusts("10.0.0.1")
    assert not TrustedNetworks([])
    assert TrustedNetworks([], insecure=True).trusts("8.8.8.8")
