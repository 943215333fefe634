"""The duckdns provider, read from lego's variables and run against a local stand-in of DuckDNS's update
API (tests/dns_standins.py): the query it sends, the one-value-per-domain limit, and its errors."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from acme_client.dns.base import DnsConfigError, DnsError, TxtRecord
from acme_client.dns.duckdns import DuckDnsProvider, duckdns_domain
from acme_client.dns.registry import read_provider
from tests.dns_standins import DuckDnsStandin, running
from tests.polling import wait_for

TOKEN = "a7c4d0ad-114e-40ef-ba1d-d217904a50f2"


def record(name: str, value: str) -> TxtRecord:
    return TxtRecord(
        name.removeprefix("*."), f"_acme-challenge.{name.removeprefix('*.')}.", "duckdns.org.", value
    )


WILDCARD = record("*.myhome.duckdns.org", "value-of-the-wildcard")
APEX = record("myhome.duckdns.org", "value-of-the-apex")
SUB = record("nas.myhome.duckdns.org", "value-of-nas")


@pytest.fixture
def duck() -> Iterator[DuckDnsStandin]:
    with running(DuckDnsStandin(token=TOKEN, domains={"myhome"})) as standin:
        assert isinstance(standin, DuckDnsStandin)
        yield standin


def provider(duck: DuckDnsStandin, token: str = TOKEN) -> DuckDnsProvider:
    config, warnings = read_provider("duckdns", {"DUCKDNS_TOKEN": token, "DUCKDNS_HTTP_TIMEOUT": "5"})
    assert warnings == []
    return DuckDnsProvider(config, base_url=duck.url)


def test_present_sets_the_domain_txt_and_cleanup_clears_it(duck: DuckDnsStandin) -> None:
    p = provider(duck)
    p.present(SUB)
    assert duck.txt == {"myhome": SUB.value}
    sent = duck.requests[0]
    assert (sent.method, sent.path) == ("GET", "/update")
    assert sent.query == {"domains": "myhome.duckdns.org", "token": TOKEN, "txt": SUB.value, "clear": "false"}
    p.cleanup(SUB)
    assert duck.txt == {"myhome": ""}
    assert duck.requests[1].query == {
        "domains": "myhome.duckdns.org",
        "token": TOKEN,
        "txt": "",
        "clear": "true",
    }


def test_the_domain_is_the_duckdns_one_whatever_the_depth() -> None:
    assert duckdns_domain("_acme-challenge.a.b.myhome.duckdns.org.") == "myhome.duckdns.org"
    assert duckdns_domain("_acme-challenge.myhome.duckdns.org.") == "myhome.duckdns.org"
    with pytest.raises(DnsError, match="duckdns: _acme-challenge.example.com. is not under a DuckDNS domain"):
        duckdns_domain("_acme-challenge.example.com.")


def test_a_second_value_at_one_domain_is_refused_naming_the_limit(duck: DuckDnsStandin) -> None:
    p = provider(duck)
    p.present(WILDCARD)
    with pytest.raises(DnsError) as caught:
        p.present(APEX)
    assert str(caught.value).startswith(
        "duckdns: myhome.duckdns.org holds one TXT value, and this order already presented another value"
    )
    assert duck.txt == {"myhome": WILDCARD.value}  # the first challenge's value was not overwritten
    assert len(duck.requests) == 1
    p.cleanup(APEX)  # the refused one's cleanup leaves the other's value alone
    assert duck.txt == {"myhome": WILDCARD.value} and len(duck.requests) == 1
    p.cleanup(WILDCARD)
    assert duck.txt == {"myhome": ""}
    p.present(APEX)  # the domain is free again
    assert duck.txt == {"myhome": APEX.value}


def test_another_order_under_the_domain_waits_for_the_first_one_s_cleanup(duck: DuckDnsStandin) -> None:
    """Two orders (two worker threads) under one DuckDNS domain take turns instead of overwriting."""
    p = provider(duck)
    p.present(SUB)
    other = record("tv.myhome.duckdns.org", "value-of-tv")
    done: list[BaseException | None] = []
    thread = threading.Thread(target=lambda: done.append(_outcome(p.present, other)))
    thread.start()
    asyncio.run(wait_for(lambda: p.waiting == 1))
    assert duck.txt == {"myhome": SUB.value} and len(duck.requests) == 1  # nothing overwritten
    p.cleanup(SUB)
    thread.join(10)
    assert done == [None]
    assert duck.txt == {"myhome": other.value}


def test_a_wait_that_outlasts_its_bound_is_refused_naming_it(duck: DuckDnsStandin) -> None:
    config, _ = read_provider("duckdns", {"DUCKDNS_TOKEN": TOKEN})
    p = DuckDnsProvider(config, base_url=duck.url, wait=0.2)
    p.present(SUB)
    done: list[BaseException | None] = []
    thread = threading.Thread(
        target=lambda: done.append(_outcome(p.present, record("tv.myhome.duckdns.org", "v")))
    )
    thread.start()
    thread.join(10)
    assert isinstance(done[0], DnsError)
    assert (
        "another order's challenge held it for 0.2 s: tv.myhome.duckdns.org cannot be validated now"
        in str(done[0])
    )
    assert duck.txt == {"myhome": SUB.value}


def _outcome(call, *args) -> BaseException | None:  # type: ignore[no-untyped-def]
    try:
        call(*args)
    except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
        return exc
    return None


def test_presenting_the_same_value_again_is_fine(duck: DuckDnsStandin) -> None:
    p = provider(duck)
    p.present(SUB)
    p.present(SUB)
    assert duck.txt == {"myhome": SUB.value}


def test_cleanup_after_a_restart_clears_the_domain(duck: DuckDnsStandin) -> None:
    provider(duck).present(SUB)
    provider(duck).cleanup(SUB)  # a fresh provider (the journal's cleanup after a crash)
    assert duck.txt == {"myhome": ""}


def test_ko_is_a_dns_error_that_never_shows_the_token(duck: DuckDnsStandin) -> None:
    p = provider(duck, token="wrong-token-0000")
    with pytest.raises(DnsError) as caught:
        p.present(SUB)
    message = str(caught.value)
    assert message.startswith("duckdns: GET /update answered 200 OK: KO")
    assert "myhome.duckdns.org" in message
    assert "wrong-token-0000" not in message
    with pytest.raises(DnsError, match="KO"):  # a failed present holds nothing: DuckDNS's refusal again,
        p.present(TxtRecord(SUB.domain, SUB.fqdn, SUB.zone, "another"))  # not the one-value limit


def test_a_domain_the_token_does_not_own_is_ko(duck: DuckDnsStandin) -> None:
    with pytest.raises(DnsError, match="KO .*yourhome.duckdns.org"):
        provider(duck).present(record("yourhome.duckdns.org", "v"))


def test_an_http_error_and_an_unreachable_server_never_show_the_token(duck: DuckDnsStandin) -> None:
    p = provider(duck)
    duck.fail_with = 503
    with pytest.raises(DnsError, match="^duckdns: GET /update answered 503") as caught:
        p.present(SUB)
    assert TOKEN not in str(caught.value)
    config, _ = read_provider("duckdns", {"DUCKDNS_TOKEN": TOKEN})
    with pytest.raises(DnsError) as caught:
        DuckDnsProvider(config, base_url="http://127.0.0.1:9").present(SUB)
    assert str(caught.value) == (
        "duckdns: GET /update at 127.0.0.1:9 could not be reached: "
        "Failed to establish a new connection: [Errno 111] Connection refused"
    )


def test_a_missing_token_is_refused_naming_it() -> None:
    with pytest.raises(DnsConfigError) as caught:
        read_provider("duckdns", {"DUCKDNS_PROPAGATION_TIMEOUT": "120"})
    assert caught.value.variable == "DUCKDNS_TOKEN"


def test_variables_lego_has_and_dockroute_does_not_act_on_are_warned() -> None:
    config, warnings = read_provider(
        "duckdns", {"DUCKDNS_TOKEN": TOKEN, "DUCKDNS_SEQUENCE_INTERVAL": "60", "DUCKDNS_TTL": "60"}
    )
    assert config.get("DUCKDNS_TOKEN") == TOKEN
    assert [w.split(": ")[1].split(" ")[0] for w in warnings] == ["DUCKDNS_SEQUENCE_INTERVAL", "DUCKDNS_TTL"]
