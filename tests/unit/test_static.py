"""Static configuration: file, environment and flags, merged and checked like Traefik's."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest

from acme_client.settings import ResolverSettings
from discover.model import ServersTransport
from discover.values import BOOL_WORDS
from dockroute.static import StaticConfig, StaticConfigError, load_static
from dockroute.static.sources import default_search_dirs


def load(
    argv=(), env=None, files: dict[str, str] | None = None, tmp: Path | None = None, **kw
) -> StaticConfig:
    """``files``: name -> text written into ``tmp``, which is then the only search directory."""
    dirs: tuple[str, ...] = ()
    if files:
        assert tmp is not None
        for name, text in files.items():
            (tmp / name).write_text(text)
        dirs = (str(tmp),)
    return load_static(list(argv), env or {}, search_dirs=dirs, **kw)


def error(*args, **kw) -> StaticConfigError:
    with pytest.raises(StaticConfigError) as info:
        load(*args, **kw)
    assert "\n" not in str(info.value)
    return info.value


def ep(cfg: StaticConfig, name: str):
    return {e.name: e for e in cfg.entry_points}[name]


YAML = """
entryPoints:
  web:
    address: ":8080"
  websecure:
    address: "127.0.0.1:8443"
log:
  level: DEBUG
"""


# -- defaults -----------------------------------------------------------------------------------------


def test_embedded_default():
    cfg = load()
    assert [(e.name, e.address) for e in cfg.entry_points] == [("web", ":80")]
    assert cfg.docker_provider is not None and cfg.docker_provider.explicit is False
    assert cfg.docker_provider.exposed_by_default is False  # opt-in only when nothing was configured
    assert cfg.docker_provider.endpoint == "unix:///var/run/docker.sock"
    assert cfg.file_provider is None
    assert (cfg.log.level, cfg.log.format, cfg.log.file_path) == ("INFO", "common", None)
    assert cfg.log.python_level == logging.INFO
    assert cfg.access_log is None
    assert cfg.source is None and cfg.ignored == () and dict(cfg.resolvers) == {}


def test_key_defaults_match_traefik():
    cfg = load(["--providers.docker", "--accesslog"])
    web = ep(cfg, "web")
    assert (web.read_timeout, web.write_timeout, web.idle_timeout, web.grace_timeout) == (60, 0, 180, 10)
    d = cfg.docker_provider
    assert d is not None and d.explicit is True and d.exposed_by_default is True and d.watch is True
    assert d.default_rule == "Host(`{{ normalize .Name }}`)"
    assert (
        cfg.access_log is not None and cfg.access_log.file_path is None and cfg.access_log.format == "common"
    )
    assert cfg.transport.max_idle_conns_per_host == 200 and cfg.providers_throttle_duration == 2.0


def test_configured_entry_point_replaces_default_web(tmp_path):
    cfg = load(files={"dockroute.yml": "entryPoints:\n  other:\n    address: ':81'\n"}, tmp=tmp_path)
    assert [e.name for e in cfg.entry_points] == ["other"]
    cfg = load(["--entrypoints.other.address=:81"])
    assert [e.name for e in cfg.entry_points] == ["other"]


def test_settings_for_web_alone_keep_default_address():
    cfg = load(["--entrypoints.web.forwardedheaders.insecure"])
    assert ep(cfg, "web").address == ":80" and ep(cfg, "web").forwarded_insecure is True


def test_configured_provider_drops_implicit_docker(tmp_path):
    cfg = load(["--providers.file.filename=dyn.yml"])
    assert cfg.docker_provider is None
    assert cfg.file_provider is not None and cfg.file_provider.filename == "dyn.yml"
    assert load(["--providers.docker=false"]).docker_provider is None


# -- files --------------------------------------------------------------------------------------------


def test_yaml_file_found_in_search_dirs(tmp_path):
    cfg = load(files={"dockroute.yml": YAML}, tmp=tmp_path)
    assert [(e.name, e.address) for e in cfg.entry_points] == [
        ("web", ":8080"),
        ("websecure", "127.0.0.1:8443"),
    ]
    assert cfg.log.level == "DEBUG" and cfg.log.python_level == logging.DEBUG
    assert cfg.source == str(tmp_path / "dockroute.yml")


def test_search_order_first_dir_then_name(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "dockroute.toml").write_text('[entryPoints.web]\naddress = ":1"\n')
    (b / "dockroute.yml").write_text("entryPoints: {web: {address: ':2'}}\n")
    (a / "dockroute.yaml").write_text("entryPoints: {web: {address: ':3'}}\n")
    cfg = load_static([], {}, search_dirs=(str(a), str(b)))
    assert cfg.source == str(a / "dockroute.yaml") and ep(cfg, "web").address == ":3"


def test_traefik_names_are_read_after_every_dockroute_name(tmp_path):
    """Traefik's own file name works unchanged, but a dockroute.* anywhere in the search wins."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "traefik.yml").write_text("entryPoints: {web: {address: ':1'}}\n")
    cfg = load_static([], {}, search_dirs=(str(a), str(b)))
    assert cfg.source == str(a / "traefik.yml") and ep(cfg, "web").address == ":1"
    (b / "dockroute.toml").write_text('[entryPoints.web]\naddress = ":2"\n')
    cfg = load_static([], {}, search_dirs=(str(a), str(b)))
    assert cfg.source == str(b / "dockroute.toml") and ep(cfg, "web").address == ":2"


@pytest.mark.parametrize("name", ["traefik.yml", "traefik.yaml", "traefik.toml"])
def test_each_traefik_name(tmp_path, name):
    text = '[log]\nlevel = "DEBUG"\n' if name.endswith("toml") else "log: {level: DEBUG}\n"
    cfg = load(files={name: text}, tmp=tmp_path)
    assert cfg.source == str(tmp_path / name) and cfg.log.level == "DEBUG"


def test_default_search_dirs_are_traefiks():
    # Traefik looks in both $XDG_CONFIG_HOME and ~/.config, in that order.
    assert default_search_dirs({"XDG_CONFIG_HOME": "/x", "HOME": "/home/u"}) == (
        "/etc/dockroute",
        "/etc/traefik",
        "/x",
        "/home/u/.config",
        ".",
    )
    assert default_search_dirs({"XDG_CONFIG_HOME": "/home/u/.config", "HOME": "/home/u"}) == (
        "/etc/dockroute",
        "/etc/traefik",
        "/home/u/.config",
        ".",
    )
    assert default_search_dirs({"HOME": "/home/u"}) == (
        "/etc/dockroute",
        "/etc/traefik",
        "/home/u/.config",
        ".",
    )
    assert default_search_dirs({}) == ("/etc/dockroute", "/etc/traefik", ".")


def _system_config_present() -> bool:
    return any(
        Path(d, f"{stem}.{ext}").is_file()
        for d in ("/etc/dockroute", "/etc/traefik")
        for stem in ("dockroute", "traefik")
        for ext in ("yml", "yaml", "toml")
    )


@pytest.mark.skipif(_system_config_present(), reason="a configuration file in /etc would be read first")
def test_without_search_dirs_the_default_ones_are_searched(tmp_path, monkeypatch):
    xdg, work = tmp_path / "xdg", tmp_path / "work"
    xdg.mkdir()
    work.mkdir()
    monkeypatch.chdir(work)
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    env = {"XDG_CONFIG_HOME": str(xdg), "HOME": str(home)}
    (work / "traefik.yml").write_text("log: {level: ERROR}\n")
    cfg = load_static([], env)
    assert cfg.source == str(work / "traefik.yml") and cfg.log.level == "ERROR"
    (home / ".config" / "traefik.yml").write_text("log: {level: INFO}\n")  # found with XDG set too
    assert load_static([], env).source == str(home / ".config" / "traefik.yml")
    (xdg / "traefik.toml").write_text('[log]\nlevel = "WARN"\n')  # before ~/.config
    assert load_static([], env).source == str(xdg / "traefik.toml")
    (work / "dockroute.yaml").write_text("log: {level: DEBUG}\n")
    assert load_static([], env).log.level == "DEBUG"


def test_toml_file(tmp_path):
    toml = """
[entryPoints.web]
address = ":8000"
[entryPoints.web.forwardedHeaders]
trustedIPs = ["10.0.0.0/8", "192.168.1.1"]
[serversTransport.forwardingTimeouts]
dialTimeout = "5s"
[providers.file]
directory = "/etc/dyn"
watch = false
"""
    cfg = load(files={"dockroute.toml": toml}, tmp=tmp_path)
    assert ep(cfg, "web").address == ":8000"
    assert ep(cfg, "web").trusted_ips == ("10.0.0.0/8", "192.168.1.1")
    assert cfg.transport.dial_timeout == 5.0
    assert cfg.file_provider is not None
    assert (cfg.file_provider.directory, cfg.file_provider.filename, cfg.file_provider.watch) == (
        "/etc/dyn",
        None,
        False,
    )


def test_explicit_config_file_beats_search(tmp_path):
    other = tmp_path / "elsewhere.yaml"
    other.write_text("entryPoints: {x: {address: ':9'}}\n")
    cfg = load(files={"dockroute.yml": YAML}, tmp=tmp_path, config_file=str(other))
    assert [e.name for e in cfg.entry_points] == ["x"] and cfg.source == str(other)


def test_config_file_from_flag_and_env(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text("entryPoints: {fromfile: {address: ':9'}}\n")
    assert [e.name for e in load(["--configFile", str(f)]).entry_points] == ["fromfile"]
    assert [e.name for e in load(env={"TRAEFIK_CONFIGFILE": str(f)}).entry_points] == ["fromfile"]


def test_missing_explicit_file_is_an_error(tmp_path):
    e = error(config_file=str(tmp_path / "nope.yml"))
    assert e.key == "configFile" and "nope.yml" in str(e)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    e = error(files={"dockroute.yml": "entryPoints:\n  web:\n    address: ':80'\n  bad: [\n"}, tmp=tmp_path)
    assert "dockroute.yml" in str(e) and "line 5" in str(e)


def test_toml_syntax_error_names_file_and_line(tmp_path):
    e = error(files={"dockroute.toml": "[entryPoints.web]\naddress = \n"}, tmp=tmp_path)
    assert "dockroute.toml" in str(e) and "line 2" in str(e)


def test_empty_file_is_the_default(tmp_path):
    cfg = load(files={"dockroute.yml": ""}, tmp=tmp_path)
    assert [(e.name, e.address) for e in cfg.entry_points] == [("web", ":80")]


def test_empty_yaml_section_switches_it_on(tmp_path):
    cfg = load(files={"dockroute.yml": "accessLog:\nproviders:\n  docker:\n"}, tmp=tmp_path)
    assert cfg.access_log is not None
    assert cfg.docker_provider is not None and cfg.docker_provider.explicit is True


# -- precedence ---------------------------------------------------------------------------------------


def test_env_beats_file_and_keeps_other_keys(tmp_path):
    cfg = load(
        env={"DOCKROUTE_ENTRYPOINTS_WEB_ADDRESS": ":9000"}, files={"dockroute.yml": YAML}, tmp=tmp_path
    )
    assert ep(cfg, "web").address == ":9000"
    assert ep(cfg, "websecure").address == "127.0.0.1:8443" and cfg.log.level == "DEBUG"


def test_flag_beats_file_and_keeps_other_entry_points(tmp_path):
    cfg = load(["--entrypoints.web.address=:7000"], files={"dockroute.yml": YAML}, tmp=tmp_path)
    assert ep(cfg, "web").address == ":7000" and ep(cfg, "websecure").address == "127.0.0.1:8443"


def test_flag_beats_env():
    cfg = load(["--log.level", "ERROR"], env={"DOCKROUTE_LOG_LEVEL": "WARN"})
    assert cfg.log.level == "ERROR"
    assert load(env={"DOCKROUTE_LOG_LEVEL": "WARN"}).log.level == "WARN"


def test_dockroute_env_beats_traefik_env():
    env = {"TRAEFIK_LOG_LEVEL": "DEBUG", "DOCKROUTE_LOG_LEVEL": "ERROR", "TRAEFIK_LOG_FORMAT": "json"}
    cfg = load(env=env)
    assert (cfg.log.level, cfg.log.format) == ("ERROR", "json")


def test_flag_can_switch_off_file_section(tmp_path):
    text = "accessLog:\n  filePath: /tmp/a.log\n"
    assert load(files={"dockroute.yml": text}, tmp=tmp_path).access_log is not None
    assert load(["--accesslog=false"], files={"dockroute.yml": text}, tmp=tmp_path).access_log is None


# -- flags and variables ------------------------------------------------------------------------------


def test_flag_forms():
    cfg = load(
        [
            "--entryPoints.web.address",
            ":81",
            "--providers.file.filename=f.yml",
            "--providers.file.watch=false",
        ]
    )
    assert ep(cfg, "web").address == ":81"
    assert cfg.file_provider is not None and cfg.file_provider.watch is False
    cfg = load(["--providers.file.filename=f.yml", "--providers.file.watch", "--log.level=debug"])
    assert cfg.file_provider is not None and cfg.file_provider.watch is True and cfg.log.level == "DEBUG"


def test_bare_bool_flag_means_true():
    cfg = load(["--entrypoints.web.forwardedheaders.insecure", "--log.level=INFO"])
    assert ep(cfg, "web").forwarded_insecure is True
    cfg = load(["--serverstransport.insecureskipverify"])
    assert cfg.transport.insecure_skip_verify is True


def test_lists_comma_separated_and_indexed():
    cfg = load(["--entrypoints.web.forwardedheaders.trustedips=1.2.3.4, 10.0.0.0/8"])
    assert ep(cfg, "web").trusted_ips == ("1.2.3.4", "10.0.0.0/8")
    cfg = load(
        [
            "--entrypoints.web.forwardedheaders.trustedips[1]=10.0.0.0/8",
            "--entrypoints.web.forwardedheaders.trustedips[0]=1.2.3.4",
        ]
    )
    assert ep(cfg, "web").trusted_ips == ("1.2.3.4", "10.0.0.0/8")
    env = {"DOCKROUTE_SERVERSTRANSPORT_ROOTCAS_0": "/a.pem", "DOCKROUTE_SERVERSTRANSPORT_ROOTCAS_1": "/b.pem"}
    assert load(env=env).transport.root_cas == ("/a.pem", "/b.pem")


def test_env_names_are_traefik_style():
    env = {
        "DOCKROUTE_ENTRYPOINTS_WEB_ADDRESS": ":8081",
        "DOCKROUTE_PROVIDERS_DOCKER_EXPOSEDBYDEFAULT": "false",
        "DOCKROUTE_PROVIDERS_DOCKER_TLS_CA": "/ca.pem",
        "TRAEFIK_SERVERSTRANSPORT_MAXIDLECONNSPERHOST": "7",
        "UNRELATED_VARIABLE": "x",
    }
    cfg = load(env=env)
    assert ep(cfg, "web").address == ":8081"
    d = cfg.docker_provider
    assert d is not None and d.explicit is True and d.exposed_by_default is False and d.tls_ca == "/ca.pem"
    assert cfg.transport.max_idle_conns_per_host == 7


def test_env_entry_point_name_with_underscore():
    cfg = load(env={"DOCKROUTE_ENTRYPOINTS_WEB_SECURE_ADDRESS": ":8443"})
    assert [(e.name, e.address) for e in cfg.entry_points] == [("web_secure", ":8443")]


def test_kubernetes_service_links_are_not_config():
    cfg = load(env={"DOCKROUTE_PORT": "tcp://10.0.0.1:80", "TRAEFIK_SERVICE_HOST": "10.0.0.1"})
    assert ep(cfg, "web").address == ":80"


def test_case_insensitive_keys_everywhere(tmp_path):
    text = (
        "ENTRYPOINTS:\n  Web:\n    ADDRESS: ':8080'\n    forwardedheaders: {TRUSTEDIPS: ['10.0.0.0/8']}\n"
        "Log: {LEVEL: warn}\n"
    )
    cfg = load(["--EntryPoints.WEB.Address=:9090"], files={"dockroute.yml": text}, tmp=tmp_path)
    assert [(e.name, e.address) for e in cfg.entry_points] == [("Web", ":9090")]
    assert cfg.entry_points[0].trusted_ips == ("10.0.0.0/8",) and cfg.log.level == "WARN"


def test_every_owned_key(tmp_path):
    text = """
entryPoints:
  web:
    address: ":80"
    http: {redirections: {entryPoint: {to: websecure, scheme: https, permanent: false, priority: 10}}}
  websecure:
    address: "[::1]:443"
    transport:
      respondingTimeouts: {readTimeout: 1m30s, writeTimeout: 500ms, idleTimeout: 1h}
      lifeCycle: {graceTimeOut: 3, requestAcceptGraceTimeout: "2s"}
providers:
  providersThrottleDuration: 1s
  docker:
    endpoint: tcp://docker:2376
    exposedByDefault: false
    defaultRule: Host(`{{ .Name }}.example`)
    network: proxy
    useBindPortIP: true
    watch: false
    constraints: Label(`a`, `b`)
    allowEmptyServices: true
    tls: {ca: /ca, cert: /cert, key: /key}
serversTransport:
  forwardingTimeouts: {dialTimeout: 5s, responseHeaderTimeout: 10s, idleConnTimeout: 1m}
  maxIdleConnsPerHost: 5
  insecureSkipVerify: true
  rootCAs: [/a.pem]
log: {level: ERROR, format: json, filePath: /var/log/d.log}
accessLog: {filePath: /var/log/a.log, format: json}
"""
    cfg = load(files={"dockroute.yml": text}, tmp=tmp_path)
    red = ep(cfg, "web").redirection
    assert red is not None and (red.to, red.scheme, red.permanent, red.priority) == (
        "websecure",
        "https",
        False,
        10,
    )
    s = ep(cfg, "websecure")
    assert s.address == "[::1]:443"
    assert (s.read_timeout, s.write_timeout, s.idle_timeout) == (90.0, 0.5, 3600.0)
    assert (s.grace_timeout, s.request_accept_grace_timeout) == (3.0, 2.0)
    d = cfg.docker_provider
    assert d is not None
    assert (d.endpoint, d.exposed_by_default, d.default_rule, d.network) == (
        "tcp://docker:2376",
        False,
        "Host(`{{ .Name }}.example`)",
        "proxy",
    )
    assert (d.use_bind_port_ip, d.watch, d.constraints, d.allow_empty_services) == (
        True,
        False,
        "Label(`a`, `b`)",
        True,
    )
    assert (d.tls_ca, d.tls_cert, d.tls_key) == ("/ca", "/cert", "/key")
    t = cfg.transport
    assert (t.dial_timeout, t.response_header_timeout, t.idle_conn_timeout) == (5.0, 10.0, 60.0)
    assert (t.max_idle_conns_per_host, t.insecure_skip_verify, t.root_cas) == (5, True, ("/a.pem",))
    assert (cfg.log.level, cfg.log.format, cfg.log.file_path) == ("ERROR", "json", "/var/log/d.log")
    assert cfg.access_log is not None and (cfg.access_log.file_path, cfg.access_log.format) == (
        "/var/log/a.log",
        "json",
    )
    assert cfg.providers_throttle_duration == 1.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), ("42", 42.0), ("0", 0.0)],
)
def test_durations(text, seconds):
    cfg = load([f"--serverstransport.forwardingtimeouts.dialtimeout={text}"])
    assert cfg.transport.dial_timeout == seconds


def test_log_levels_map_to_python():
    assert load(["--log.level=warn"]).log.python_level == logging.WARNING
    assert load(["--log.level=FATAL"]).log.python_level == logging.CRITICAL


# -- ignored sections, certificatesResolvers ----------------------------------------------------------


def test_unsupported_traefik_sections_are_listed(tmp_path):
    text = "tracing: {serviceName: x}\nmetrics:\n  statsD: {}\nproviders:\n  kubernetesCRD: {}\n"
    cfg = load(
        ["--hostresolver", "--global.checknewversion=false"], files={"dockroute.yml": text}, tmp=tmp_path
    )
    assert set(cfg.ignored) == {
        "tracing",
        "metrics.statsD",
        "hostResolver",
        "global",
        "providers.kubernetesCRD",
    }
    assert load(["--tracing=false"]).ignored == ()


def test_certificates_resolvers_from_a_file_and_flags_are_typed_and_read_only(tmp_path):
    """File and flags merge key by key into the one typed reading of ``certificatesResolvers`` (there is
    no raw copy): the flag switches tlsChallenge on beside the file's keys, the file's switched-off
    httpChallenge is no challenge, and the app cannot change the mapping."""
    text = (
        "certificatesResolvers:\n  le:\n    acme:\n      email: a@example.com\n      storage: acme.json\n"
        "      httpChallenge: false\n"
    )
    cfg = load(["--certificatesresolvers.le.acme.tlschallenge"], files={"dockroute.yml": text}, tmp=tmp_path)
    assert not hasattr(cfg, "certificates_resolvers")
    assert cfg.resolvers["le"] == ResolverSettings(
        email="a@example.com", storage="acme.json", tls_challenge=True
    )
    assert "certificatesResolvers" not in cfg.ignored
    with pytest.raises(TypeError):
        cfg.resolvers["x"] = ResolverSettings()  # type: ignore[index]


# -- redirections -------------------------------------------------------------------------------------


def test_redirect_to_entry_point_name_any_case():
    cfg = load(
        [
            "--entrypoints.web.address=:80",
            "--entrypoints.websecure.address=:443",
            "--entrypoints.web.http.redirections.entrypoint.to=WebSecure",
        ]
    )
    red = ep(cfg, "web").redirection
    assert red is not None and red.to == "websecure" and red.scheme == "https" and red.permanent is True


def test_redirect_to_address():
    cfg = load(["--entrypoints.web.http.redirections.entrypoint.to=:443"])
    red = ep(cfg, "web").redirection
    assert red is not None and red.to == ":443"


def test_redirect_to_unknown_entry_point_is_an_error():
    e = error(["--entrypoints.web.http.redirections.entrypoint.to=websecure"])
    assert e.key == "entryPoints.web.http.redirections.entryPoint.to" and "websecure" in str(e)


def test_redirect_scheme_checked():
    e = error(
        [
            "--entrypoints.web.http.redirections.entrypoint.to=:443",
            "--entrypoints.web.http.redirections.entrypoint.scheme=ftp",
        ]
    )
    assert e.key == "entryPoints.web.http.redirections.entryPoint.scheme"


# -- refusals -----------------------------------------------------------------------------------------


def test_unknown_key_in_file_with_suggestion(tmp_path):
    e = error(files={"dockroute.yml": "entryPoints:\n  web:\n    adress: ':80'\n"}, tmp=tmp_path)
    assert e.key == "entryPoints.web.adress"
    assert str(e).startswith("entryPoints.web.adress: unknown key (did you mean 'address'?)")


def test_unknown_top_level_section(tmp_path):
    e = error(files={"dockroute.yml": "bogus: 1\n"}, tmp=tmp_path)
    assert e.key == "bogus" and "unknown key" in str(e)


def test_unknown_provider_is_an_error():
    e = error(["--providers.dockr.endpoint=x"])
    assert e.key == "providers.dockr" and "did you mean 'docker'" in str(e)


def test_unknown_flag_and_env_name_their_source():
    e = error(["--log.levle=DEBUG"])
    assert e.key == "log.levle" and "--log.levle" in str(e) and "did you mean 'level'" in str(e)
    e = error(env={"DOCKROUTE_LOG_LEVL": "DEBUG"})
    assert e.key == "log.levl" and "DOCKROUTE_LOG_LEVL" in str(e)


def test_key_below_a_leaf_is_unknown():
    assert error(["--log.level.deep=1"]).key == "log.level.deep"


def test_positional_argument_refused():
    assert "stray" in str(error(["stray"]))


def test_missing_flag_value():
    e = error(["--entrypoints.web.address"])
    assert e.key == "entryPoints.web.address" and "missing value" in str(e)


def test_same_key_twice_in_file(tmp_path):
    e = error(files={"dockroute.yml": "log: {level: INFO, LEVEL: DEBUG}\n"}, tmp=tmp_path)
    assert e.key == "log.LEVEL" or e.key == "log.level"


def test_wrong_type_for_address(tmp_path):
    e = error(files={"dockroute.yml": "entryPoints:\n  web:\n    address: 12\n"}, tmp=tmp_path)
    assert e.key == "entryPoints.web.address"
    assert str(e).startswith("entryPoints.web.address: expected a string like ':80'") and "got 12" in str(e)


@pytest.mark.parametrize(
    "address", ["80", "web:", ":99999", "1:2:3:80", "[zz]:80", "host name:80", ":53/sctp", ":53/tcp/udp"]
)
def test_bad_addresses(address):
    assert error([f"--entrypoints.web.address={address}"]).key == "entryPoints.web.address"


@pytest.mark.parametrize(
    "address", [":80", "0.0.0.0:8080", "[::1]:80", "127.0.0.1:0", "localhost:80", ":80/tcp"]
)
def test_good_addresses(address):
    assert ep(load([f"--entrypoints.web.address={address}"]), "web").address == address.removesuffix("/tcp")


def test_entry_point_without_address():
    e = error(["--entrypoints.other.forwardedheaders.insecure"])
    assert e.key == "entryPoints.other.address"


def test_wrong_types(tmp_path):
    assert (
        error(["--providers.file.filename=f", "--providers.file.watch=maybe"]).key == "providers.file.watch"
    )
    assert (
        error(["--serverstransport.maxidleconnsperhost=many"]).key == "serversTransport.maxIdleConnsPerHost"
    )
    huge = "9" * 5000  # beyond int()'s digit limit: still one clear error, not a crash
    e = error([f"--serverstransport.maxidleconnsperhost={huge}"])
    assert e.key == "serversTransport.maxIdleConnsPerHost"
    assert error([f"--entrypoints.web.address=:{huge}"]).key == "entryPoints.web.address"
    e = error(files={"dockroute.yml": "log: [1]\n"}, tmp=tmp_path)
    assert e.key == "log"
    e = error(
        files={
            "dockroute.yml": "entryPoints:\n  web:\n    address: ':1'\n"
            "    forwardedHeaders: {trustedIPs: [3]}\n"
        },
        tmp=tmp_path,
    )
    assert e.key == "entryPoints.web.forwardedHeaders.trustedIPs[0]"


def test_bad_log_level_and_format():
    e = error(["--log.level=verbose"])
    assert e.key == "log.level" and "verbose" in str(e)
    assert error(["--log.format=xml"]).key == "log.format"
    assert error(["--accesslog.format=xml"]).key == "accessLog.format"


@pytest.mark.parametrize("value", ["-5s", "10x", "s", "true"])
def test_bad_durations(value):
    e = error([f"--entrypoints.web.transport.respondingtimeouts.idletimeout={value}"])
    assert e.key == "entryPoints.web.transport.respondingTimeouts.idleTimeout"


def test_negative_duration_message():
    assert "negative" in str(error(["--serverstransport.forwardingtimeouts.dialtimeout=-1s"]))


def test_bad_cidr():
    e = error(["--entrypoints.web.forwardedheaders.trustedips=10.0.0.0/8,10.0.0.0/33"])
    assert e.key == "entryPoints.web.forwardedHeaders.trustedIPs[1]" and "10.0.0.0/33" in str(e)
    assert error(["--entrypoints.web.forwardedheaders.trustedips=nope"]).key.endswith("trustedIPs[0]")


def test_file_provider_needs_exactly_one_of_filename_and_directory():
    e = error(["--providers.file.filename=a", "--providers.file.directory=b"])
    assert e.key == "providers.file" and "not both" in str(e)
    assert error(["--providers.file.watch"]).key == "providers.file"


def test_docker_endpoint_must_be_a_url():
    assert error(["--providers.docker.endpoint=/var/run/docker.sock"]).key == "providers.docker.endpoint"


def test_all_entry_points_switched_off():
    assert error(["--entrypoints.web=false"]).key == "entryPoints"


def test_top_level_must_be_a_mapping(tmp_path):
    assert "mapping" in str(error(files={"dockroute.yml": "- a\n"}, tmp=tmp_path))


def test_traefik_keys_not_acted_on_yet_are_accepted_and_listed(tmp_path):
    """A real Traefik static file (proxy protocol, access-log filters, log options) loads unchanged, and
    every key dockroute does not act on is listed by its path for the warning at start; truly unknown
    keys next to them are still refused. Entry-point TLS and proxyProtocol are acted on: not listed."""
    cfg = tmp_path / "traefik.yml"
    cfg.write_text(
        "entryPoints:\n"
        "  websecure:\n"
        "    address: ':443'\n"
        "    http:\n"
        "      tls: {}\n"
        "      middlewares: []\n"
        "    proxyProtocol: {insecure: true}\n"
        "accessLog:\n"
        "  filters: {statusCodes: ['400-499']}\n"
        "  bufferingSize: 100\n"
        "  dualOutput: true\n"
        "  otlp: {http: {}}\n"
        "log: {noColor: true, level: INFO}\n"
        "providers:\n"
        "  docker: {tls: {insecureSkipVerify: true}}\n"  # acted on: not listed
    )
    static = load_static(["--entrypoints.websecure.http.tls.options=modern"], {}, config_file=str(cfg))
    assert [ep.name for ep in static.entry_points] == ["websecure"]
    assert static.access_log is not None
    assert static.ignored == ("accessLog.dualOutput", "accessLog.otlp")
    # Set by a flag too. log.noColor is what dockroute always does: checked, not listed.
    flags = ["--accesslog.filters.statuscodes=400-499", "--accesslog.dualoutput=true", "--log.nocolor"]
    assert load(flags).ignored == ("accessLog.dualOutput",)
    assert error(["--log.nocolor=maybe"]).key == "log.noColor"
    cfg.write_text("entryPoints:\n  web:\n    address: ':80'\n    http:\n      tlss: {}\n")
    with pytest.raises(StaticConfigError) as err:
        load_static([], {}, config_file=str(cfg))
    assert "entryPoints.web.http.tlss" in str(err.value)


# -- one boolean parser (Go's strconv.ParseBool) for flags, variables and files ----------------------


def test_go_boolean_words_from_flags():
    cfg = load(["--entrypoints.web.forwardedheaders.insecure=T", "--serverstransport.insecureskipverify=1"])
    assert ep(cfg, "web").forwarded_insecure is True and cfg.transport.insecure_skip_verify is True
    cfg = load(["--providers.file.filename=f.yml", "--providers.file.watch=F"])
    assert cfg.file_provider is not None and cfg.file_provider.watch is False
    # A whole section switched by a boolean word: `tracing` is accepted (and listed as not supported) or off.
    assert load(["--tracing=T"]).ignored == ("tracing",) and load(["--tracing=0"]).ignored == ()


def test_go_boolean_words_from_the_environment():
    env = {"DOCKROUTE_PROVIDERS_DOCKER_EXPOSEDBYDEFAULT": "0", "TRAEFIK_PROVIDERS_DOCKER_USEBINDPORTIP": "t"}
    d = load(env=env).docker_provider
    assert d is not None and d.exposed_by_default is False and d.use_bind_port_ip is True


def test_go_boolean_words_from_a_file(tmp_path):
    text = (
        'providers:\n  docker:\n    exposedByDefault: "False"\n    watch: "f"\n'
        'serversTransport:\n  insecureSkipVerify: "True"\n'
    )
    cfg = load(files={"dockroute.yml": text}, tmp=tmp_path)
    d = cfg.docker_provider
    assert d is not None and d.exposed_by_default is False and d.watch is False
    assert cfg.transport.insecure_skip_verify is True
    toml = '[serversTransport]\ninsecureSkipVerify = "1"\n'
    assert load(files={"dockroute.toml": toml}, tmp=tmp_path).transport.insecure_skip_verify is True


def test_numbers_in_a_file_are_booleans_as_their_text(tmp_path):
    """Traefik's file loader reads a YAML/TOML number as its text, so 1 and 0 are booleans, 2 is not."""
    text = "providers:\n  docker:\n    exposedByDefault: 0\nserversTransport: {insecureSkipVerify: 1}\n"
    cfg = load(files={"dockroute.yml": text}, tmp=tmp_path)
    assert cfg.docker_provider is not None and cfg.docker_provider.exposed_by_default is False
    assert cfg.transport.insecure_skip_verify is True
    toml = tmp_path / "two.toml"
    toml.write_text("[serversTransport]\ninsecureSkipVerify = 2\n")
    e = error(config_file=str(toml))
    assert e.key == "serversTransport.insecureSkipVerify" and "got 2" in str(e) and BOOL_WORDS in str(e)


@pytest.mark.parametrize("word", ["yes", "on", "tRUE", "2", ""])
def test_non_boolean_refused_naming_key_and_accepted_words(word):
    e = error([f"--entrypoints.web.forwardedheaders.insecure={word}"])
    assert e.key == "entryPoints.web.forwardedHeaders.insecure"
    assert repr(word) in str(e) and BOOL_WORDS in str(e) and "--entrypoints.web.forwardedheaders" in str(e)


def test_non_boolean_refused_from_environment_and_file(tmp_path):
    e = error(env={"DOCKROUTE_PROVIDERS_DOCKER_EXPOSEDBYDEFAULT": "yes"})
    assert e.key == "providers.docker.exposedByDefault" and BOOL_WORDS in str(e)
    assert "DOCKROUTE_PROVIDERS_DOCKER_EXPOSEDBYDEFAULT" in str(e)
    e = error(files={"dockroute.yml": "serversTransport: {insecureSkipVerify: 'nope'}\n"}, tmp=tmp_path)
    assert e.key == "serversTransport.insecureSkipVerify" and BOOL_WORDS in str(e)
    e = error(["--accesslog=yes"])
    assert e.key == "accessLog" and BOOL_WORDS in str(e)


# -- serversTransport: every Traefik key read, SPIFFE refused -----------------------------------------


def test_servers_transport_is_the_model_type():
    flags = ["--serverstransport.rootcas=/a.pem,/b.pem", "--serverstransport.maxidleconnsperhost=7"]
    t = load(flags).transport
    assert type(t) is ServersTransport
    assert t == replace(ServersTransport(), root_cas=("/a.pem", "/b.pem"), max_idle_conns_per_host=7)


def test_max_idle_conns_per_host_zero_and_negative_as_go_reads_them():
    """Go's transport: 0 means its default of 2 idle connections per host; a negative value keeps none."""
    assert load(["--serverstransport.maxidleconnsperhost=0"]).transport.max_idle_conns_per_host == 2
    assert load(["--serverstransport.maxidleconnsperhost=-1"]).transport.max_idle_conns_per_host == 0


def test_spiffe_is_refused_by_name(tmp_path):
    text = "serversTransport:\n  spiffe:\n    ids: ['spiffe://example.org/a']\n    trustDomain: example.org\n"
    e = error(files={"dockroute.yml": text}, tmp=tmp_path)
    assert e.key == "serversTransport.spiffe" and "SPIFFE" in str(e) and "dockroute.yml" in str(e)
    e = error(["--serverstransport.spiffe.trustdomain=example.org"])
    assert e.key == "serversTransport.spiffe" and "--serverstransport.spiffe.trustdomain" in str(e)
    assert error(["--serverstransport.spiffe"]).key == "serversTransport.spiffe"
    empty = error(files={"dockroute.yml": "serversTransport:\n  spiffe:\n"}, tmp=tmp_path)
    assert empty.key == "serversTransport.spiffe"
    assert load(["--serverstransport.spiffe=false"]).transport == ServersTransport()


@pytest.mark.parametrize(
    ("flag", "where"),
    [
        ("--serverstransport.servername=backend.example", "http.serversTransports.<name>.serverName"),
        ("--serverstransport.certificates=/c.pem", "http.serversTransports.<name>.certificates"),
        ("--serverstransport.peercerturi=spiffe://x", "http.serversTransports.<name>.peerCertURI"),
        (
            "--serverstransport.forwardingtimeouts.pingtimeout=5s",
            "http.serversTransports.<name>.forwardingTimeouts.pingTimeout",
        ),
    ],
)
def test_named_transport_keys_are_not_static_keys(flag, where):
    """Traefik's static serversTransport has no serverName, certificates, peerCertURI or HTTP/2 pings:
    they belong to a named transport in the dynamic configuration, and the message says where."""
    e = error([flag])
    assert e.key.lower() == flag[2:].partition("=")[0]
    assert f"unknown key: {where.rpartition('.')[2]} belongs to a named transport ({where}," in str(e)


@pytest.mark.parametrize("value", [".inf", ".nan", "1.0", "2"])
def test_a_number_that_is_not_1_or_0_in_the_file_is_refused_as_a_boolean_not_a_crash(tmp_path, value):
    f = tmp_path / "dockroute.yml"
    f.write_text(f"serversTransport:\n  insecureSkipVerify: {value}\n")
    with pytest.raises(StaticConfigError) as e:
        load_static(["--config", str(f)], {}, search_dirs=())
    assert "serversTransport.insecureSkipVerify" in str(e.value)


# -- the Docker provider nobody asked for -------------------------------------------------------------


def test_zero_config_docker_is_opt_in_and_an_explicit_one_keeps_traefiks_default(tmp_path):
    """No provider configured anywhere: the implicit Docker provider routes only opted-in containers.
    Asking for providers.docker (however) keeps Traefik's exposedByDefault: true."""
    implicit = load(["--entrypoints.web.address=:8080", "--log.level=DEBUG"]).docker_provider
    assert implicit is not None and implicit.explicit is False and implicit.exposed_by_default is False
    for cfg in (
        load(["--providers.docker"]),
        load(env={"TRAEFIK_PROVIDERS_DOCKER": "true"}),
        load(files={"traefik.yml": "providers:\n  docker: {}\n"}, tmp=tmp_path),
        load(["--providers.docker.network=proxy"]),
    ):
        d = cfg.docker_provider
        assert d is not None and d.explicit is True and d.exposed_by_default is True


def test_as_default_marks_the_entry_points_of_routers_naming_none():
    argv = ("--entrypoints.web.address=:80", "--entrypoints.websecure.address=:443")
    cfg = load((*argv, "--entrypoints.websecure.asdefault"))
    assert [(ep.name, ep.as_default) for ep in cfg.entry_points] == [("web", False), ("websecure", True)]
    assert not any("asDefault" in key for key in cfg.ignored)
