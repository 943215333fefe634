"""The BIND the DNS-01 tests stand on: it serves its zones and takes TSIG-signed updates (and only those)."""

from __future__ import annotations

import dns.message
import dns.query
import dns.rcode
import dns.update

from tests.integration.bind_env import CNAME_TARGET, Bind, run_bind


def test_serves_soa_ns_and_the_delegation_cname(bind: Bind) -> None:
    soa = bind.query(bind.zone, "SOA")
    assert soa.rcode() == dns.rcode.NOERROR
    assert soa.answer[0][0].mname.to_text() == f"ns1.{bind.zone}."
    ns_a = bind.query(f"ns1.{bind.zone}", "A")
    assert [r.address for r in ns_a.answer[0]] == [bind.address]
    cname = bind.query(f"_acme-challenge.cname.{bind.zone}", "CNAME")
    assert cname.answer[0][0].target.to_text() == f"{CNAME_TARGET}."
    assert bind.query(bind.delegated_zone, "SOA").answer
    # Authoritative only: a name elsewhere is refused, not looked up.
    assert bind.query("example.com", "A").rcode() == dns.rcode.REFUSED


def test_accepts_a_tsig_update_and_refuses_an_unsigned_one(bind: Bind) -> None:
    name = f"_acme-challenge.a.{bind.zone}"
    assert bind.txt(name) == []
    bind.update(bind.zone, add={"_acme-challenge.a": "first"})
    bind.update(bind.zone, add={"_acme-challenge.a": "second"})
    assert sorted(bind.txt(name)) == ["first", "second"]
    assert bind.acme_txt_left() == {"_acme-challenge.a@home.example.test": ['"first"', '"second"']}

    unsigned = dns.update.UpdateMessage(bind.zone)
    unsigned.delete("_acme-challenge.a", "TXT")
    assert dns.query.tcp(unsigned, bind.address, port=bind.port, timeout=5).rcode() == dns.rcode.REFUSED
    assert len(bind.txt(name)) == 2

    bind.update(bind.zone, delete=["_acme-challenge.a"])
    assert bind.txt(name) == []
    assert bind.acme_txt_left() == {}
    assert list(bind.workdir.glob("*.jnl")), "updates are journaled in the working directory"


def test_only_txt_may_be_updated(bind: Bind) -> None:
    u = dns.update.UpdateMessage(bind.zone, keyring=bind._keyring(), keyname=bind.key_name)
    u.add("www", 60, "A", "127.0.0.1")
    assert dns.query.tcp(u, bind.address, port=bind.port, timeout=5).rcode() == dns.rcode.REFUSED


def test_two_servers_at_once_get_their_own_addresses(tmp_path) -> None:
    with run_bind(tmp_path / "b0") as first, run_bind(tmp_path / "b1") as second:
        servers = [first, second]
        assert first.address != second.address
        servers[0].update(servers[0].zone, add={"_acme-challenge.x": "only-here"})
        assert servers[1].txt(f"_acme-challenge.x.{servers[1].zone}") == []
