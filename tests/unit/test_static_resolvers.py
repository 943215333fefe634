"""Static configuration: ``certificatesResolvers`` typed and checked at start (ACME and internalCA)."""

from __future__ import annotations

from pathlib import Path

import pytest

from acme_client.settings import LETS_ENCRYPT, InternalCASettings, ResolverSettings, is_public_ca
from dockroute.static import StaticConfig, StaticConfigError, load_static

LE = "--certificatesresolvers.le.acme"
EMAIL = f"{LE}.email=a@example.com"
CHALLENGE = f"{LE}.tlschallenge"  # a resolver without any challenge stops the start
PEBBLE = "https://127.0.0.1:14000/dir"


def load(argv=(), env=None, config_file=None) -> StaticConfig:
    return load_static(list(argv), env or {}, config_file=config_file, search_dirs=())


def error(argv=(), env=None, config_file=None) -> StaticConfigError:
    with pytest.raises(StaticConfigError) as info:
        load(argv, env, config_file)
    assert "\n" not in str(info.value)
    return info.value


def acme(*argv: str, name: str = "le") -> ResolverSettings:
    settings = load(argv).resolvers[name]
    assert isinstance(settings, ResolverSettings)
    return settings


# -- every key acted on -------------------------------------------------------------------------------


def test_every_acted_on_key_from_a_file(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    f = tmp_path / "traefik.yml"
    f.write_text(
        "entryPoints:\n  web: {address: ':80'}\n  websecure: {address: ':443'}\n"
        "certificatesResolvers:\n"
        "  le:\n"
        "    acme:\n"
        "      email: ops@example.com\n"
        "      storage: /data/acme.json\n"
        f"      caServer: {PEBBLE}\n"
        "      keyType: ec384\n"
        "      httpChallenge: {entryPoint: Web}\n"
        "      tlsChallenge: {}\n"
        f"      caCertificates: [{ca}]\n"
        "      eab: {kid: kid-1, hmacEncoded: c2VjcmV0}\n"
        "      profile: shortlived\n"
        "      certificatesDuration: 24\n"
    )
    s = load(config_file=str(f)).resolvers["le"]
    assert s == ResolverSettings(
        email="ops@example.com",
        storage="/data/acme.json",
        ca_server=PEBBLE,
        key_type="EC384",
        http_entry_point="web",
        tls_challenge=True,
        ca_certificates=(str(ca),),
        eab=("kid-1", "c2VjcmV0"),
        profile="shortlived",
        certificates_duration=24,
    )


def test_defaults():
    s = acme(EMAIL, CHALLENGE)
    assert (s.ca_server, s.storage, s.key_type, s.http_entry_point, s.tls_challenge) == (
        LETS_ENCRYPT,
        "acme.json",
        "EC256",
        None,
        True,
    )
    assert (s.eab, s.profile, s.certificates_duration, s.ca_certificates) == (None, None, 2160, ())


def test_flags_and_environment_alike():
    env = {
        "TRAEFIK_CERTIFICATESRESOLVERS_LE_ACME_EMAIL": "a@example.com",
        "TRAEFIK_CERTIFICATESRESOLVERS_LE_ACME_TLSCHALLENGE": "true",
        "DOCKROUTE_CERTIFICATESRESOLVERS_LE_ACME_KEYTYPE": "RSA2048",
    }
    s = load(env=env).resolvers["le"]
    assert isinstance(s, ResolverSettings) and s.tls_challenge is True and s.key_type == "RSA2048"
    assert acme(EMAIL, f"{LE}.tlschallenge").tls_challenge is True
    http = f"{LE}.httpchallenge.entrypoint=web"
    assert acme(EMAIL, http, f"{LE}.tlschallenge=false").tls_challenge is False
    assert acme(EMAIL, http).http_entry_point == "web"


def test_resolvers_keep_their_order_and_names():
    cfg = load(
        [
            "--certificatesresolvers.zeta.acme.email=a@example.com",
            "--certificatesresolvers.zeta.acme.tlschallenge",
            f"--certificatesresolvers.alpha.acme.caserver={PEBBLE}",
            "--certificatesresolvers.alpha.acme.tlschallenge",
            "--certificatesresolvers.off.acme.email=x@example.com",
            "--certificatesresolvers.off=false",
        ]
    )
    assert list(cfg.resolvers) == ["zeta", "alpha"]


# -- unknown keys and bad values: exit 2, naming the key ----------------------------------------------


def test_misspelled_key_is_refused_with_a_hint(tmp_path):
    e = error([EMAIL, f"{LE}.emial=x"])
    assert str(e).startswith("certificatesResolvers.le.acme.emial: unknown key (did you mean 'email'?)")
    f = tmp_path / "c.yml"
    f.write_text("certificatesResolvers:\n  le:\n    acme:\n      email: a@b.c\n      keytipe: EC256\n")
    e = error(config_file=str(f))
    assert e.key == "certificatesResolvers.le.acme.keytipe" and "did you mean 'keyType'" in str(e)
    e = error(env={"DOCKROUTE_CERTIFICATESRESOLVERS_LE_ACME_HTTPCHALLENGE_ENTRYPIONT": "web"})
    assert e.key == "certificatesResolvers.le.acme.httpChallenge.entrypiont"
    assert "did you mean 'entryPoint'" in str(e)
    e = error(["--certificatesresolvers.le.acmee.email=x"])
    assert e.key == "certificatesResolvers.le.acmee" and "did you mean 'acme'" in str(e)


@pytest.mark.parametrize("key_type", ["EC256", "EC384", "RSA2048", "RSA4096", "RSA8192", "rsa4096"])
def test_key_types_are_traefiks(key_type):
    assert acme(EMAIL, CHALLENGE, f"{LE}.keytype={key_type}").key_type == key_type.upper()


@pytest.mark.parametrize("key_type", ["P256", "4096", "ed25519", "RSA1024"])
def test_other_key_types_are_refused(key_type):
    e = error([EMAIL, CHALLENGE, f"{LE}.keytype={key_type}"])
    assert e.key == "certificatesResolvers.le.acme.keyType" and "EC256, EC384, RSA2048" in str(e)


def test_email_required_for_a_public_ca():
    e = error([f"{LE}.storage=acme.json", CHALLENGE])
    assert e.key == "certificatesResolvers.le.acme.email" and "acme-v02.api.letsencrypt.org" in str(e)
    e = error([f"{LE}.caserver=https://acme.zerossl.com/v2/DV90", CHALLENGE])
    assert e.key == "certificatesResolvers.le.acme.email"
    assert acme(f"{LE}.caserver={PEBBLE}", CHALLENGE).email is None  # a private CA may not need one


def test_ca_server_must_be_a_url():
    assert error([EMAIL, f"{LE}.caserver=letsencrypt"]).key == "certificatesResolvers.le.acme.caServer"


def test_eab_needs_both_keys():
    e = error([EMAIL, CHALLENGE, f"{LE}.eab.kid=kid-1"])
    assert e.key == "certificatesResolvers.le.acme.eab.hmacEncoded" and "both" in str(e)
    e = error([EMAIL, CHALLENGE, f"{LE}.eab.hmacencoded=c2VjcmV0"])
    assert e.key == "certificatesResolvers.le.acme.eab.kid"
    assert acme(EMAIL, CHALLENGE, f"{LE}.eab").eab is None


@pytest.mark.parametrize("hours", ["0", "-24", "1.5", "90d", ""])
def test_certificates_duration_is_a_positive_whole_number_of_hours(hours):
    e = error([EMAIL, CHALLENGE, f"{LE}.certificatesduration={hours}"])
    assert e.key == "certificatesResolvers.le.acme.certificatesDuration"


def test_http_challenge_entry_point_must_exist():
    e = error([EMAIL, f"{LE}.httpchallenge.entrypoint=http"])
    assert e.key == "certificatesResolvers.le.acme.httpChallenge.entryPoint"
    assert "'http'" in str(e) and "known: web" in str(e) and "--certificatesresolvers" in str(e)
    e = error([EMAIL, f"{LE}.httpchallenge"])
    assert e.key == "certificatesResolvers.le.acme.httpChallenge.entryPoint" and "required" in str(e)


def test_tls_challenge_is_a_switch_section():
    e = error([EMAIL, f"{LE}.tlschallenge=maybe"])
    assert e.key == "certificatesResolvers.le.acme.tlsChallenge"
    assert error([EMAIL, f"{LE}.tlschallenge.entrypoint=web"]).key.endswith("tlsChallenge.entrypoint")


def test_ca_certificates_must_exist(tmp_path):
    e = error([EMAIL, CHALLENGE, f"{LE}.cacertificates={tmp_path / 'missing.pem'}"])
    assert e.key == "certificatesResolvers.le.acme.caCertificates[0]" and "missing.pem" in str(e)


def test_a_resolver_is_exactly_one_of_acme_or_internal_ca():
    e = error(["--certificatesresolvers.le"])
    assert e.key == "certificatesResolvers.le" and "exactly one of acme or internalCA" in str(e)
    e = error([EMAIL, "--certificatesresolvers.le.internalca"])
    assert e.key == "certificatesResolvers.le" and "not both" in str(e)


def test_tailscale_and_other_kinds_are_refused_by_name():
    e = error(["--certificatesresolvers.ts.tailscale"])
    assert e.key == "certificatesResolvers.ts.tailscale" and "Tailscale" in str(e)
    e = error(["--certificatesresolvers.x.vault.url=https://v"])
    assert e.key == "certificatesResolvers.x.vault" and "unknown key" in str(e)


# -- refused or warned by name ------------------------------------------------------------------------


def test_email_addresses_in_certificates_are_refused():
    e = error([EMAIL, f"{LE}.emailaddresses=admin@example.com"])
    assert e.key == "certificatesResolvers.le.acme.emailAddresses" and "not supported" in str(e)


def test_keys_without_effect_are_checked_and_listed_for_the_warning(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    cfg = load(
        [
            EMAIL,
            f"{LE}.preferredchain=ISRG Root X1",
            f"{LE}.clienttimeout=1m",
            f"{LE}.clientresponseheadertimeout=10s",
            f"{LE}.certificatetimeout=30s",
            f"{LE}.caservername=ca.internal",
            f"{LE}.casystemcertpool=true",
            f"{LE}.cacertificates={ca}",
            f"{LE}.httpchallenge.entrypoint=web",
            f"{LE}.httpchallenge.delay=2s",
            f"{LE}.tlschallenge.delay=2s",
            f"{LE}.disablecommonname=false",
        ]
    )
    p = "certificatesResolvers.le.acme"
    assert set(cfg.ignored) == {
        f"{p}.{k}"
        for k in (
            "preferredChain",
            "clientTimeout",
            "clientResponseHeaderTimeout",
            "certificateTimeout",
            "caServerName",
            "caSystemCertPool",
            "httpChallenge.delay",
            "tlsChallenge.delay",
            "disableCommonName",
        )
    }
    # What dockroute always does is not warned about: no common name, the system pool without files.
    assert (
        load([EMAIL, CHALLENGE, f"{LE}.disablecommonname=true", f"{LE}.casystemcertpool=true"]).ignored == ()
    )
    assert error([EMAIL, CHALLENGE, f"{LE}.clienttimeout=forever"]).key == f"{p}.clientTimeout"
    assert error([EMAIL, CHALLENGE, f"{LE}.casystemcertpool=perhaps"]).key == f"{p}.caSystemCertPool"


def test_every_traefik_acme_key_is_known():
    """Traefik v3's ACME configuration, key for key: none is an unknown key (each is acted on, refused
    by name or warned about by name)."""
    from dockroute.static.schema import _ACME

    traefik = {
        "email", "caServer", "preferredChain", "profile", "emailAddresses", "disableCommonName",
        "storage", "keyType", "eab", "certificatesDuration", "clientTimeout",
        "clientResponseHeaderTimeout", "certificateTimeout", "caCertificates", "caSystemCertPool",
        "caServerName", "dnsChallenge", "httpChallenge", "tlsChallenge",
    }  # fmt: skip
    assert set(_ACME) == traefik
    assert set(_ACME["dnsChallenge"]) == {
        "provider", "resolvers", "propagation", "delayBeforeCheck", "disablePropagationCheck"
    }  # fmt: skip
    assert set(_ACME["httpChallenge"]) == {"entryPoint", "delay"} and set(_ACME["tlsChallenge"]) == {"delay"}


# -- internalCA ---------------------------------------------------------------------------------------


def test_internal_ca_every_key(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text(
        "certificatesResolvers:\n  home:\n    internalCA:\n"
        f"      storage: {tmp_path / 'ca'}\n      leafLifetime: 24h\n"
        "      permittedDomains: [LAN, home.arpa., internal]\n"
    )
    assert load(config_file=str(f)).resolvers["home"] == InternalCASettings(
        storage=str(tmp_path / "ca"),
        leaf_lifetime=86400.0,
        permitted_domains=("lan", "home.arpa", "internal"),
    )


def test_internal_ca_defaults_beside_acme_storage():
    assert load(["--certificatesresolvers.home.internalca"]).resolvers["home"] == InternalCASettings(
        storage="internal-ca", leaf_lifetime=168 * 3600.0
    )
    cfg = load(
        [
            "--certificatesresolvers.home.internalca=true",
            EMAIL,
            CHALLENGE,
            f"{LE}.storage=/data/acme.json",
            f"--certificatesresolvers.other.acme.caserver={PEBBLE}",
            "--certificatesresolvers.other.acme.tlschallenge",
            "--certificatesresolvers.other.acme.storage=/elsewhere/other.json",
        ]
    )
    home = cfg.resolvers["home"]
    assert isinstance(home, InternalCASettings) and Path(home.storage) == Path("/data/internal-ca")
    assert list(cfg.resolvers) == ["home", "le", "other"]


def test_internal_ca_checks():
    p = "--certificatesresolvers.home.internalca"
    e = error([f"{p}.leaflifetime=30s"])
    assert e.key == "certificatesResolvers.home.internalCA.leafLifetime" and "at least 1m" in str(e)
    assert load([f"{p}.leaflifetime=1m"]).resolvers["home"].leaf_lifetime == 60.0  # type: ignore[union-attr]
    for bad in (".lan", "*.lan", "a..b", "exa mple.com", "-x.lan", "ünï.lan"):
        e = error([f"{p}.permitteddomains={bad}"])
        assert e.key == "certificatesResolvers.home.internalCA.permittedDomains[0]", bad
    e = error([f"{p}.storeage=/x"])
    assert "did you mean 'storage'" in str(e)


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("10.0.0.1", "an IP address or network"),  # once an IP-only constraint: every DNS name left open
        ("10.0.0.0/8", "an IP address or network"),
        ("[::1]", "an IP address or network"),
        ("fd00::/8", "an IP address or network"),
        ("10.0.1", "the last label is all digits"),
        ("printer.123", "the last label is all digits"),
        ("*.lan", "a wildcard or leading dot"),
        (".home.arpa", "a wildcard or leading dot"),
        ("under_score.lan", "not a domain name"),
    ],
)
def test_internal_ca_permitted_domains_are_domain_names_only(entry, why):
    e = error(["--certificatesresolvers.home.internalca.permitteddomains=lan," + entry])
    assert e.key == "certificatesResolvers.home.internalCA.permittedDomains[1]" and why in str(e), str(e)


def test_internal_ca_permitted_domains_set_but_empty_is_refused(tmp_path):
    # An unconstrained root would be created, for good: its constraints never change.
    p = "certificatesResolvers.home.internalCA.permittedDomains"
    e = error(["--certificatesresolvers.home.internalca.permitteddomains="])
    assert e.key == p and "set but empty" in str(e)
    e = error(env={"DOCKROUTE_CERTIFICATESRESOLVERS_HOME_INTERNALCA_PERMITTEDDOMAINS": ""})
    assert e.key == p
    f = tmp_path / "c.yml"
    f.write_text("certificatesResolvers:\n  home:\n    internalCA:\n      permittedDomains: []\n")
    assert error(config_file=str(f)).key == p


def test_internal_ca_leaf_lifetime_stops_at_825_days():
    # Apple platforms refuse longer server certificates, under user-trusted roots too.
    p = "--certificatesresolvers.home.internalca.leaflifetime"
    assert load([f"{p}=19800h"]).resolvers["home"].leaf_lifetime == 825 * 86400.0  # type: ignore[union-attr]
    e = error([f"{p}=19801h"])
    assert e.key == "certificatesResolvers.home.internalCA.leafLifetime" and "825 days" in str(e)


def test_internal_ca_storage_is_a_folder_of_its_own(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    e = error([f"--certificatesresolvers.home.internalca.storage={f}"])
    assert e.key == "certificatesResolvers.home.internalCA.storage" and "folder" in str(e)
    e = error(["--certificatesresolvers.a.internalca", "--certificatesresolvers.b.internalca"])
    assert e.key == "certificatesResolvers.b.internalCA.storage" and "resolver a" in str(e)
    # The same folder under another spelling (a symlink) is still the same folder.
    (tmp_path / "ca").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "ca")
    e = error(
        [
            f"--certificatesresolvers.a.internalca.storage={tmp_path / 'ca'}",
            f"--certificatesresolvers.b.internalca.storage={tmp_path / 'link'}",
        ]
    )
    assert e.key == "certificatesResolvers.b.internalCA.storage" and "resolver a's folder" in str(e)
    # An ACME resolver's storage file path is no folder for an internal CA (created first, it would
    # make acme.json impossible; created second, the root could not be).
    e = error(
        [
            EMAIL,
            CHALLENGE,
            f"{LE}.storage={tmp_path / 'state'}",
            f"--certificatesresolvers.home.internalca.storage={tmp_path / 'x' / '..' / 'state'}",
        ]
    )
    assert e.key == "certificatesResolvers.home.internalCA.storage"
    assert "resolver le's ACME storage file" in str(e)


def test_resolvers_are_not_listed_as_ignored():
    cfg = load([EMAIL, f"{LE}.tlschallenge", "--certificatesresolvers.home.internalca.storage=/tmp/x"])
    assert cfg.ignored == ()


@pytest.mark.parametrize(
    "directory",
    [
        "https://acme.harica.gr/my-alias/directory",
        "https://acme.certum.pl/directory",
        "https://emea.acme.atlas.globalsign.com/directory",
        "https://acme.entrust.net/acme2/directory",
    ],
)
def test_more_public_cas_need_an_email_and_are_not_asked_for_internal_names(directory):
    assert is_public_ca(directory)
    assert error([f"{LE}.caserver={directory}", CHALLENGE]).key == "certificatesResolvers.le.acme.email"
