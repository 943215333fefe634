"""discover.file_provider: loading YAML/TOML files and directories, errors with lines, watching."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from discover.file_provider import FileProvider
from discover.model import CertificateFile, DynamicConfig, Server, ServersTransport
from discover.parse import ConfigError

LOGGER = "test.file_provider"

YAML = """\
http:
  routers:
    app:
      rule: Host(`app.example`)
      service: app
      entryPoints: [web]
      middlewares: [https]
  services:
    app:
      loadBalancer:
        servers:
          - url: http://10.0.0.1:8080
  middlewares:
    https:
      redirectScheme:
        scheme: https
tls:
  certificates:
    - certFile: /c.pem
      keyFile: /k.pem
"""

TOML = """\
[http.routers.app]
rule = "Host(`app.example`)"
service = "app"
entryPoints = ["web"]

[[http.services.app.loadBalancer.servers]]
url = "http://10.0.0.1:8080"
weight = 2
"""


def write(path: Path, text: str) -> None:
    """Write and move mtime clearly forward, so that a change is seen whatever the clock granularity."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    after = max(path.stat().st_mtime_ns, before + 1_000_000_000)
    os.utime(path, ns=(after, after))


def router_yaml(*names: str) -> str:
    routers = "".join(f"    {n}:\n      rule: Host(`{n}.example`)\n      service: s\n" for n in names)
    return (
        "http:\n  routers:\n"
        + routers
        + "  services:\n    s:\n      loadBalancer:\n        servers:\n          - url: http://b\n"
    )


def load_error(provider: FileProvider) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        provider.load()
    return info.value


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(provider: FileProvider, published: list[DynamicConfig]):
    task = asyncio.get_running_loop().create_task(provider.run(published.append))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def provider(tmp_path: Path, name: str = "dyn.yml", **kw) -> FileProvider:
    kw.setdefault("poll_interval", 0.01)
    kw.setdefault("logger", logging.getLogger(LOGGER))
    return FileProvider(filename=str(tmp_path / name), **kw)


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.ERROR]


# -- loading ------------------------------------------------------------------------------------------


def test_load_yaml(tmp_path):
    write(tmp_path / "dyn.yml", YAML)
    cfg = provider(tmp_path).load()
    assert cfg.routers["app"].rule == "Host(`app.example`)"
    assert cfg.routers["app"].middlewares == ("https",)
    assert cfg.services["app"].load_balancer.servers == (Server("http://10.0.0.1:8080"),)
    assert cfg.middlewares["https"].type == "redirectScheme"
    assert cfg.tls.certificates == (CertificateFile("/c.pem", "/k.pem"),)


def test_load_toml(tmp_path):
    write(tmp_path / "dyn.toml", TOML)
    cfg = provider(tmp_path, "dyn.toml").load()
    assert cfg.routers["app"].entry_points == ("web",)
    assert cfg.services["app"].load_balancer.servers == (Server("http://10.0.0.1:8080", 2),)


TRANSPORT_YAML = """\
http:
  services:
    app:
      loadBalancer:
        serversTransport: selfsigned
        servers:
          - url: https://10.0.0.1:8443
  serversTransports:
    selfsigned:
      serverName: backend.internal
      insecureSkipVerify: true
      rootCAs: [/ca.pem]
      certificates:
        - certFile: /client.pem
          keyFile: /client.key
      maxIdleConnsPerHost: 4
      forwardingTimeouts:
        dialTimeout: 2s
        responseHeaderTimeout: 5s
        idleConnTimeout: 1m
      peerCertURI: spiffe://example.org/app
"""

TRANSPORT_TOML = """\
[http.services.app.loadBalancer]
serversTransport = "selfsigned"
[[http.services.app.loadBalancer.servers]]
url = "https://10.0.0.1:8443"

[http.serversTransports.selfsigned]
serverName = "backend.internal"
insecureSkipVerify = true
rootCAs = ["/ca.pem"]
maxIdleConnsPerHost = 4
peerCertURI = "spiffe://example.org/app"
[[http.serversTransports.selfsigned.certificates]]
certFile = "/client.pem"
keyFile = "/client.key"
[http.serversTransports.selfsigned.forwardingTimeouts]
dialTimeout = "2s"
responseHeaderTimeout = "5s"
idleConnTimeout = "1m"
"""

SELFSIGNED = ServersTransport(
    dial_timeout=2.0,
    response_header_timeout=5.0,
    idle_conn_timeout=60.0,
    max_idle_conns_per_host=4,
    insecure_skip_verify=True,
    root_cas=("/ca.pem",),
    server_name="backend.internal",
    certificates=(CertificateFile("/client.pem", "/client.key"),),
    peer_cert_uri="spiffe://example.org/app",
)


@pytest.mark.parametrize(("name", "text"), [("dyn.yml", TRANSPORT_YAML), ("dyn.toml", TRANSPORT_TOML)])
def test_servers_transports_from_yaml_and_toml(tmp_path, caplog, name, text):
    write(tmp_path / name, text)
    with caplog.at_level(logging.WARNING, LOGGER):
        cfg = provider(tmp_path, name).load()
    assert dict(cfg.servers_transports) == {"selfsigned": SELFSIGNED}
    assert cfg.services["app"].load_balancer.servers_transport == "selfsigned"
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == []


def test_servers_transport_error_has_the_line_of_the_key(tmp_path):
    write(
        tmp_path / "dyn.yml", TRANSPORT_YAML.replace("insecureSkipVerify: true", "insecureSkipVerify: maybe")
    )
    err = load_error(provider(tmp_path))
    assert err.path == "http.serversTransports.selfsigned.insecureSkipVerify"
    assert err.line == 11 and "true or false" in err.message


def test_directory_merges_servers_transports_and_resolves_references_across_files(tmp_path, caplog):
    services, transports = TRANSPORT_YAML.split("  serversTransports:\n")
    write(tmp_path / "a-services.yml", services)
    write(tmp_path / "b-transports.yml", "http:\n  serversTransports:\n" + transports)
    write(tmp_path / "c-again.yml", "http:\n  serversTransports:\n    selfsigned: {}\n")
    with caplog.at_level(logging.WARNING, LOGGER):
        cfg = FileProvider(directory=str(tmp_path), logger=logging.getLogger(LOGGER)).load()
    assert dict(cfg.servers_transports) == {"selfsigned": SELFSIGNED}
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(messages) == 1  # the duplicate; the reference across files is not reported missing
    assert "serversTransport 'selfsigned'" in messages[0] and "b-transports.yml" in messages[0]


def test_empty_files_are_empty_configs(tmp_path):
    write(tmp_path / "dyn.yml", "# nothing yet\n")
    write(tmp_path / "dyn.toml", "")
    assert provider(tmp_path).load() == DynamicConfig()
    assert provider(tmp_path, "dyn.toml").load() == DynamicConfig()


def test_yaml_semantic_error_has_the_line_of_the_key(tmp_path):
    write(tmp_path / "dyn.yml", YAML.replace("http://10.0.0.1:8080", "10.0.0.1:8080"))
    err = load_error(provider(tmp_path))
    assert err.path == "http.services.app.loadBalancer.servers[0].url"
    assert err.line == 12
    assert err.file == str(tmp_path / "dyn.yml")
    assert str(err).startswith(f"{tmp_path / 'dyn.yml'}:12: http.services.app.loadBalancer.servers[0].url: ")


def test_yaml_error_line_with_keys_in_another_case(tmp_path):
    text = YAML.replace("HTTP", "http").replace("      rule: Host", "      PRIORITY: x\n      Rule: Host")
    write(tmp_path / "dyn.yml", text.replace("http:\n  routers:", "Http:\n  Routers:"))
    err = load_error(provider(tmp_path))
    assert err.path == "http.routers.app.priority"
    assert err.keys == ("Http", "Routers", "app", "PRIORITY")
    assert err.line == 4


def test_yaml_missing_key_points_at_its_parent(tmp_path):
    write(tmp_path / "dyn.yml", YAML.replace("      rule: Host(`app.example`)\n", ""))
    err = load_error(provider(tmp_path))
    assert err.path == "http.routers.app.rule"
    assert err.line == 3  # "app:" under routers


def test_yaml_syntax_error_has_the_line(tmp_path):
    write(tmp_path / "dyn.yml", "http:\n  routers:\n    app:\n      rule: [unclosed\n      service: x\n")
    err = load_error(provider(tmp_path))
    assert err.line is not None and err.line >= 4
    assert "invalid YAML" in err.message
    assert str(err).startswith(f"{tmp_path / 'dyn.yml'}:{err.line}: ")


def test_yaml_tab_indentation_error_line(tmp_path):
    write(tmp_path / "dyn.yml", "http:\n  routers:\n\tapp: {}\n")
    assert load_error(provider(tmp_path)).line == 3


def test_toml_syntax_error_has_the_line(tmp_path):
    write(tmp_path / "dyn.toml", '[http.routers.app]\nrule = "x"\nservice =\n')
    err = load_error(provider(tmp_path, "dyn.toml"))
    assert err.line == 3
    assert "invalid TOML" in err.message and "(at line" not in err.message


def test_toml_semantic_error_names_the_file(tmp_path):
    write(tmp_path / "dyn.toml", TOML.replace("weight = 2", 'weight = "heavy"'))
    err = load_error(provider(tmp_path, "dyn.toml"))
    assert err.path == "http.services.app.loadBalancer.servers[0].weight"
    assert err.file == str(tmp_path / "dyn.toml")
    assert str(tmp_path / "dyn.toml") in str(err)


def test_missing_and_undecodable_files(tmp_path):
    err = load_error(provider(tmp_path, "absent.yml"))
    assert err.file == str(tmp_path / "absent.yml") and "cannot read" in err.message
    (tmp_path / "latin1.yml").write_bytes(b"http:\n  routers: {caf\xe9: 1}\n")
    assert "UTF-8" in load_error(provider(tmp_path, "latin1.yml")).message


def test_load_logs_warnings(tmp_path, caplog):
    write(
        tmp_path / "dyn.yml",
        "tcp:\n  services: {s: {loadBalancer: {servers: [{address: 'a..b:1'}]}}}\n"
        + router_yaml("a").replace("service: s", "service: nope"),
    )
    with caplog.at_level(logging.WARNING, LOGGER):
        provider(tmp_path).load()
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert any("tcp.services.s.loadBalancer.servers[0]" in m and "left out" in m for m in messages)
    assert any("'nope'" in m and "http.routers.a.service" in m for m in messages)


def test_a_filename_or_a_directory_is_needed():
    with pytest.raises(ValueError):
        FileProvider()


# -- directories --------------------------------------------------------------------------------------


def test_directory_merges_files_recursively(tmp_path, caplog):
    write(
        tmp_path / "routers.yml", "http:\n  routers:\n    app:\n      rule: Host(`a`)\n      service: app\n"
    )
    write(
        tmp_path / "sub" / "deeper" / "services.TOML",
        '[[http.services.app.loadBalancer.servers]]\nurl = "http://b:80"\n',
    )
    write(tmp_path / "sub" / "mw.yaml", "http:\n  middlewares:\n    gz:\n      compress: {}\n")
    write(tmp_path / "notes.txt", "not: [config")
    write(tmp_path / ".editor-swap.yml", "broken: [")
    with caplog.at_level(logging.WARNING, LOGGER):
        cfg = FileProvider(directory=str(tmp_path), logger=logging.getLogger(LOGGER)).load()
    assert set(cfg.routers) == {"app"}
    assert set(cfg.services) == {"app"}
    assert set(cfg.middlewares) == {"gz"}
    # the router's service is in another file: no "missing service" warning
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == []


def test_directory_duplicate_names_keep_the_first_and_name_both_files(tmp_path, caplog):
    write(tmp_path / "a.yml", router_yaml("app"))
    write(tmp_path / "b.yml", router_yaml("app").replace("Host(`app.example`)", "Host(`other`)"))
    with caplog.at_level(logging.WARNING, LOGGER):
        cfg = FileProvider(directory=str(tmp_path), logger=logging.getLogger(LOGGER)).load()
    assert cfg.routers["app"].rule == "Host(`app.example`)"
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    dup = [m for m in messages if "router 'app'" in m]
    assert len(dup) == 1
    assert str(tmp_path / "a.yml") in dup[0] and str(tmp_path / "b.yml") in dup[0]
    assert any("service 's'" in m for m in messages)  # the service is duplicated too


def test_directory_with_a_broken_file_fails_naming_it(tmp_path):
    write(tmp_path / "a.yml", router_yaml("app"))
    write(tmp_path / "b.yml", "http:\n  routers:\n    x:\n      rule: r\n")
    err = load_error(FileProvider(directory=str(tmp_path)))
    assert err.file == str(tmp_path / "b.yml")
    assert err.path == "http.routers.x.service" and err.line == 3


def test_directory_that_does_not_exist(tmp_path):
    err = load_error(FileProvider(directory=str(tmp_path / "nope")))
    assert err.file == str(tmp_path / "nope")


def test_directory_wins_over_filename_as_in_traefik(tmp_path):
    write(tmp_path / "d" / "a.yml", router_yaml("fromdir"))
    write(tmp_path / "f.yml", router_yaml("fromfile"))
    cfg = FileProvider(filename=str(tmp_path / "f.yml"), directory=str(tmp_path / "d")).load()
    assert set(cfg.routers) == {"fromdir"}


# -- running and watching -----------------------------------------------------------------------------


async def test_run_without_watch_publishes_once_and_returns(tmp_path):
    write(tmp_path / "dyn.yml", router_yaml("a"))
    published: list[DynamicConfig] = []
    await asyncio.wait_for(provider(tmp_path, watch=False).run(published.append), 5)
    assert len(published) == 1 and set(published[0].routers) == {"a"}


async def test_watch_picks_up_an_added_router(tmp_path):
    path = tmp_path / "dyn.yml"
    write(path, router_yaml("a"))
    published: list[DynamicConfig] = []
    async with running(provider(tmp_path), published):
        await until(lambda: len(published) == 1)
        assert set(published[0].routers) == {"a"}
        write(path, router_yaml("a", "b"))
        await until(lambda: len(published) == 2)
        assert set(published[1].routers) == {"a", "b"}


async def test_watch_directory_picks_up_a_new_file_in_a_subdirectory(tmp_path):
    write(tmp_path / "a.yml", router_yaml("a"))
    published: list[DynamicConfig] = []
    fp = FileProvider(directory=str(tmp_path), poll_interval=0.01)
    async with running(fp, published):
        await until(lambda: len(published) == 1)
        write(
            tmp_path / "more" / "b.yml",
            "http:\n  routers:\n    b:\n      rule: Host(`b`)\n      service: s\n",
        )
        await until(lambda: len(published) == 2)
        assert set(published[1].routers) == {"a", "b"}
        (tmp_path / "more" / "b.yml").unlink()
        await until(lambda: len(published) == 3)
        assert set(published[2].routers) == {"a"}


async def test_broken_file_keeps_the_last_good_config_and_logs_one_line(tmp_path, caplog):
    path = tmp_path / "dyn.yml"
    write(path, router_yaml("a"))
    published: list[DynamicConfig] = []
    fp = provider(tmp_path)
    loads = 0
    real_load = fp.load

    def counting_load() -> DynamicConfig:
        nonlocal loads
        loads += 1
        return real_load()

    fp.load = counting_load  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, LOGGER)
    async with running(fp, published):
        await until(lambda: len(published) == 1)
        write(path, router_yaml("a") + "      - url: http://c\n    broken: [\n")
        await until(lambda: len(errors(caplog)) >= 1)
        # a few more polls with nothing changed: no new load, no new line
        seen = loads
        await asyncio.sleep(0.1)
        assert loads == seen
        lines = errors(caplog)
        assert len(lines) == 1
        assert lines[0].startswith(f"file provider: {path}:")
        line_no = int(lines[0][len(f"file provider: {path}:") :].split(":", 1)[0])
        assert line_no == 11  # the mis-indented "- url:" line
        assert lines[0].endswith("; keeping the last good configuration")
        assert len(published) == 1  # the old one stays

        # valid again: published
        write(path, router_yaml("a", "c"))
        await until(lambda: len(published) == 2)
        assert set(published[1].routers) == {"a", "c"}
        assert len(errors(caplog)) == 1


async def test_semantic_error_logs_file_line_and_path(tmp_path, caplog):
    path = tmp_path / "dyn.yml"
    write(path, router_yaml("a"))
    published: list[DynamicConfig] = []
    caplog.set_level(logging.INFO, LOGGER)
    async with running(provider(tmp_path), published):
        await until(lambda: len(published) == 1)
        write(path, router_yaml("a").replace("url: http://b", "url: b"))
        await until(lambda: len(errors(caplog)) == 1)
        assert errors(caplog) == [
            f"file provider: {path}:10: http.services.s.loadBalancer.servers[0].url: "
            "must be an absolute http:// or https:// URL, got 'b'; keeping the last good configuration"
        ]
        assert len(published) == 1


async def test_unchanged_content_is_not_republished(tmp_path):
    path = tmp_path / "dyn.yml"
    write(path, router_yaml("a"))
    published: list[DynamicConfig] = []
    fp = provider(tmp_path)
    loads = 0
    real_load = fp.load

    def counting_load() -> DynamicConfig:
        nonlocal loads
        loads += 1
        return real_load()

    fp.load = counting_load  # type: ignore[method-assign]
    async with running(fp, published):
        await until(lambda: len(published) == 1)
        assert loads == 1
        write(path, router_yaml("a"))  # same content, new mtime: re-read ...
        await until(lambda: loads == 2)
        # ... same content with different formatting: re-read too
        write(path, router_yaml("a").replace("http:\n", "# a comment\nhttp:\n"))
        await until(lambda: loads == 3)
        await asyncio.sleep(0.05)
        assert len(published) == 1  # ... but not published again


async def test_broken_at_start_publishes_an_empty_config_once_then_the_fixed_one(tmp_path, caplog):
    path = tmp_path / "dyn.yml"
    write(path, "http: [\n")
    published: list[DynamicConfig] = []
    caplog.set_level(logging.INFO, LOGGER)
    async with running(provider(tmp_path), published):
        await until(lambda: len(published) == 1)
        assert published[0] == DynamicConfig()
        assert len(errors(caplog)) == 1 and f"{path}:" in errors(caplog)[0]
        write(path, "http: {\n")  # still broken: logged, nothing published
        await until(lambda: len(errors(caplog)) == 2)
        assert len(published) == 1
        write(path, router_yaml("a"))
        await until(lambda: len(published) == 2)
        assert set(published[1].routers) == {"a"}


async def test_missing_file_at_start_then_created(tmp_path, caplog):
    published: list[DynamicConfig] = []
    caplog.set_level(logging.INFO, LOGGER)
    async with running(provider(tmp_path), published):
        await until(lambda: len(published) == 1)
        assert published[0] == DynamicConfig()
        assert "cannot read" in errors(caplog)[0]
        write(tmp_path / "dyn.yml", router_yaml("a"))
        await until(lambda: len(published) == 2)


async def test_a_failing_publish_does_not_stop_the_watch(tmp_path, caplog):
    path = tmp_path / "dyn.yml"
    write(path, router_yaml("a"))
    calls: list[DynamicConfig] = []

    def publish(cfg: DynamicConfig) -> None:
        calls.append(cfg)
        if len(calls) == 1:
            raise RuntimeError("boom")

    caplog.set_level(logging.INFO, LOGGER)
    task = asyncio.get_running_loop().create_task(provider(tmp_path).run(publish))
    try:
        await until(lambda: len(calls) == 1)
        write(path, router_yaml("a", "b"))
        await until(lambda: len(calls) == 2)
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
