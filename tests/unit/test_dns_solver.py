"""The DNS-01 solver around a provider (journal, cleanup always, recover), its place among a resolver's
solvers, and the issuer's order of work: every answer published, one settle, then the CA asked.

Fakes stand in for the provider and the CA here; the same paths run against real BIND and Pebble in
tests/integration/test_acme_dns_rfc2136.py.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import josepy as jose
import pytest
from acme import challenges, messages
from cryptography.hazmat.primitives.asymmetric import ec

from acme_client.dns import solver as solver_module
from acme_client.dns.base import DnsChallengeSettings, DnsConfigError, DnsError, ProviderConfig, TxtRecord
from acme_client.dns.solver import DnsSolver, txt_value
from acme_client.issuer import AcmeError, Issuer, Solver
from acme_client.order_lock import OrderLock
from acme_client.settings import ResolverSettings
from acme_client.shared_challenges import make_solvers

SETTINGS = DnsChallengeSettings(ProviderConfig("rfc2136", {"RFC2136_NAMESERVER": "192.0.2.1"}))


class FakeProvider:
    """Records calls; checks the journal holds a record when it is presented."""

    def __init__(self, folder, fail_present: bool = False, fail_cleanup: bool = False) -> None:
        self.folder, self.fail_present, self.fail_cleanup = folder, fail_present, fail_cleanup
        self.calls: list[tuple[str, str]] = []
        self.journaled_at_present: list[int] = []

    def present(self, record: TxtRecord) -> None:
        self.journaled_at_present.append(len([n for n in os.listdir(self.folder) if "dns-pending" in n]))
        self.calls.append(("present", record.value))
        if self.fail_present:
            raise DnsError("present refused")

    def cleanup(self, record: TxtRecord) -> None:
        self.calls.append(("cleanup", record.value))
        if self.fail_cleanup:
            raise DnsError("cleanup refused")


@pytest.fixture(autouse=True)
def _no_dns(monkeypatch) -> None:
    monkeypatch.setattr(solver_module.zones, "servers", lambda configured: [("192.0.2.53", 53)])
    monkeypatch.setattr(
        solver_module.zones,
        "challenge_target",
        lambda domain, among: (f"_acme-challenge.{domain}.", f"{domain}."),
    )


def _pending(tmp_path) -> list[str]:
    return [n for n in os.listdir(tmp_path) if "dns-pending" in n]


def test_txt_value_is_what_the_ca_computes() -> None:
    """RFC 8555 section 8.4, as certbot's acme library (the CA side of the tests) computes it."""
    key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    chall = challenges.DNS01(token=b"x" * 16)
    assert txt_value(chall.key_authorization(key)) == chall.validation(key)


def test_publish_journals_before_present_and_unpublish_cleans_both(tmp_path) -> None:
    provider = FakeProvider(tmp_path)
    dns = DnsSolver(SETTINGS, str(tmp_path / "acme.json"), provider=provider)
    dns.publish("a.test", "tok", "tok.thumb")
    assert provider.journaled_at_present == [1]
    assert provider.calls == [("present", txt_value("tok.thumb"))]
    dns.unpublish("a.test", "tok")
    assert provider.calls[-1] == ("cleanup", txt_value("tok.thumb"))
    assert _pending(tmp_path) == []


def test_failed_present_is_cleaned_up_and_raised(tmp_path) -> None:
    provider = FakeProvider(tmp_path, fail_present=True)
    dns = DnsSolver(SETTINGS, str(tmp_path / "acme.json"), provider=provider)
    with pytest.raises(DnsError):
        dns.publish("a.test", "tok", "tok.thumb")
    assert [c for c, _ in provider.calls] == ["present", "cleanup"]
    assert _pending(tmp_path) == []


def test_failed_present_and_cleanup_drop_the_entry_and_say_so(tmp_path, caplog) -> None:
    """A server refusing (or down) would otherwise add one journal entry per retry."""
    provider = FakeProvider(tmp_path, fail_present=True, fail_cleanup=True)
    dns = DnsSolver(SETTINGS, str(tmp_path / "acme.json"), provider=provider)
    with pytest.raises(DnsError, match="present refused"):
        dns.publish("a.test", "tok", "tok.thumb")
    assert _pending(tmp_path) == []
    assert "could not remove TXT _acme-challenge.a.test." in caplog.text and "stays there" in caplog.text


def test_recover_goes_on_past_a_record_it_cannot_remove(tmp_path, monkeypatch, caplog) -> None:
    """Two leftovers, the first refused by the provider: the second is still removed, the first's entry
    kept for the next pass."""
    crashed = DnsSolver(SETTINGS, str(tmp_path / "acme.json"), provider=FakeProvider(tmp_path))
    crashed.publish("a.test", "tok", "tok.thumb")
    crashed.publish("b.test", "tok2", "tok2.thumb")
    monkeypatch.setattr("acme_client.dns.journal._RUN", "the-next-run")

    class FirstRefused(FakeProvider):
        def cleanup(self, record: TxtRecord) -> None:
            self.calls.append(("cleanup", record.value))
            if len(self.calls) == 1:
                raise DnsError("cleanup refused")

    provider = FirstRefused(tmp_path)
    DnsSolver(SETTINGS, str(tmp_path / "acme.json"), provider=provider).solver().recover()
    assert sorted(provider.calls) == sorted(
        [("cleanup", txt_value("tok.thumb")), ("cleanup", txt_value("tok2.thumb"))]
    )
    assert len(_pending(tmp_path)) == 1 and "cleanup refused" in caplog.text
    refused = provider.calls[0][1]
    later = DnsSolver(SETTINGS, str(tmp_path / "acme.json"), provider=FakeProvider(tmp_path))
    assert [r.value for r in later.journal.leftovers()] == [refused]


def test_failed_cleanup_keeps_the_entry_for_recover(tmp_path, caplog) -> None:
    provider = FakeProvider(tmp_path, fail_cleanup=True)
    dns = DnsSolver(SETTINGS, str(tmp_path / "acme.json"), provider=provider)
    dns.publish("a.test", "tok", "tok.thumb")
    dns.unpublish("a.test", "tok")  # never raises: it runs after the outcome is known
    assert len(_pending(tmp_path)) == 1
    assert "cleanup refused" in caplog.text
    later = DnsSolver(SETTINGS, str(tmp_path / "acme.json"), provider=FakeProvider(tmp_path))
    assert later.journal.leftovers() == []  # this same run's: not a leftover (yet)


def test_recover_cleans_a_dead_runs_records(tmp_path, monkeypatch) -> None:
    crashed = DnsSolver(SETTINGS, str(tmp_path / "acme.json"), provider=FakeProvider(tmp_path))
    crashed.publish("a.test", "tok", "tok.thumb")
    crashed.publish("a.test", "tok2", "tok2.thumb")
    monkeypatch.setattr("acme_client.dns.journal._RUN", "the-next-run")
    provider = FakeProvider(tmp_path)
    DnsSolver(SETTINGS, str(tmp_path / "acme.json"), provider=provider).solver().recover()
    assert sorted(provider.calls) == sorted(
        [("cleanup", txt_value("tok.thumb")), ("cleanup", txt_value("tok2.thumb"))]
    )
    assert _pending(tmp_path) == []


def test_settle_waits_for_this_orders_records_only(tmp_path, monkeypatch) -> None:
    waited = []
    monkeypatch.setattr(solver_module, "wait_for_records", lambda records, settings: waited.append(records))
    dns = DnsSolver(SETTINGS, str(tmp_path / "acme.json"), provider=FakeProvider(tmp_path))
    dns.publish("a.test", "tok", "tok.thumb")
    dns.publish("b.test", "tok2", "tok2.thumb")
    dns.settle([("a.test", "tok")])
    assert [r.fqdn for r in waited[0]] == ["_acme-challenge.a.test."]


def test_settle_waits_for_every_value_of_a_wildcard_and_apex_order(tmp_path, monkeypatch) -> None:
    """Wildcard + apex: two values at one name. The server shows the second one late: settle polls on
    until it answers both (the first value alone is not the order propagated)."""
    import dns.message
    import dns.rrset

    from acme_client.dns import propagation

    dns_solver = DnsSolver(SETTINGS, str(tmp_path / "acme.json"), provider=FakeProvider(tmp_path))
    dns_solver.publish("a.test", "tok", "tok.thumb")  # the apex's authorization
    dns_solver.publish("a.test", "tok2", "tok2.thumb")  # the wildcard's: same name, another value
    first, second = txt_value("tok.thumb"), txt_value("tok2.thumb")
    txt_asked: list[int] = []

    def query(name, rdtype, among, timeout=5.0, recursion=True):
        response = dns.message.make_response(dns.message.make_query(name, rdtype))
        if rdtype == "NS":
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "NS", "ns1.a.test."))
            response.additional.append(dns.rrset.from_text("ns1.a.test.", 60, "IN", "A", "192.0.2.1"))
        elif rdtype == "TXT":
            txt_asked.append(1)
            values = [first, second] if len(txt_asked) > 3 else [first]  # 2nd: from the 3rd poll on
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "TXT", *(f'"{v}"' for v in values)))
        return response

    monkeypatch.setattr(solver_module.zones, "query", query)
    slept: list[float] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(
        solver_module,
        "wait_for_records",
        lambda records, settings: propagation.wait_for_records(records, settings, lambda: now[0], sleep),
    )
    dns_solver.settle([("a.test", "tok"), ("a.test", "tok2")])
    assert len(slept) == 2 and len(txt_asked) == 4  # polled until the late value was there, no more


def _holder(tmp_path):
    from acme_client.storage import AcmeStorage

    return SimpleNamespace(
        tokens={}, alpn_certs={}, storage=AcmeStorage(str(tmp_path / "acme.json")), name="le"
    )


@pytest.mark.parametrize(
    ("http", "tls", "expected"),
    [
        (None, False, ["dns-01"]),
        ("web", False, ["http-01", "dns-01"]),
        (None, True, ["tls-alpn-01", "dns-01"]),
        ("web", True, ["tls-alpn-01", "http-01", "dns-01"]),
    ],
)
def test_dns_solver_comes_last_as_in_lego(tmp_path, http, tls, expected) -> None:
    """lego prefers tls-alpn-01, then http-01, then dns-01 (tests/unit/test_challenge_choice.py)."""
    settings = ResolverSettings(http_entry_point=http, tls_challenge=tls, dns_challenge=SETTINGS)
    solvers = make_solvers(settings, _holder(tmp_path))
    assert [s.typ for s in solvers] == expected
    assert solvers[-1].settle is not None and solvers[-1].recover is not None


def test_without_dns_challenge_nothing_changes(tmp_path) -> None:
    assert [s.typ for s in make_solvers(ResolverSettings(), _holder(tmp_path))] == ["http-01"]


# -- the issuer: publish all, settle once, then answer -----------------------------------------------


def _authz(domain: str, token: bytes, wildcard: bool = False) -> messages.AuthorizationResource:
    challb = messages.ChallengeBody(
        chall=challenges.DNS01(token=token),
        uri=f"https://ca.test/chall/{token.hex()}",
        status=messages.STATUS_PENDING,
    )
    body = messages.Authorization(
        identifier=messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=domain),
        challenges=[challb],
        status=messages.STATUS_PENDING,
        wildcard=wildcard,
    )
    return messages.AuthorizationResource(body=body, uri=f"https://ca.test/authz/{token.hex()}")


def test_issue_publishes_every_answer_then_settles_once_then_answers(monkeypatch) -> None:
    events: list[tuple] = []
    authzs = [_authz("home.test", b"t" * 16, wildcard=True), _authz("home.test", b"u" * 16)]
    order = messages.OrderResource(
        body=messages.Order(), authorizations=authzs, uri="https://ca.test/order/1"
    )

    class FakeAcme:
        def answer_challenge(self, challb, response):
            events.append(("answer", challb.chall.encode("token")))

        def poll_and_finalize(self, order, until):
            events.append(("finalize",))
            return order.update(fullchain_pem="CERT")

    issuer = Issuer("https://ca.test/dir", None, None)
    issuer.registration_uri = "https://ca.test/acct/1"
    monkeypatch.setattr(issuer, "_acme", lambda: FakeAcme())
    monkeypatch.setattr(issuer, "_new_order", lambda acme, csr, replaces: order)

    def publish(domain, token, answer):
        events.append(("publish", domain, token, answer))

    solver = Solver(
        "dns-01",
        publish,
        lambda domain, token: events.append(("unpublish", token)),
        settle=lambda pairs: events.append(("settle", list(pairs))),
    )
    issued = issuer.issue(["*.home.test", "home.test"], [solver])
    assert issued.fullchain_pem == b"CERT"
    kinds = [e[0] for e in events]
    assert kinds == ["publish", "publish", "settle", "answer", "answer", "finalize", "unpublish", "unpublish"]
    t, u = (jose.b64encode(b"t" * 16).decode(), jose.b64encode(b"u" * 16).decode())
    assert events[2] == ("settle", [("home.test", t), ("home.test", u)])
    thumb = jose.b64encode(issuer._jwk.thumbprint()).decode()  # noqa: SLF001
    assert events[0][3] == f"{t}.{thumb}"  # the key authorization, not the TXT value


def test_a_failing_settle_withdraws_everything_and_answers_nothing(monkeypatch) -> None:
    events: list[str] = []
    order = messages.OrderResource(
        body=messages.Order(), authorizations=[_authz("a.test", b"t" * 16)], uri="https://ca.test/order/1"
    )
    issuer = Issuer("https://ca.test/dir", None, None)
    issuer.registration_uri = "https://ca.test/acct/1"
    acme = SimpleNamespace(answer_challenge=lambda *a: events.append("answer"))
    monkeypatch.setattr(issuer, "_acme", lambda: acme)
    monkeypatch.setattr(issuer, "_new_order", lambda acme, csr, replaces: order)

    def settle(pairs):
        raise DnsError("TXT _acme-challenge.a.test. not seen at ns1 (192.0.2.1:53)")

    solver = Solver(
        "dns-01", lambda *a: events.append("publish"), lambda *a: events.append("unpublish"), settle
    )
    with pytest.raises(AcmeError, match="not seen at ns1"):
        issuer.issue(["a.test"], [solver], deadline=5)
    assert events == ["publish", "unpublish"]


def test_the_cas_deadline_starts_after_a_settle_longer_than_it(monkeypatch) -> None:
    """delayBeforeChecks or a slow propagation is the solver's time: the CA still gets its whole deadline
    (certbot's poll_and_finalize never polls once ``until`` is past)."""
    import datetime as dt
    import time

    from acme import errors

    events: list[str] = []
    order = messages.OrderResource(
        body=messages.Order(), authorizations=[_authz("a.test", b"t" * 16)], uri="https://ca.test/order/1"
    )
    settled_at: list[dt.datetime] = []

    def settle(pairs):
        time.sleep(0.4)  # the propagation wait, longer than the CA's deadline below
        settled_at.append(dt.datetime.now())

    def poll_and_finalize(order, until):
        if dt.datetime.now() >= until:
            raise errors.TimeoutError()
        events.append("finalize")
        return order.update(fullchain_pem="CERT")

    issuer = Issuer("https://ca.test/dir", None, None)
    issuer.registration_uri = "https://ca.test/acct/1"
    acme = SimpleNamespace(
        answer_challenge=lambda *a: events.append("answer"), poll_and_finalize=poll_and_finalize
    )
    monkeypatch.setattr(issuer, "_acme", lambda: acme)
    monkeypatch.setattr(issuer, "_new_order", lambda acme, csr, replaces: order)
    solver = Solver("dns-01", lambda *a: None, lambda *a: events.append("unpublish"), settle)
    assert issuer.issue(["a.test"], [solver], deadline=0.3).fullchain_pem == b"CERT"
    assert events == ["answer", "finalize", "unpublish"]


def test_the_provider_is_built_at_first_use(tmp_path) -> None:
    """A resolver is made on the event loop (and in tests from bare settings): nothing built there."""
    bare = DnsChallengeSettings(ProviderConfig("rfc2136"))
    dns = DnsSolver(bare, str(tmp_path / "acme.json"))
    with pytest.raises(DnsConfigError, match="RFC2136_NAMESERVER"):
        dns.provider  # noqa: B018 - the build happens here
    assert make_solvers(ResolverSettings(dns_challenge=bare), _holder(tmp_path))[-1].typ == "dns-01"


def test_a_store_without_a_folder_journals_in_memory_and_says_so(tmp_path, caplog) -> None:
    holder = SimpleNamespace(
        tokens={},
        alpn_certs={},
        name="le",
        storage=SimpleNamespace(path="kubernetes://ns/secret", shares_files=False),
    )
    settings = ResolverSettings(dns_challenge=SETTINGS)
    make_solvers(settings, holder)
    assert "remembered in memory only" in caplog.text and "resolver le" in caplog.text
    dns = DnsSolver(SETTINGS, None, provider=FakeProvider(tmp_path))
    dns.publish("a.test", "tok", "tok.thumb")
    assert dns.journal.folder is None and _pending(tmp_path) == []


# -- recover, on every check pass ----------------------------------------------------------------------


def test_a_failed_cleanup_is_retried_by_the_next_recover(tmp_path, caplog) -> None:
    """The resolver runs recover on every check pass: a cleanup that failed after an order (a DNS API
    hiccup) is tried again while the proxy runs, not only at the next start."""
    store = str(tmp_path / "acme.json")
    provider = FakeProvider(tmp_path, fail_cleanup=True)
    dns = DnsSolver(SETTINGS, store, provider=provider)
    with OrderLock(store, "le", ["a.test"]):  # as the resolver orders
        dns.publish("a.test", "tok", "tok.thumb")
        dns.unpublish("a.test", "tok")  # fails: entry kept
        dns.recover()  # a pass while the order still holds its lock: left alone
    assert provider.calls.count(("cleanup", txt_value("tok.thumb"))) == 1
    dns.recover()  # next pass, still failing: kept, said again
    assert len(_pending(tmp_path)) == 1 and "tried again at the next check" in caplog.text
    provider.fail_cleanup = False
    dns.recover()  # the pass after
    assert provider.calls.count(("cleanup", txt_value("tok.thumb"))) == 3
    assert _pending(tmp_path) == []


def test_recover_with_nothing_journaled_builds_and_asks_nothing(tmp_path, monkeypatch) -> None:
    """Cheap enough for every pass: one listdir, no provider built (its build may need the network)."""
    listed: list[str] = []
    real_listdir = os.listdir
    monkeypatch.setattr(
        "acme_client.dns.journal.os.listdir", lambda path: listed.append(path) or real_listdir(path)
    )
    dns = DnsSolver(DnsChallengeSettings(ProviderConfig("rfc2136")), str(tmp_path / "acme.json"))
    dns.recover()
    dns.recover()
    assert listed == [str(tmp_path), str(tmp_path)]
    assert dns._provider is None  # noqa: SLF001 - nothing to clean: never built


def test_a_recover_while_one_runs_returns_at_once(tmp_path) -> None:
    store = str(tmp_path / "acme.json")
    with OrderLock(store, "le", ["a.test"]):
        DnsSolver(SETTINGS, store, provider=FakeProvider(tmp_path)).publish("a.test", "tok", "tok.thumb")
    provider = FakeProvider(tmp_path)
    dns = DnsSolver(SETTINGS, store, provider=provider)
    with dns._sweeping:  # noqa: SLF001 - another thread's sweep in progress
        dns.recover()
    assert provider.calls == []
    dns.recover()
    assert provider.calls == [("cleanup", txt_value("tok.thumb"))]
