"""A DNS provider's environment is read as lego reads it: names, aliases, ``_FILE`` variants, durations."""

from __future__ import annotations

import dataclasses
import sys

import pytest

from acme_client.dns import registry
from acme_client.dns.base import DnsConfigError, ProviderSpec
from acme_client.dns.credentials import read_config, seconds

SPEC = ProviderSpec(
    name="fake",
    required=(("FAKE_DNS_API_TOKEN",), ("FAKE_API_EMAIL", "FAKE_API_KEY")),
    optional=("FAKE_TTL", "FAKE_PROPAGATION_TIMEOUT", "FAKE_POLLING_INTERVAL", "FAKE_HTTP_TIMEOUT"),
    aliases={"FAKE_OLD_TOKEN": "FAKE_DNS_API_TOKEN"},
    prefixes=("FAKE_",),
)


@pytest.mark.parametrize("var", ["FAKE_PROPAGATION_TIMEOUT", "FAKE_POLLING_INTERVAL", "FAKE_HTTP_TIMEOUT"])
@pytest.mark.parametrize("text", ["2m", "90s", "1m30s", "500ms", "1.5", "-5", "ten"])
def test_durations_are_whole_seconds_as_lego_reads_them(var: str, text: str) -> None:
    """lego reads these with strconv.Atoi (env.GetOrDefaultSecond): a Go duration is not one; lego would
    silently fall back to its default, dockroute stops the start naming the variable."""
    with pytest.raises(DnsConfigError) as caught:
        read_config(SPEC, {"FAKE_DNS_API_TOKEN": "t", var: text})
    assert caught.value.variable == var
    assert str(caught.value).startswith(f"{var}={text!r} is not a whole number of seconds: lego takes whole")


@pytest.mark.parametrize("var", ["FAKE_PROPAGATION_TIMEOUT", "FAKE_POLLING_INTERVAL", "FAKE_HTTP_TIMEOUT"])
def test_a_zero_interval_or_timeout_is_refused_naming_the_variable(var: str) -> None:
    """An interval of 0 would query the authoritative servers back to back; a timeout of 0 fails every
    order after one check."""
    with pytest.raises(DnsConfigError) as caught:
        read_config(SPEC, {"FAKE_DNS_API_TOKEN": "t", var: "0"})
    assert caught.value.variable == var
    assert f"{var} must be more than 0 seconds" in str(caught.value)


def test_the_file_variant_of_a_duration_is_named_when_malformed(tmp_path) -> None:
    (tmp_path / "timeout").write_text("2m\n")
    with pytest.raises(DnsConfigError) as caught:
        read_config(
            SPEC, {"FAKE_DNS_API_TOKEN": "t", "FAKE_PROPAGATION_TIMEOUT_FILE": str(tmp_path / "timeout")}
        )
    assert caught.value.variable == "FAKE_PROPAGATION_TIMEOUT_FILE"


def test_primary_name_and_common_knobs() -> None:
    config, warnings = read_config(
        SPEC,
        {
            "FAKE_DNS_API_TOKEN": " tok ",
            "FAKE_TTL": "300",
            "FAKE_PROPAGATION_TIMEOUT": "120",
            "FAKE_POLLING_INTERVAL": "5",
            "FAKE_HTTP_TIMEOUT": " 90 ",
            "PATH": "/bin",
        },
    )
    assert config.get("FAKE_DNS_API_TOKEN") == "tok"
    assert (config.ttl, config.propagation_timeout, config.polling_interval) == (300, 120.0, 5.0)
    assert seconds(config, "FAKE_HTTP_TIMEOUT", 30) == 90.0
    assert seconds(config, "FAKE_OTHER_TIMEOUT", 30) == 30
    assert warnings == []
    assert "tok" not in repr(config)


def test_defaults_when_the_knobs_are_unset() -> None:
    config, _ = read_config(SPEC, {"FAKE_API_EMAIL": "a@b", "FAKE_API_KEY": "k"})
    assert (config.ttl, config.propagation_timeout, config.polling_interval) == (120, 60.0, 2.0)
    assert dict(config.values) == {"FAKE_API_EMAIL": "a@b", "FAKE_API_KEY": "k"}


def test_file_variant_is_read_and_stripped(tmp_path) -> None:
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    config, warnings = read_config(SPEC, {"FAKE_DNS_API_TOKEN_FILE": str(secret)})
    assert config.get("FAKE_DNS_API_TOKEN") == "from-file"
    assert warnings == []


def test_variable_wins_over_its_file_and_empty_counts_as_unset(tmp_path) -> None:
    secret = tmp_path / "token"
    secret.write_text("from-file")
    env = {"FAKE_DNS_API_TOKEN": "direct", "FAKE_DNS_API_TOKEN_FILE": str(secret)}
    assert read_config(SPEC, env)[0].get("FAKE_DNS_API_TOKEN") == "direct"
    env["FAKE_DNS_API_TOKEN"] = ""
    assert read_config(SPEC, env)[0].get("FAKE_DNS_API_TOKEN") == "from-file"


def test_unreadable_file_names_the_file_variable(tmp_path) -> None:
    with pytest.raises(DnsConfigError) as caught:
        read_config(SPEC, {"FAKE_DNS_API_TOKEN_FILE": str(tmp_path / "absent")})
    assert caught.value.variable == "FAKE_DNS_API_TOKEN_FILE"
    assert "absent" in str(caught.value)


def test_alias_fills_the_primary_name() -> None:
    config, warnings = read_config(SPEC, {"FAKE_OLD_TOKEN": "old"})
    assert config.get("FAKE_DNS_API_TOKEN") == "old"
    assert warnings == []


def test_missing_credentials_name_the_variable_and_the_alternatives() -> None:
    with pytest.raises(DnsConfigError) as caught:
        read_config(SPEC, {})
    assert caught.value.variable == "FAKE_DNS_API_TOKEN"
    assert "set FAKE_DNS_API_TOKEN (or FAKE_API_EMAIL and FAKE_API_KEY)" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_partly_set_group_names_its_missing_variable() -> None:
    with pytest.raises(DnsConfigError) as caught:
        read_config(SPEC, {"FAKE_API_EMAIL": "a@b"})
    assert caught.value.variable == "FAKE_API_KEY"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("FAKE_TTL", "0"),
        ("FAKE_TTL", "2m"),
        ("FAKE_PROPAGATION_TIMEOUT", "soon"),
        ("FAKE_HTTP_TIMEOUT", "-1"),
    ],
)
def test_malformed_knobs_name_the_variable(var: str, value: str) -> None:
    with pytest.raises(DnsConfigError) as caught:
        read_config(SPEC, {"FAKE_DNS_API_TOKEN": "t", var: value})
    assert caught.value.variable == var


def test_unread_variables_under_the_prefix_are_warned() -> None:
    _, warnings = read_config(SPEC, {"FAKE_DNS_API_TOKEN": "t", "FAKE_ZONE_ID": "z", "OTHER_X": "1"})
    assert len(warnings) == 1
    assert "FAKE_ZONE_ID" in warnings[0] and "fake" in warnings[0]


def test_registry_names_the_supported_providers_for_an_unknown_one() -> None:
    with pytest.raises(DnsConfigError) as caught:
        registry.read_provider("route53", {})
    assert caught.value.variable is None
    assert "route53" in str(caught.value) and "rfc2136" in str(caught.value)


def test_registry_builds_once_to_check_the_values(monkeypatch) -> None:
    built = []

    def build(config):
        built.append(config)
        raise DnsConfigError("FAKE_DNS_API_TOKEN: malformed", "FAKE_DNS_API_TOKEN")

    monkeypatch.setitem(registry.PROVIDERS, "fake", __name__)
    monkeypatch.setattr(sys.modules[__name__], "SPEC", dataclasses.replace(SPEC, build=build))
    with pytest.raises(DnsConfigError) as caught:
        registry.read_provider(" Fake ", {"FAKE_DNS_API_TOKEN": "t"})
    assert caught.value.variable == "FAKE_DNS_API_TOKEN"
    assert len(built) == 1


def test_a_providers_own_defaults_fill_unset_variables_only() -> None:
    spec = dataclasses.replace(SPEC, defaults={"FAKE_PROPAGATION_TIMEOUT": "120", "FAKE_TTL": "300"})
    config, _ = read_config(spec, {"FAKE_DNS_API_TOKEN": "t", "FAKE_TTL": "60"})
    assert (config.ttl, config.propagation_timeout) == (60, 120.0)
    assert config.get("FAKE_PROPAGATION_TIMEOUT") == "120"


def test_a_file_over_64_kib_is_no_credential(tmp_path) -> None:
    """A wrong path (a log, a binary) is refused naming the variable, not read whole as a token."""
    exact, big = tmp_path / "exact", tmp_path / "big"
    exact.write_text("t" * 64 * 1024)
    big.write_text("t" * (64 * 1024 + 1))
    config, _ = read_config(SPEC, {"FAKE_DNS_API_TOKEN_FILE": str(exact)})
    assert len(config.get("FAKE_DNS_API_TOKEN")) == 64 * 1024
    with pytest.raises(DnsConfigError, match="is over 65536 bytes, not a credential") as caught:
        read_config(SPEC, {"FAKE_DNS_API_TOKEN_FILE": str(big)})
    assert caught.value.variable == "FAKE_DNS_API_TOKEN_FILE"
