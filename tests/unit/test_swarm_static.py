"""``providers.swarm`` in the static configuration: every Traefik key acts, is warned, or is refused."""

from __future__ import annotations

import pytest

from dockroute.static import StaticConfigError
from dockroute.static.build import load_static


def load(*argv: str):
    return load_static(list(argv), {}, search_dirs=[])


def test_defaults_are_traefiks_and_the_implicit_docker_provider_is_off():
    s = load("--providers.swarm=true")
    sw = s.swarm_provider
    assert sw is not None and s.docker_provider is None
    assert (sw.endpoint, sw.exposed_by_default, sw.watch, sw.refresh_seconds) == (
        "unix:///var/run/docker.sock",
        True,
        True,
        15.0,
    )
    assert sw.default_rule == "Host(`{{ normalize .Name }}`)" and sw.provider == "swarm"
    assert load().swarm_provider is None  # off unless configured, as in Traefik


def test_every_key_acts():
    s = load(
        "--providers.swarm.endpoint=tcp://10.0.0.1:2376",
        "--providers.swarm.exposedByDefault=false",
        "--providers.swarm.defaultRule=Host(`{{ .Name }}.example`)",
        "--providers.swarm.network=proxy",
        "--providers.swarm.refreshSeconds=3s",
        "--providers.swarm.watch=false",
        "--providers.swarm.constraints=Label(`a`,`b`)",
        "--providers.swarm.allowEmptyServices=true",
        "--providers.swarm.tls.ca=/ca.pem",
        "--providers.swarm.tls.cert=/c.pem",
        "--providers.swarm.tls.key=/k.pem",
    ).swarm_provider
    assert sw_tuple(s) == (
        "tcp://10.0.0.1:2376",
        False,
        "Host(`{{ .Name }}.example`)",
        "proxy",
        3.0,
        False,
        "Label(`a`,`b`)",
        True,
        ("/ca.pem", "/c.pem", "/k.pem"),
    )
    assert load("--providers.swarm.refreshSeconds=7").swarm_provider.refresh_seconds == 7.0  # plain seconds


def sw_tuple(s):
    return (
        s.endpoint,
        s.exposed_by_default,
        s.default_rule,
        s.network,
        s.refresh_seconds,
        s.watch,
        s.constraints,
        s.allow_empty_services,
        (s.tls_ca, s.tls_cert, s.tls_key),
    )


@pytest.mark.parametrize(
    "key",
    [
        "useBindPortIP=true",
        "httpClientTimeout=30s",
        "username=u",
        "password=p",
    ],
)
def test_keys_not_acted_on_are_named_in_a_warning(key):
    s = load(f"--providers.swarm.{key}")
    assert s.ignored == (f"providers.swarm.{key.split('=')[0]}",)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--providers.swarm.bogus=1"], "providers.swarm.bogus: unknown key"),
        (["--providers.swarm.endpoint=/var/run/docker.sock"], "providers.swarm.endpoint: expected a URL"),
        (["--providers.swarm.refreshSeconds=0"], "providers.swarm.refreshSeconds: must be more than 0"),
        (["--providers.swarm.refreshSeconds=soon"], "providers.swarm.refreshSeconds: expected a duration"),
        # Traefik's ClientTLS: "both TLS cert and key must be defined"
        (
            ["--providers.swarm.tls.cert=/c.pem"],
            "providers.swarm.tls.key: required with providers.swarm.tls.cert",
        ),
        (
            ["--providers.swarm.tls.key=/k.pem"],
            "providers.swarm.tls.cert: required with providers.swarm.tls.key",
        ),
        (["--providers.docker.tls.cert=/c.pem"], "providers.docker.tls.key: required with"),
        (["--providers.docker.tls.key=/k.pem"], "providers.docker.tls.cert: required with"),
        (["--providers.swarm.tls.insecureSkipVerify=maybe"], "providers.swarm.tls.insecureSkipVerify"),
    ],
)
def test_bad_keys_are_refused_by_name(argv, message):
    with pytest.raises(StaticConfigError) as err:
        load(*argv)
    assert str(err.value).startswith(message)


def test_tls_insecure_skip_verify_is_read_for_both_providers():
    static = load(
        "--providers.swarm.tls.insecureSkipVerify=true", "--providers.docker.tls.insecureSkipVerify=true"
    )
    assert static.swarm_provider.tls_insecure_skip_verify is True
    assert static.docker_provider.tls_insecure_skip_verify is True
    assert static.ignored == ()  # acted on, not warned as unsupported
    assert load("--providers.swarm=true").swarm_provider.tls_insecure_skip_verify is False
