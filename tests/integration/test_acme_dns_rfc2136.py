"""DNS-01 against a real BIND 9: RFC 2136 updates, the zone lookup through a CNAME delegation, the
propagation wait, and whole orders through Pebble validating against that BIND (no mocked DNS)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509

from acme_client.dns import journal as journal_module
from acme_client.dns import zone as zones
from acme_client.dns.base import DnsChallengeSettings, DnsError, TxtRecord
from acme_client.dns.propagation import wait_for_records
from acme_client.dns.registry import build_provider, read_provider
from acme_client.dns.solver import DnsSolver
from acme_client.issuer import AcmeError, Issuer
from acme_client.order_lock import OrderLock
from tests.integration.bind_env import CNAME_DOMAIN, CNAME_TARGET, ZONE, Bind, dns_wildcard_static, run_bind
from tests.integration.harness import wait_for
from tests.integration.pebble_env import free_port, run_pebble

pytestmark = pytest.mark.integration

NAME = f"_acme-challenge.{ZONE}."


def _settings(bind: Bind, **env: str) -> DnsChallengeSettings:
    environ = {**bind.env(), "RFC2136_PROPAGATION_TIMEOUT": "10", **env}
    config, warnings = read_provider("rfc2136", environ)
    assert warnings == []
    # lego's variables take whole seconds; a test polls faster than a user can ask
    config = dataclasses.replace(config, polling_interval=0.1)
    return DnsChallengeSettings(config, resolvers=(bind.hostport,))


def _record(value: str, domain: str = ZONE, fqdn: str = NAME, zone: str = f"{ZONE}.") -> TxtRecord:
    return TxtRecord(domain, fqdn, zone, value)


def test_present_adds_beside_and_cleanup_removes_only_its_value(bind: Bind) -> None:
    provider = build_provider(_settings(bind).provider)
    provider.present(_record("first"))
    provider.present(_record("second"))  # a wildcard and its apex share the name
    assert sorted(bind.txt(NAME)) == ["first", "second"]
    provider.cleanup(_record("first"))
    assert bind.txt(NAME) == ["second"]
    provider.cleanup(_record("first"))  # again, as after a crash: already gone is fine
    provider.cleanup(_record("second"))
    assert bind.acme_txt_left() == {}


def test_a_bind_key_file_signs_the_updates(bind: Bind, tmp_path: Path) -> None:
    """RFC2136_TSIG_FILE: the key as tsig-keygen writes it, instead of the three variables."""
    key_file = tmp_path / "dockroute.key"
    key_file.write_text(
        f'key "{bind.key_name}" {{\n\talgorithm {bind.key_algorithm};\n\tsecret "{bind.key_secret}";\n}};\n'
    )
    environ = {"RFC2136_NAMESERVER": bind.hostport, "RFC2136_TSIG_FILE": str(key_file)}
    provider = build_provider(read_provider("rfc2136", environ)[0])
    provider.present(_record("from-key-file"))
    assert bind.txt(NAME) == ["from-key-file"]
    provider.cleanup(_record("from-key-file"))
    assert bind.acme_txt_left() == {}


def test_refused_updates_name_the_server_and_the_answer(bind: Bind) -> None:
    unsigned = build_provider(read_provider("rfc2136", {"RFC2136_NAMESERVER": bind.hostport})[0])
    with pytest.raises(DnsError, match=rf"{bind.hostport}: the server answered REFUSED"):
        unsigned.present(_record("v"))
    wrong_key = build_provider(_settings(bind, RFC2136_TSIG_KEY="someone-else").provider)
    with pytest.raises(DnsError, match=rf"{bind.hostport}: the server answered NOTAUTH \(BADKEY"):
        wrong_key.present(_record("v"))
    provider = build_provider(_settings(bind).provider)
    with pytest.raises(DnsError, match=r"zone not\.served\.test\.\) at .*NOTAUTH"):
        provider.present(
            _record("v", "not.served.test", "_acme-challenge.not.served.test.", "not.served.test.")
        )
    assert bind.acme_txt_left() == {}


def test_a_server_that_does_not_answer_is_an_error_within_its_timeout(bind: Bind) -> None:
    silent = f"{bind.address}:{free_port(udp_too=True)}"
    provider = build_provider(_settings(bind, RFC2136_NAMESERVER=silent, RFC2136_DNS_TIMEOUT="1").provider)
    started = time.monotonic()
    with pytest.raises(DnsError, match=rf"{silent}: no answer within 1s"):
        provider.present(_record("v"))
    assert time.monotonic() - started < 5
    started = time.monotonic()
    with pytest.raises(DnsError, match=rf"{silent}: no answer within 1s"):
        zones.challenge_target(ZONE, zones.servers([silent]), timeout=1)
    assert time.monotonic() - started < 5


def test_zone_found_by_soa_and_through_a_cname_delegation(bind: Bind) -> None:
    among = zones.servers([bind.hostport])
    assert zones.challenge_target(ZONE, among) == (NAME, f"{ZONE}.")
    assert zones.challenge_target(f"deep.er.{ZONE}", among) == (
        f"_acme-challenge.deep.er.{ZONE}.",
        f"{ZONE}.",
    )
    assert zones.challenge_target(CNAME_DOMAIN, among) == (f"{CNAME_TARGET}.", f"{bind.delegated_zone}.")
    with pytest.raises(DnsError, match=r"_acme-challenge\.x\.elsewhere\.test.*REFUSED"):
        zones.challenge_target("x.elsewhere.test", among)


def test_solver_writes_a_delegated_record_in_the_other_zone(bind: Bind, tmp_path: Path) -> None:
    """The record goes to the CNAME's target, and the wait asks the target zone's servers. (Pebble is not
    asked here: it takes the answer of its one -dnsserver as it is, and an authoritative-only BIND does
    not chase a CNAME into another zone; a CA's recursive resolver does.)"""
    dns = DnsSolver(_settings(bind, RFC2136_PROPAGATION_TIMEOUT="3"), str(tmp_path / "acme.json"))
    dns.publish(CNAME_DOMAIN, "tok", "tok.thumb")
    dns.settle([(CNAME_DOMAIN, "tok")])
    assert len(bind.txt(f"{CNAME_TARGET}.")) == 1
    assert bind.acme_txt_left() == {
        f"_acme-challenge.cname@{bind.delegated_zone}": [f'"{bind.txt(CNAME_TARGET)[0]}"']
    }
    dns.unpublish(CNAME_DOMAIN, "tok")
    assert bind.acme_txt_left() == {}
    assert [n for n in os.listdir(tmp_path) if "dns-pending" in n] == []


def test_propagation_waits_until_every_authoritative_server_answers(bind: Bind) -> None:
    settings = _settings(bind)
    provider = build_provider(settings.provider)
    record = _record("late")
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        # The first poll found nothing: the record arrives only now, between two polls.
        if not polls:
            provider.present(record)
        polls.append(seconds)

    try:
        wait_for_records([record], settings, sleep=sleep)
        assert polls == [0.1]  # one poll without the record, the next one with it
    finally:
        provider.cleanup(record)


def test_propagation_gives_up_naming_the_server_and_the_name(bind: Bind) -> None:
    settings = _settings(bind, RFC2136_PROPAGATION_TIMEOUT="1")
    started = time.monotonic()
    with pytest.raises(DnsError) as caught:
        wait_for_records([_record("never")], settings)
    assert time.monotonic() - started < 4
    assert f"TXT {NAME} not seen at ns1.{ZONE}. ({bind.address}:53) within 1s" in str(caught.value)
    disabled = dataclasses.replace(settings, disable_checks=True)
    wait_for_records([_record("never")], disabled)  # disableChecks: no question asked


def _left_by_a_dead_run(bind: Bind, store: Path) -> None:
    """A record presented and journaled by a process that died before its cleanup (a real dead pid)."""
    DnsSolver(_settings(bind), str(store)).publish(ZONE, "tok", "tok.thumb")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    for entry in store.parent.glob(f".{store.name}.dns-pending.*.json"):
        data = json.loads(entry.read_text())
        entry.write_text(json.dumps({**data, "pid": int(dead.stdout), "run": "a-dead-run"}))
    assert len(bind.txt(NAME)) == 1


async def test_dockroute_removes_at_start_what_a_dead_run_left(
    bind: Bind, proxy, tmp_path: Path, monkeypatch
) -> None:
    """The real process: its resolver's first act is the DNS solver's recover, before any order."""
    _left_by_a_dead_run(bind, tmp_path / "acme.json")
    for key, value in bind.env().items():
        monkeypatch.setenv(key, value)  # the harness passes the environment on
    with run_pebble(tmp_path / "pebble", free_port(), dns_server=bind.hostport) as pebble:
        static = dns_wildcard_static(tmp_path, pebble.directory_url, pebble.ca_bundle, bind)
        dr = await proxy({"http": {"routers": {}, "services": {}}}, static=static)
        gone = await wait_for(lambda: not bind.txt(NAME) and "gone", timeout=20)
    assert gone == "gone"
    assert "left by an order that no longer runs" in dr.log()
    await wait_for(lambda: not list(tmp_path.glob(".acme.json.dns-pending.*")), timeout=5)


def test_recover_removes_what_a_dead_run_left(bind: Bind, tmp_path: Path, monkeypatch) -> None:
    store = str(tmp_path / "acme.json")
    DnsSolver(_settings(bind), store).publish(ZONE, "tok", "tok.thumb")  # then "crashed": never unpublished
    assert len(bind.txt(NAME)) == 1
    monkeypatch.setattr(journal_module, "_RUN", "the-next-run")
    DnsSolver(_settings(bind), store).solver().recover()
    assert bind.acme_txt_left() == {}
    assert [n for n in os.listdir(tmp_path) if "dns-pending" in n] == []


def test_recover_keeps_a_running_orders_record_and_removes_it_once_its_lock_is_free(
    bind: Bind, tmp_path: Path
) -> None:
    """Staleness is the order lock, whoever wrote the entry: this run's own record stays in BIND while
    its order holds the lock, and the next pass after that (a failed cleanup, say) removes it."""
    store = str(tmp_path / "acme.json")
    dns = DnsSolver(_settings(bind), store)
    with OrderLock(store, "le", [ZONE]):
        dns.publish(ZONE, "tok", "tok.thumb")
        dns.recover()  # a check pass during the order
        assert len(bind.txt(NAME)) == 1
    dns.recover()  # the pass after: the order is gone, its record with it
    assert bind.acme_txt_left() == {}
    assert [n for n in os.listdir(tmp_path) if "dns-pending" in n] == []


async def test_dockroute_removes_a_live_processs_record_whose_order_ended_and_keeps_a_running_one(
    bind: Bind, proxy, tmp_path: Path, monkeypatch
) -> None:
    """The real process, beside another live process on the same host (this test): the record of an
    order of this test's that ended without its cleanup (lock free) is removed; the record of an order
    this test is still running (lock held) is left alone, though host and pid are the same as the first."""
    store = str(tmp_path / "acme.json")
    with OrderLock(store, "le", [ZONE]):
        DnsSolver(_settings(bind), store).publish(ZONE, "ended", "ended.thumb")
    ended = bind.txt(NAME)
    running = OrderLock(store, "le", [f"*.{ZONE}"])
    running.acquire()
    try:
        DnsSolver(_settings(bind), store).publish(ZONE, "running", "running.thumb")
        assert len(bind.txt(NAME)) == 2
        for key, value in bind.env().items():
            monkeypatch.setenv(key, value)
        with run_pebble(tmp_path / "pebble", free_port(), dns_server=bind.hostport) as pebble:
            static = dns_wildcard_static(tmp_path, pebble.directory_url, pebble.ca_bundle, bind)
            dr = await proxy({"http": {"routers": {}, "services": {}}}, static=static)
            left = await wait_for(lambda: (v := bind.txt(NAME)) and ended[0] not in v and v, timeout=20)
            assert "left by an order that no longer runs" in dr.log()
        assert len(left) == 1 and left[0] != ended[0]
        assert len(list(tmp_path.glob(".acme.json.dns-pending.*"))) == 1
    finally:
        running.release()
        DnsSolver(_settings(bind), store).recover()  # this "order" ended too: its record goes
    assert bind.acme_txt_left() == {}


def _left_over(bind: Bind, store: Path, token: str) -> str:
    """A record whose order ended without its cleanup (a DNS API that failed then): journaled under the
    order lock, which is free again. Its value."""
    before = set(bind.txt(NAME))
    with OrderLock(str(store), "le", [ZONE]):
        DnsSolver(_settings(bind), str(store)).publish(ZONE, token, f"{token}.thumb")
    (value,) = set(bind.txt(NAME)) - before
    return value


async def test_dockroute_retries_leftovers_on_its_later_checks_not_only_at_start(
    bind: Bind, proxy, tmp_path: Path, monkeypatch
) -> None:
    """A cleanup that failed while the proxy runs is retried at a later check of the resolver (here, the
    one a new router starts), not left in the zone until the next restart."""
    store = tmp_path / "acme.json"
    _left_over(bind, store, "at-start")
    for key, value in bind.env().items():
        monkeypatch.setenv(key, value)
    with run_pebble(tmp_path / "pebble", free_port(), dns_server=bind.hostport) as pebble:
        static = dns_wildcard_static(tmp_path, pebble.directory_url, pebble.ca_bundle, bind)
        dr = await proxy({"http": {"routers": {}, "services": {}}}, static=static)
        assert await wait_for(lambda: not bind.txt(NAME) and "gone", timeout=20) == "gone"  # the start's
        later = _left_over(bind, store, "while-running")
        assert bind.txt(NAME) == [later]
        service = {"loadBalancer": {"servers": [{"url": "http://127.0.0.1:9"}]}}
        router = {"rule": f"Host(`x.{ZONE}`)", "service": "s", "tls": {"certResolver": "le"}}
        dr.write_dynamic({"http": {"routers": {"x": router}, "services": {"s": service}}})
        assert await wait_for(lambda: not bind.txt(NAME) and "gone", timeout=30) == "gone"
        # x's own order (its record at another name) is over too before Pebble goes
        assert await wait_for(lambda: not bind.acme_txt_left() and "clean", timeout=30) == "clean"
    assert dr.log().count("left by an order that no longer runs") == 2


# -- whole orders: Pebble validates against the same BIND ----------------------------------------------


def _issue(pebble, settings: DnsChallengeSettings, store: str, names: list[str]):
    issuer = Issuer(pebble.directory_url, None, "ops@example.com", ca_bundle=pebble.ca_bundle)
    return issuer.issue(names, [DnsSolver(settings, store).solver()], deadline=30)


def test_wildcard_and_apex_issued_through_bind_leave_no_record(bind: Bind, tmp_path: Path) -> None:
    with run_pebble(tmp_path / "pebble", free_port(), dns_server=bind.hostport) as pebble:
        cert = _issue(pebble, _settings(bind), str(tmp_path / "acme.json"), [f"*.{ZONE}", ZONE])
    leaf = x509.load_pem_x509_certificates(cert.fullchain_pem)[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == sorted([f"*.{ZONE}", ZONE])
    assert bind.acme_txt_left() == {}
    assert [n for n in os.listdir(tmp_path) if "dns-pending" in n] == []


def test_a_failed_validation_leaves_no_record(bind: Bind, tmp_path: Path) -> None:
    # Pebble asks another BIND (same zones, none of our records): validation fails.
    with (
        run_bind(tmp_path / "other-bind") as other,
        run_pebble(tmp_path / "pebble", free_port(), dns_server=other.hostport) as pebble,
        pytest.raises(AcmeError, match=r"dns-01"),
    ):
        _issue(pebble, _settings(bind), str(tmp_path / "acme.json"), [f"*.{ZONE}"])
    assert bind.acme_txt_left() == {}
    assert json.dumps([n for n in os.listdir(tmp_path) if "dns-pending" in n]) == "[]"
