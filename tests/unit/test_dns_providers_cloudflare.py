"""The cloudflare provider, read from lego's variables and run against a local stand-in of Cloudflare's
API v4 (tests/dns_standins.py): the requests it sends (auth headers, payload, ids) and the errors it
names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from acme_client.dns.base import DnsConfigError, DnsError, TxtRecord
from acme_client.dns.cloudflare import CloudflareProvider
from acme_client.dns.registry import build_provider, read_provider
from tests.dns_standins import RECORD, CloudflareStandin, running

ZONE_ID = "023e105f4ecef8ad9ca31a8372d0c353"
TOKEN, ZONE_TOKEN, EMAIL, KEY = "dns-token-1", "zone-token-2", "me@example.com", "global-key-3"
APEX = TxtRecord(RECORD.domain, RECORD.fqdn, RECORD.zone, "second-value-for-the-apex")
NAME = "_acme-challenge.home.example.com"


@pytest.fixture
def cf() -> Iterator[CloudflareStandin]:
    standin = CloudflareStandin(
        zones={"example.com": ZONE_ID, "other.org": "ffff"},
        dns_tokens={TOKEN},
        zone_tokens={ZONE_TOKEN},
        keys={EMAIL: KEY},
    )
    with running(standin):
        yield standin


def provider(cf: CloudflareStandin, **env: str) -> CloudflareProvider:
    config, warnings = read_provider("cloudflare", {"CLOUDFLARE_BASE_URL": f"{cf.url}/client/v4", **env})
    assert warnings == []
    built = build_provider(config)
    assert isinstance(built, CloudflareProvider)
    return built


def test_present_and_cleanup_with_a_token(cf: CloudflareStandin) -> None:
    p = provider(cf, CF_DNS_API_TOKEN=TOKEN, CLOUDFLARE_TTL="300")
    p.present(RECORD)
    assert cf.txt(NAME) == [f'"{RECORD.value}"']  # quoted: Cloudflare wants RFC 1035 character strings
    zones, create = cf.requests
    assert (zones.method, zones.path, zones.query["name"]) == ("GET", "/client/v4/zones", "example.com")
    assert create.method == "POST" and create.path == f"/client/v4/zones/{ZONE_ID}/dns_records"
    assert create.json() == {"type": "TXT", "name": NAME, "content": f'"{RECORD.value}"', "ttl": 300}
    assert create.headers["content-type"] == "application/json"
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in cf.requests)
    record_id = cf.records[ZONE_ID][0]["id"]

    p.cleanup(RECORD)
    delete = cf.requests[-1]
    assert (delete.method, delete.path) == ("DELETE", f"/client/v4/zones/{ZONE_ID}/dns_records/{record_id}")
    assert cf.txt(NAME) == []
    assert [r.method for r in cf.requests] == ["GET", "POST", "DELETE"]  # the zone id is asked once


def test_a_wildcard_and_its_apex_hold_two_values_and_cleanup_removes_only_its_own(
    cf: CloudflareStandin,
) -> None:
    p = provider(cf, CF_DNS_API_TOKEN=TOKEN)
    p.present(RECORD)
    p.present(APEX)
    assert sorted(cf.txt(NAME)) == sorted([f'"{RECORD.value}"', f'"{APEX.value}"'])
    p.cleanup(RECORD)
    assert cf.txt(NAME) == [f'"{APEX.value}"']
    p.cleanup(RECORD)  # already gone: success, nothing else touched
    assert cf.txt(NAME) == [f'"{APEX.value}"']


def test_the_zone_token_is_used_for_the_zone_lookup_only(cf: CloudflareStandin) -> None:
    p = provider(cf, CLOUDFLARE_DNS_API_TOKEN=TOKEN, CLOUDFLARE_ZONE_API_TOKEN=ZONE_TOKEN)
    p.present(RECORD)
    zones, create = cf.requests
    assert zones.headers["authorization"] == f"Bearer {ZONE_TOKEN}"
    assert create.headers["authorization"] == f"Bearer {TOKEN}"


def test_email_and_global_key_are_sent_as_x_auth_headers(cf: CloudflareStandin) -> None:
    p = provider(cf, CLOUDFLARE_EMAIL=EMAIL, CLOUDFLARE_API_KEY=KEY)
    p.present(RECORD)
    for request in cf.requests:
        assert (request.headers["x-auth-email"], request.headers["x-auth-key"]) == (EMAIL, KEY)
        assert "authorization" not in request.headers


def test_with_both_credentials_the_email_and_key_win_as_in_lego_and_a_warning_names_both(
    cf: CloudflareStandin,
) -> None:
    """lego's NewDNSProvider tries CF_API_EMAIL + CF_API_KEY first, the tokens only when those are
    missing; a Traefik .env carrying both gets the same credentials here, and the start log says so."""
    env = {
        "CLOUDFLARE_BASE_URL": f"{cf.url}/client/v4",
        "CF_DNS_API_TOKEN": TOKEN,
        "CF_ZONE_API_TOKEN": ZONE_TOKEN,
        "CF_API_EMAIL": EMAIL,
        "CF_API_KEY": KEY,
    }
    config, warnings = read_provider("cloudflare", env)
    assert warnings == [
        "DNS provider cloudflare: both CF_API_EMAIL + CF_API_KEY and CF_DNS_API_TOKEN + CF_ZONE_API_TOKEN "
        "are set; the email and key are used, as lego (Traefik) does, and CF_DNS_API_TOKEN + "
        "CF_ZONE_API_TOKEN ignored; unset the ones you do not mean"
    ]
    assert not any(secret in warnings[0] for secret in (TOKEN, ZONE_TOKEN, EMAIL, KEY))
    build_provider(config).present(RECORD)
    for request in cf.requests:
        assert (request.headers["x-auth-email"], request.headers["x-auth-key"]) == (EMAIL, KEY)
        assert "authorization" not in request.headers
    _, alone = read_provider("cloudflare", {"CF_DNS_API_TOKEN": TOKEN, "CF_API_EMAIL": EMAIL})
    assert alone == []  # an email without its key is no second credential: the token is used


def test_cleanup_after_a_restart_finds_the_record_by_name_and_value(cf: CloudflareStandin) -> None:
    provider(cf, CF_DNS_API_TOKEN=TOKEN).present(RECORD)
    provider(cf, CF_DNS_API_TOKEN=TOKEN).present(APEX)
    fresh = provider(cf, CF_DNS_API_TOKEN=TOKEN)  # knows no record id: the journal's cleanup after a crash
    fresh.cleanup(RECORD)
    assert cf.txt(NAME) == [f'"{APEX.value}"']
    listing = cf.requests[-2]
    assert listing.method == "GET" and listing.query["type"] == "TXT" and listing.query["name"] == NAME


def test_presenting_again_after_a_restart_adopts_the_identical_record(cf: CloudflareStandin) -> None:
    provider(cf, CF_DNS_API_TOKEN=TOKEN).present(RECORD)
    again = provider(cf, CF_DNS_API_TOKEN=TOKEN)
    again.present(RECORD)  # Cloudflare answers 81058 "An identical record already exists."
    assert cf.txt(NAME) == [f'"{RECORD.value}"']
    again.cleanup(RECORD)
    assert cf.txt(NAME) == []


def test_a_wrong_token_is_a_dns_error_naming_provider_call_and_status(cf: CloudflareStandin) -> None:
    p = provider(cf, CF_DNS_API_TOKEN="not-a-token")
    with pytest.raises(DnsError) as caught:
        p.present(RECORD)
    message = str(caught.value)
    assert message.startswith("cloudflare: GET /zones?name=example.com answered 401")
    assert "10000: Authentication error" in message
    assert "not-a-token" not in message


def test_a_zone_read_only_token_for_records_is_a_403(cf: CloudflareStandin) -> None:
    p = provider(cf, CF_DNS_API_TOKEN=ZONE_TOKEN)
    with pytest.raises(DnsError, match=r"^cloudflare: POST /zones/\{id\}/dns_records answered 403 .*10000"):
        p.present(RECORD)


def test_an_unknown_zone_is_named(cf: CloudflareStandin) -> None:
    p = provider(cf, CF_DNS_API_TOKEN=TOKEN)
    elsewhere = TxtRecord("x.nowhere.net", "_acme-challenge.x.nowhere.net.", "nowhere.net.", "v")
    with pytest.raises(
        DnsError, match="cloudflare: GET /zones.name=nowhere.net answered no zone: nowhere.net"
    ):
        p.present(elsewhere)


def test_a_server_error_and_an_unreachable_api_are_dns_errors(cf: CloudflareStandin) -> None:
    p = provider(cf, CF_DNS_API_TOKEN=TOKEN)
    cf.fail_with = 502
    with pytest.raises(
        DnsError, match="cloudflare: GET /zones.name=example.com answered 502 .*stand-in failure"
    ):
        p.present(RECORD)
    config, _ = read_provider(
        "cloudflare", {"CF_DNS_API_TOKEN": TOKEN, "CLOUDFLARE_BASE_URL": "http://127.0.0.1:9"}
    )
    with pytest.raises(
        DnsError, match=r"cloudflare: GET /zones\?name=example.com at 127.0.0.1:9 could not be reached"
    ):
        build_provider(config).present(RECORD)


def test_missing_credentials_are_refused_naming_the_variable() -> None:
    with pytest.raises(DnsConfigError) as caught:
        read_provider("cloudflare", {"CF_API_EMAIL": EMAIL})
    assert caught.value.variable == "CF_API_KEY"
    with pytest.raises(DnsConfigError) as caught:
        read_provider("cloudflare", {})
    assert caught.value.variable == "CF_DNS_API_TOKEN"


def test_a_ttl_below_cloudflare_minimum_is_refused_at_start() -> None:
    with pytest.raises(DnsConfigError) as caught:
        read_provider("cloudflare", {"CF_DNS_API_TOKEN": TOKEN, "CLOUDFLARE_TTL": "60"})
    assert caught.value.variable == "CLOUDFLARE_TTL"


def test_file_variants_and_lego_fallback_names_are_read(tmp_path, cf: CloudflareStandin) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "token").write_text(TOKEN + "\n")
    config, warnings = read_provider(
        "cloudflare",
        {
            "CLOUDFLARE_DNS_API_TOKEN_FILE": str(tmp_path / "token"),
            "CF_HTTP_TIMEOUT": "7",
            "CF_TTL": "600",
            "CF_SOMETHING_ELSE": "x",
        },
    )
    assert config.get("CF_DNS_API_TOKEN") == TOKEN and config.ttl == 600
    assert config.get("CLOUDFLARE_HTTP_TIMEOUT") == "7"
    assert warnings == [
        "DNS provider cloudflare: CF_SOMETHING_ELSE is set but not read by dockroute; ignored"
    ]
    assert TOKEN not in repr(config)


def test_the_propagation_timeout_defaults_to_lego_s_120_s_for_cloudflare() -> None:
    config, _ = read_provider("cloudflare", {"CF_DNS_API_TOKEN": TOKEN})
    assert config.propagation_timeout == 120.0
    config, _ = read_provider("cloudflare", {"CF_DNS_API_TOKEN": TOKEN, "CF_PROPAGATION_TIMEOUT": "30"})
    assert config.propagation_timeout == 30.0
    duck, _ = read_provider("duckdns", {"DUCKDNS_TOKEN": "t"})
    assert duck.propagation_timeout == 60.0  # the others keep lego's common 60 s
