"""Static configuration: ``entryPoints.<ep>.http.tls`` (typed, with its list of domains) and
``entryPoints.<ep>.http.middlewares``."""

from __future__ import annotations

import pytest

from discover.model import Domain, RouterTLS
from dockroute.static import StaticConfigError, load_static

LE = [
    "--certificatesresolvers.le.acme.email=a@example.com",
    "--certificatesresolvers.le.acme.tlschallenge",
    "--entrypoints.websecure.address=:443",
]


def tls_of(argv=(), env=None, config_file=None, name="websecure"):
    static = load_static(list(argv), env or {}, config_file=config_file, search_dirs=())
    return {e.name: e for e in static.entry_points}[name].tls


def error(argv=(), env=None, config_file=None) -> StaticConfigError:
    with pytest.raises(StaticConfigError) as info:
        load_static(list(argv), env or {}, config_file=config_file, search_dirs=())
    assert "\n" not in str(info.value)
    return info.value


# -- the switch ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flag",
    [
        "--entrypoints.websecure.http.tls",
        "--entrypoints.websecure.http.tls=true",
        "--entrypoints.websecure.http.tls=T",
    ],
)
def test_bare_switch_gives_tls_with_defaults(flag):
    assert tls_of([*LE, flag]) == RouterTLS()


@pytest.mark.parametrize("text", ["tls: {}", "tls: true", "tls:", "tls: 'true'"])
def test_file_switch_gives_tls_with_defaults(tmp_path, text):
    f = tmp_path / "c.yml"
    f.write_text(f"entryPoints:\n  websecure:\n    address: ':443'\n    http:\n      {text}\n")
    assert tls_of(config_file=str(f)) == RouterTLS()


def test_absent_or_false_is_no_tls(tmp_path):
    assert tls_of(LE) is None
    assert tls_of([*LE, "--entrypoints.websecure.http.tls=false"]) is None
    f = tmp_path / "c.yml"
    f.write_text("entryPoints:\n  websecure:\n    address: ':443'\n    http:\n      tls: false\n")
    assert tls_of(config_file=str(f)) is None
    # A flag switches off what the file switched on.
    f.write_text("entryPoints:\n  websecure:\n    address: ':443'\n    http:\n      tls: {options: x}\n")
    assert tls_of(["--entrypoints.websecure.http.tls=false"], config_file=str(f)) is None


def test_not_a_switch_word_is_refused():
    e = error([*LE, "--entrypoints.websecure.http.tls=yes"])
    assert e.key == "entryPoints.websecure.http.tls"


# -- the section --------------------------------------------------------------------------------------


def test_every_key_from_a_yaml_file(tmp_path):
    f = tmp_path / "traefik.yml"
    f.write_text(
        "entryPoints:\n"
        "  websecure:\n"
        "    address: ':443'\n"
        "    http:\n"
        "      tls:\n"
        "        certResolver: le\n"
        "        options: modern@file\n"
        "        domains:\n"
        "          - main: example.com\n"
        "            sans: [www.example.com, api.example.com]\n"
        "          - main: '*.example.org'\n"
        "certificatesResolvers:\n"
        "  le:\n"
        "    acme: {email: a@example.com, tlsChallenge: {}}\n"
    )
    assert tls_of(config_file=str(f)) == RouterTLS(
        cert_resolver="le",
        options="modern@file",
        domains=(Domain("example.com", ("www.example.com", "api.example.com")), Domain("*.example.org")),
    )


def test_toml_list_of_tables(tmp_path):
    f = tmp_path / "traefik.toml"
    f.write_text(
        "[entryPoints.websecure]\naddress = ':443'\n"
        "[entryPoints.websecure.http.tls]\ncertResolver = 'le'\n"
        "[[entryPoints.websecure.http.tls.domains]]\nmain = 'a.example'\nsans = ['b.example']\n"
        "[[entryPoints.websecure.http.tls.domains]]\nmain = 'c.example'\n"
        "[certificatesResolvers.le.acme]\nemail = 'a@example.com'\ntlsChallenge = {}\n"
    )
    tls = tls_of(config_file=str(f))
    assert tls is not None and tls.domains == (Domain("a.example", ("b.example",)), Domain("c.example"))


def test_domains_from_indexed_flags():
    tls = tls_of(
        [
            *LE,
            "--entrypoints.websecure.http.tls.certresolver=le",
            "--entrypoints.websecure.http.tls.domains[1].main=other.example",
            "--entrypoints.websecure.http.tls.domains[0].main=example.com",
            "--entrypoints.websecure.http.tls.domains[0].sans=a.example.com,b.example.com",
        ]
    )
    assert tls == RouterTLS(
        cert_resolver="le",
        domains=(Domain("example.com", ("a.example.com", "b.example.com")), Domain("other.example")),
    )


def test_domains_from_environment_variables():
    env = {
        "DOCKROUTE_ENTRYPOINTS_WEBSECURE_ADDRESS": ":443",
        "DOCKROUTE_ENTRYPOINTS_WEBSECURE_HTTP_TLS_DOMAINS_0_MAIN": "example.com",
        "DOCKROUTE_ENTRYPOINTS_WEBSECURE_HTTP_TLS_DOMAINS_0_SANS_0": "a.example.com",
        "DOCKROUTE_ENTRYPOINTS_WEBSECURE_HTTP_TLS_DOMAINS_0_SANS_1": "b.example.com",
        "TRAEFIK_ENTRYPOINTS_WEBSECURE_HTTP_TLS_OPTIONS": "modern",
    }
    assert tls_of(env=env) == RouterTLS(
        options="modern", domains=(Domain("example.com", ("a.example.com", "b.example.com")),)
    )


def test_a_flag_sets_one_key_of_a_domain_the_file_gave(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text(
        "entryPoints:\n  websecure:\n    address: ':443'\n    http:\n      tls:\n"
        "        domains: [{main: example.com, sans: [old.example.com]}]\n"
    )
    tls = tls_of(["--entrypoints.websecure.http.tls.domains[0].sans=new.example.com"], config_file=str(f))
    assert tls is not None and tls.domains == (Domain("example.com", ("new.example.com",)),)


def test_unknown_key_inside_a_domain_is_refused_with_a_hint(tmp_path):
    e = error([*LE, "--entrypoints.websecure.http.tls.domains[0].mian=example.com"])
    assert str(e).startswith(
        "entryPoints.websecure.http.tls.domains[0].mian: unknown key (did you mean 'main'?)"
    )
    e = error(
        env={
            "DOCKROUTE_ENTRYPOINTS_WEBSECURE_HTTP_TLS_DOMAINS_0_SAN": "x",
            **{"DOCKROUTE_ENTRYPOINTS_WEBSECURE_ADDRESS": ":443"},
        }
    )
    assert e.key == "entryPoints.websecure.http.tls.domains[0].san" and "did you mean 'sans'" in str(e)
    f = tmp_path / "c.yml"
    f.write_text(
        "entryPoints:\n  websecure:\n    address: ':443'\n    http:\n      tls:\n"
        "        domains:\n          - main: a.example\n          - main: b.example\n            sanz: [c]\n"
    )
    e = error(config_file=str(f))
    assert e.key == "entryPoints.websecure.http.tls.domains[1].sanz" and "did you mean 'sans'" in str(e)
    assert "c.yml" in str(e)


def test_a_domain_needs_main():
    e = error([*LE, "--entrypoints.websecure.http.tls.domains[0].sans=a.example.com"])
    assert e.key == "entryPoints.websecure.http.tls.domains[0].main" and "required" in str(e)


def test_domains_must_be_a_list_of_sections(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text(
        "entryPoints:\n  w:\n    address: ':443'\n    http:\n      tls:\n        domains: {main: a}\n"
    )
    assert error(config_file=str(f)).key == "entryPoints.w.http.tls.domains"
    f.write_text(
        "entryPoints:\n  w:\n    address: ':443'\n    http:\n      tls:\n        domains: [a.example]\n"
    )
    assert error(config_file=str(f)).key == "entryPoints.w.http.tls.domains[0]"
    e = error([*LE, "--entrypoints.websecure.http.tls.domains=example.com"])
    assert e.key == "entryPoints.websecure.http.tls.domains" and "domains[0].main" in str(e)
    e = error([*LE, "--entrypoints.websecure.http.tls.domains.main=example.com"])
    assert e.key == "entryPoints.websecure.http.tls.domains" and "index" in str(e)


def test_cert_resolver_must_exist():
    e = error([*LE, "--entrypoints.websecure.http.tls.certresolver=letsencrypt"])
    assert e.key == "entryPoints.websecure.http.tls.certResolver"
    assert "'letsencrypt'" in str(e) and "known: le" in str(e)
    assert "--entrypoints.websecure.http.tls.certresolver" in str(e)
    e = error(["--entrypoints.websecure.address=:443", "--entrypoints.websecure.http.tls.certresolver=le"])
    assert "known: none" in str(e)


def test_cert_resolver_matches_any_case_and_takes_the_resolver_spelling(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text(
        "certificatesResolvers:\n  myLE:\n    acme: {email: a@example.com, tlsChallenge: {}}\n"
        "entryPoints:\n  websecure:\n    address: ':443'\n    http:\n      tls: {certResolver: myle}\n"
    )
    tls = tls_of(config_file=str(f))
    assert tls is not None and tls.cert_resolver == "myLE"


def test_tls_is_not_listed_as_ignored():
    static = load_static([*LE, "--entrypoints.websecure.http.tls.certresolver=le"], {}, search_dirs=())
    assert static.ignored == ()


# -- entry-point middlewares --------------------------------------------------------------------------


def test_entry_point_middlewares_are_read_from_every_source(tmp_path):
    static = load_static(
        ["--entrypoints.web.address=:80", "--entrypoints.web.http.middlewares=auth@file,allow@docker"],
        {},
        search_dirs=(),
    )
    assert static.entry_points[0].middlewares == ("auth@file", "allow@docker")
    f = tmp_path / "c.yml"
    f.write_text(
        "entryPoints:\n  web:\n    address: ':80'\n    http:\n      middlewares: [basic-auth@file]\n"
    )
    static = load_static([], {}, config_file=str(f), search_dirs=())
    assert static.entry_points[0].middlewares == ("basic-auth@file",)
    env = {
        "TRAEFIK_ENTRYPOINTS_WEB_ADDRESS": ":80",
        "TRAEFIK_ENTRYPOINTS_WEB_HTTP_MIDDLEWARES_0": "ipallow@file",
    }
    static = load_static([], env, search_dirs=())
    assert static.entry_points[0].middlewares == ("ipallow@file",)


def test_empty_entry_point_middlewares_are_fine(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text("entryPoints:\n  web:\n    address: ':80'\n    http:\n      middlewares: []\n")
    static = load_static([], {}, config_file=str(f), search_dirs=())
    assert static.ignored == () and [e.name for e in static.entry_points] == ["web"]


def test_resolvers_field_is_typed():
    from acme_client.settings import ResolverSettings

    static = load_static(LE, {}, search_dirs=())
    le = static.resolvers["le"]
    assert isinstance(le, ResolverSettings) and le.email == "a@example.com"
