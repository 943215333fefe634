"""Static configuration: ``certificatesResolvers.<n>.acme.dnsChallenge`` read into DnsChallengeSettings
(Traefik's keys from a file, flags and the environment alike; the provider's variables checked at start)."""

from __future__ import annotations

import pytest

from acme_client.dns import registry
from acme_client.dns.base import DnsChallengeSettings, DnsConfigError, ProviderConfig
from acme_client.settings import ResolverSettings
from dockroute.static import StaticConfig, StaticConfigError, load_static

LE = "--certificatesresolvers.le.acme"
EMAIL = f"{LE}.email=a@example.com"
DNS = f"{LE}.dnschallenge"
PATH = "certificatesResolvers.le.acme.dnsChallenge"
CREDENTIALS = {"CF_DNS_API_TOKEN": "secret-token"}


class FakeRegistry:
    """``registry.read_provider`` as documented: (config, warnings) or DnsConfigError naming the
    variable. Records what it was asked, so a test sees the environment reach it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.warnings: list[str] = []

    def __call__(self, name: str, environ):  # type: ignore[no-untyped-def]
        self.calls.append((name, dict(environ)))
        if "CF_DNS_API_TOKEN" not in environ:
            raise DnsConfigError(
                f"{name}: set CF_DNS_API_TOKEN (or CF_API_EMAIL and CF_API_KEY)", "CF_DNS_API_TOKEN"
            )
        return ProviderConfig(name, {"CF_DNS_API_TOKEN": environ["CF_DNS_API_TOKEN"]}), list(self.warnings)


@pytest.fixture
def providers(monkeypatch) -> FakeRegistry:
    fake = FakeRegistry()
    monkeypatch.setattr(registry, "read_provider", fake)
    return fake


def load(argv=(), env=None, config_file=None) -> StaticConfig:
    return load_static(list(argv), env if env is not None else dict(CREDENTIALS), config_file, search_dirs=())


def error(argv=(), env=None, config_file=None) -> StaticConfigError:
    with pytest.raises(StaticConfigError) as info:
        load(argv, env, config_file)
    assert "\n" not in str(info.value)
    return info.value


def dns(*argv: str, env=None) -> DnsChallengeSettings:
    settings = load(argv, env).resolvers["le"]
    assert isinstance(settings, ResolverSettings) and settings.dns_challenge is not None
    return settings.dns_challenge


# -- every key acted on, from every source -------------------------------------------------------------


def test_every_key_from_a_traefik_file(tmp_path, providers):
    f = tmp_path / "traefik.yml"
    f.write_text(
        "certificatesResolvers:\n"
        "  le:\n"
        "    acme:\n"
        "      email: ops@example.com\n"
        "      storage: /data/acme.json\n"
        "      dnsChallenge:\n"
        "        provider: cloudflare\n"
        "        resolvers: ['1.1.1.1:53', '8.8.8.8', '[2606:4700:4700::1111]:5353']\n"
        "        propagation:\n"
        "          delayBeforeChecks: 30s\n"
        "          disableChecks: false\n"
        "          disableANSChecks: true\n"
        "          requireAllRNS: true\n"
    )
    s = load(config_file=str(f)).resolvers["le"]
    assert isinstance(s, ResolverSettings)
    assert s.http_entry_point is None and not s.tls_challenge  # DNS-01 alone is a challenge
    assert s.dns_challenge == DnsChallengeSettings(
        provider=ProviderConfig("cloudflare", {"CF_DNS_API_TOKEN": "secret-token"}),
        resolvers=("1.1.1.1:53", "8.8.8.8:53", "[2606:4700:4700::1111]:5353"),
        delay_before_checks=30.0,
        disable_checks=False,
        disable_ans_checks=True,
        require_all_rns=True,
    )
    assert providers.calls == [("cloudflare", CREDENTIALS)]  # the start's environment, read once
    assert "secret-token" not in repr(s)


def test_flags_and_environment_spell_the_same_keys(providers):
    flags = dns(
        EMAIL,
        f"{DNS}.provider=cloudflare",
        f"{DNS}.resolvers=1.1.1.1:53,9.9.9.9",
        f"{DNS}.propagation.delaybeforechecks=2m",
        f"{DNS}.propagation.disablechecks=true",
        f"{DNS}.propagation.disableanschecks=true",
        f"{DNS}.propagation.requireallrns=true",
    )
    prefix = "TRAEFIK_CERTIFICATESRESOLVERS_LE_ACME_"
    env = {
        **CREDENTIALS,
        f"{prefix}EMAIL": "a@example.com",
        f"{prefix}DNSCHALLENGE_PROVIDER": "cloudflare",
        f"{prefix}DNSCHALLENGE_RESOLVERS_0": "1.1.1.1:53",
        f"{prefix}DNSCHALLENGE_RESOLVERS_1": "9.9.9.9",
        f"{prefix}DNSCHALLENGE_PROPAGATION_DELAYBEFORECHECKS": "120",
        f"{prefix}DNSCHALLENGE_PROPAGATION_DISABLECHECKS": "true",
        "DOCKROUTE_CERTIFICATESRESOLVERS_LE_ACME_DNSCHALLENGE_PROPAGATION_DISABLEANSCHECKS": "1",
        f"{prefix}DNSCHALLENGE_PROPAGATION_REQUIREALLRNS": "T",
    }
    from_env = dns(env=env)
    assert flags == from_env
    assert (flags.resolvers, flags.delay_before_checks) == (("1.1.1.1:53", "9.9.9.9:53"), 120.0)
    assert flags.disable_checks and flags.disable_ans_checks and flags.require_all_rns
    assert [name for name, _ in providers.calls] == ["cloudflare", "cloudflare"]
    # the provider name in any case, as the key itself
    assert dns(EMAIL, f"{DNS}.provider=Cloudflare").provider.provider == "cloudflare"


def test_defaults(providers):
    d = dns(EMAIL, f"{DNS}.provider=cloudflare")
    assert (d.resolvers, d.delay_before_checks, d.disable_checks) == ((), 0.0, False)
    assert (d.disable_ans_checks, d.require_all_rns) == (False, False)
    # beside another challenge: both are kept (the solvers decide the order)
    s = load([EMAIL, f"{DNS}.provider=cloudflare", f"{LE}.tlschallenge"]).resolvers["le"]
    assert isinstance(s, ResolverSettings) and s.tls_challenge and s.dns_challenge is not None
    # switched off: no DNS-01, and then no challenge at all
    s = load([EMAIL, f"{DNS}.provider=cloudflare", f"{DNS}=false", f"{LE}.tlschallenge"]).resolvers["le"]
    assert isinstance(s, ResolverSettings) and s.dns_challenge is None
    e = error([EMAIL, f"{DNS}.provider=cloudflare", f"{DNS}=false"])
    assert e.key == "certificatesResolvers.le.acme" and "ACME challenge not specified" in str(e)
    assert "dnsChallenge.provider" in str(e) and "not supported" not in str(e)


# -- Traefik's older spellings -------------------------------------------------------------------------


def test_deprecated_keys_act_with_a_warning(providers):
    cfg = load(
        [EMAIL, f"{DNS}.provider=cloudflare", f"{DNS}.delaybeforecheck=45s", f"{DNS}.disablepropagationcheck"]
    )
    d = cfg.resolvers["le"].dns_challenge  # type: ignore[union-attr]
    assert (d.delay_before_checks, d.disable_checks) == (45.0, True)
    assert len(cfg.warnings) == 2
    assert (
        f"{PATH}.delayBeforeCheck is deprecated, use {PATH}.propagation.delayBeforeChecks" in cfg.warnings[0]
    )
    assert f"{PATH}.disablePropagationCheck is deprecated" in cfg.warnings[1]
    assert cfg.ignored == ()  # they act: not among the keys without effect
    # both spellings with the same value: the same, still warned
    same = load(
        [
            EMAIL,
            f"{DNS}.provider=cloudflare",
            f"{DNS}.delaybeforecheck=45s",
            f"{DNS}.propagation.delaybeforechecks=45",
        ]
    )
    assert same.resolvers["le"].dns_challenge.delay_before_checks == 45.0  # type: ignore[union-attr]
    # the new spelling alone: no warning
    assert load([EMAIL, f"{DNS}.provider=cloudflare", f"{DNS}.propagation.disablechecks=true"]).warnings == ()


def test_old_and_new_spellings_that_disagree_are_refused_naming_both(providers):
    e = error(
        [
            EMAIL,
            f"{DNS}.provider=cloudflare",
            f"{DNS}.delaybeforecheck=45s",
            f"{DNS}.propagation.delaybeforechecks=10s",
        ]
    )
    assert e.key == f"{PATH}.propagation.delayBeforeChecks"
    assert f"{PATH}.delayBeforeCheck" in str(e) and "'45s'" in str(e) and "'10s'" in str(e)
    assert "--certificatesresolvers.le.acme.dnschallenge.delaybeforecheck" in str(e)
    e = error(
        [
            EMAIL,
            f"{DNS}.provider=cloudflare",
            f"{DNS}.disablepropagationcheck=true",
            f"{DNS}.propagation.disablechecks=false",
        ]
    )
    assert e.key == f"{PATH}.propagation.disableChecks" and f"{PATH}.disablePropagationCheck" in str(e)


# -- the provider's environment --------------------------------------------------------------------------


def test_a_missing_credential_stops_the_start_naming_the_variable(providers):
    e = error([EMAIL, f"{DNS}.provider=cloudflare"], env={})
    assert e.key == f"{PATH}.provider"
    assert str(e).startswith(
        f"{PATH}.provider: cloudflare: set CF_DNS_API_TOKEN (or CF_API_EMAIL and CF_API_KEY)"
    )
    assert "--certificatesresolvers.le.acme.dnschallenge.provider" in str(e)  # where the provider was named


def test_the_providers_warnings_reach_the_start_log(providers):
    providers.warnings = ["CF_DNS_API_TOKNE is set but cloudflare does not read it"]
    cfg = load([EMAIL, f"{DNS}.provider=cloudflare"])
    assert cfg.warnings == (f"{PATH}.provider: CF_DNS_API_TOKNE is set but cloudflare does not read it",)


def test_a_provider_is_required(providers):
    for argv in ([EMAIL, DNS], [EMAIL, f"{DNS}.propagation.disablechecks=true"]):
        e = error(argv)
        assert e.key == f"{PATH}.provider" and "required" in str(e) and "cloudflare" in str(e)
    assert providers.calls == []


def test_bad_values_are_refused_by_key(providers):
    assert error([EMAIL, f"{DNS}.provider=cloudflare", f"{DNS}.propagation.delaybeforechecks=soon"]).key == (
        f"{PATH}.propagation.delayBeforeChecks"
    )
    e = error([EMAIL, f"{DNS}.provider=cloudflare", f"{DNS}.propagation.requireallrns=perhaps"])
    assert e.key == f"{PATH}.propagation.requireAllRNS"
    e = error([EMAIL, f"{DNS}.provider=cloudflare", f"{DNS}.resolvers=1.1.1.1,dns.example.com:99999"])
    assert e.key == f"{PATH}.resolvers[1]" and "'dns.example.com:99999'" in str(e)
    e = error([EMAIL, f"{DNS}.provider=cloudflare", f"{DNS}.propagation.disablchecks=true"])
    assert "did you mean 'disableChecks'" in str(e)


@pytest.mark.parametrize(
    ("entry", "address"),
    [
        ("1.1.1.1", "1.1.1.1:53"),
        (" 1.1.1.1:5353 ", "1.1.1.1:5353"),
        ("2001:db8::1", "[2001:db8::1]:53"),  # lego's ParseNameservers takes a bare IPv6 address whole
        ("[2001:DB8::1]", "[2001:db8::1]:53"),
        ("[2001:db8::1]:853", "[2001:db8::1]:853"),
        ("dns.example.com", "dns.example.com:53"),  # a name, looked up when asked (as Go dials it)
        ("Bind.Home.:5353", "bind.home:5353"),
        ("dns_server", "dns_server:53"),  # a Compose v1 container name
        ("a..b", None),
        ("1.2.3.4.5", None),  # a mistyped IPv4 address, not a name
        ("[dns.example.com]:53", None),
        ("2001:db8::1:53x", None),
        ("1.1.1.1:0", None),
        ("1.1.1.1:65536", None),
        ("1.1.1.1:", None),
        ("[2001:db8::1]x", None),
        ("[2001:db8::1", None),
        ("[1.1.1.1]:53x", None),
    ],
)
def test_resolvers_entries_are_checked_and_written_host_port(providers, entry, address):
    """Through the one parser of DNS server entries (lego's ParseNameservers rules)."""
    argv = [EMAIL, f"{DNS}.provider=cloudflare", f"{DNS}.resolvers[0]={entry}"]
    if address is None:
        e = error(argv)
        assert e.key == f"{PATH}.resolvers[0]" and "expected a DNS server's address" in str(e)
    else:
        assert dns(*argv).resolvers == (address,)


# -- with the real registry (lego's variables for Cloudflare) ---------------------------------------------


def test_the_real_registry_names_the_missing_variable_and_reads_file_variants(tmp_path):
    e = error([EMAIL, f"{DNS}.provider=cloudflare"], env={})
    assert e.key == f"{PATH}.provider" and "CF_DNS_API_TOKEN" in str(e)
    secret = tmp_path / "cf_token"
    secret.write_text("token-from-a-secret\n")
    cfg = load(
        [EMAIL, f"{DNS}.provider=cloudflare"], env={"CF_DNS_API_TOKEN_FILE": str(secret), "CF_DNS_TOKEN": "x"}
    )
    d = cfg.resolvers["le"].dns_challenge  # type: ignore[union-attr]
    assert d.provider.provider == "cloudflare" and d.provider.get("CF_DNS_API_TOKEN") == "token-from-a-secret"
    assert (
        len(cfg.warnings) == 1
        and cfg.warnings[0].startswith(f"{PATH}.provider: ")
        and "CF_DNS_TOKEN" in cfg.warnings[0]
    )
    e = error([EMAIL, f"{DNS}.provider=route53"])
    assert e.key == f"{PATH}.provider" and "'route53' is not supported" in str(e) and "rfc2136" in str(e)
