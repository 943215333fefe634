"""The real process at start: what the static configuration refuses (exit 2, one line naming the key) and
where it finds Traefik's file when no ``--config`` is given."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.integration.harness import ROOT, stop_process, wait_for

_SYSTEM_FILES = [
    Path(d, f"{stem}.{ext}")
    for d in ("/etc/dockroute", "/etc/traefik")
    for stem in ("dockroute", "traefik")
    for ext in ("yml", "yaml", "toml")
]


def _env(tmp: Path) -> dict[str, str]:
    """The test's environment without dockroute/Traefik variables, with empty config homes, so only the
    working directory can hold a file."""
    home, xdg = tmp / "home", tmp / "xdg"
    home.mkdir(exist_ok=True)
    xdg.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKROUTE_", "TRAEFIK_"))}
    env.update(
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        HOME=str(home),
        XDG_CONFIG_HOME=str(xdg),
    )
    return env


def _refused(tmp: Path, *flags: str) -> str:
    """Run dockroute in ``tmp`` (no --config); it must exit 2. Returns its stderr."""
    work = tmp / "work"
    work.mkdir(exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "dockroute", *flags],
        cwd=work,
        env=_env(tmp),
        capture_output=True,
        timeout=60,
        check=False,
    )
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 2, (done.returncode, stderr)
    assert "Traceback" not in stderr and "listening on" not in stderr
    return stderr


def _no_system_file() -> None:
    found = [str(p) for p in _SYSTEM_FILES if p.is_file()]
    if found:
        pytest.skip(f"a configuration file on this machine would be read first: {', '.join(found)}")


def test_misspelled_resolver_key_exits_2_naming_it_with_a_hint(tmp_path):
    _no_system_file()
    stderr = _refused(
        tmp_path, "--certificatesresolvers.le.acme.emial=ops@example.com", "--providers.file.filename=x"
    )
    assert (
        "dockroute: configuration error: certificatesResolvers.le.acme.emial: unknown key "
        "(did you mean 'email'?) (from flag --certificatesresolvers.le.acme.emial)"
    ) in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_bad_key_type_and_dns_challenge_resolver_exit_2(tmp_path):
    _no_system_file()
    stderr = _refused(
        tmp_path,
        "--certificatesresolvers.le.acme.email=ops@example.com",
        "--certificatesresolvers.le.acme.keytype=P521",
    )
    assert (
        "certificatesResolvers.le.acme.keyType: expected one of EC256, EC384, RSA2048, RSA4096, RSA8192"
        in stderr
    )
    stderr = _refused(
        tmp_path,
        "--certificatesresolvers.le.acme.email=ops@example.com",
        "--certificatesresolvers.le.acme.dnschallenge.provider=cloudflare",
        "--certificatesresolvers.le.acme.dnschallenge.resolvers=dns.example.com:99999",
    )
    assert "certificatesResolvers.le.acme.dnsChallenge.resolvers[0]: expected a DNS server's" in stderr


def test_a_resolver_without_a_challenge_exits_2(tmp_path):
    """Traefik orders nothing without a challenge; dockroute once answered HTTP-01 everywhere instead."""
    _no_system_file()
    stderr = _refused(tmp_path, "--certificatesresolvers.le.acme.email=ops@example.com")
    assert stderr == (
        "dockroute: configuration error: certificatesResolvers.le.acme: ACME challenge not specified, please "
        "select TLS or HTTP or DNS Challenge (tlsChallenge, httpChallenge.entryPoint naming the entry "
        "point on port 80, or dnsChallenge.provider)\n"
    )


@pytest.mark.parametrize(
    ("value", "key", "why"),
    [
        ("", "permittedDomains", "set but empty"),  # would create an unconstrained root, for good
        ("lan,10.0.0.1", "permittedDomains[1]", "an IP address or network"),
    ],
)
def test_internal_ca_permitted_domains_that_would_not_constrain_names_exit_2(tmp_path, value, key, why):
    _no_system_file()
    stderr = _refused(
        tmp_path,
        f"--certificatesresolvers.home.internalca.storage={tmp_path / 'ca'}",
        f"--certificatesresolvers.home.internalca.permitteddomains={value}",
    )
    assert stderr.startswith(f"dockroute: configuration error: certificatesResolvers.home.internalCA.{key}: ")
    assert why in stderr and stderr.count("\n") == 1
    assert not (tmp_path / "ca").exists()


async def test_traefik_yml_in_the_working_directory_is_read(tmp_path):
    """No --config, no dockroute.*: the traefik.yml in the working directory is the configuration. It
    names an entry point only it knows, on 127.0.0.1 with a kernel-chosen port, and a file provider;
    the log names the file, the entry point listens there and serves the provider's routes."""
    _no_system_file()
    work = tmp_path / "work"
    work.mkdir()
    (work / "dynamic.yml").write_text(
        "http:\n  routers:\n    r: {rule: 'Path(`/`)', service: s}\n"
        "  services:\n    s: {loadBalancer: {servers: [{url: 'http://127.0.0.1:9'}]}}\n"
    )
    (work / "traefik.yml").write_text(
        "entryPoints:\n"
        "  fromtraefikyml: {address: '127.0.0.1:0'}\n"
        "providers:\n"
        "  file: {filename: dynamic.yml}\n"
        "  providersThrottleDuration: 0s\n"
    )
    log_path = tmp_path / "stderr.log"
    with open(log_path, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dockroute"], cwd=work, env=_env(tmp_path), stderr=stderr, stdout=stderr
        )
    try:

        def listening() -> int | None:
            assert proc.poll() is None, log_path.read_text()
            text = log_path.read_text(errors="replace")
            for line in text.splitlines():
                if (
                    "entrypoint fromtraefikyml listening on 127.0.0.1:" in line
                    and "configuration applied" in text
                ):
                    return int(line.rsplit(":", 1)[1].split()[0])
            return None

        port = await wait_for(listening, timeout=20)
        log = log_path.read_text(errors="replace")
        assert f"(config {work / 'traefik.yml'})" in log
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/") as resp:
            # The file's router, to a backend that refuses connections: the proxy's own 502.
            assert resp.status == 502
    finally:
        await asyncio.to_thread(stop_process, proc, 15)


async def test_dns_challenge_starts_and_warns_of_an_unread_variable_and_a_deprecated_key(tmp_path):
    """A resolver with DNS-01 alone starts; the start log names the provider variable set and not read (a
    typo) and the deprecated key read as its successor. Nothing is ordered (no router wants a name)."""
    _no_system_file()
    work = tmp_path / "work"
    work.mkdir()
    secret = tmp_path / "cf_token"
    secret.write_text("token-from-a-secret\n")
    env = _env(tmp_path)
    env = {k: v for k, v in env.items() if not k.startswith(("CF_", "CLOUDFLARE_"))}
    env.update(CF_DNS_API_TOKEN_FILE=str(secret), CF_DNS_TOKNE="typo")
    le = "--certificatesresolvers.le.acme"
    flags = [
        "--entrypoints.web.address=127.0.0.1:0",
        f"{le}.email=ops@example.com",
        f"{le}.caserver=https://127.0.0.1:9/dir",
        f"{le}.storage={work / 'acme.json'}",
        f"{le}.dnschallenge.provider=cloudflare",
        f"{le}.dnschallenge.delaybeforecheck=5s",
    ]
    log_path = tmp_path / "stderr.log"
    with open(log_path, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dockroute", *flags], cwd=work, env=env, stderr=stderr, stdout=stderr
        )
    try:

        def started() -> str | None:
            assert proc.poll() is None, log_path.read_text()
            text = log_path.read_text(errors="replace")
            return text if "configuration applied" in text else None

        log = await wait_for(started, timeout=20)
        path = "certificatesResolvers.le.acme.dnsChallenge"
        assert f"static configuration {path}.provider: " in log and "CF_DNS_TOKNE" in log
        assert f"static configuration {path}.delayBeforeCheck is deprecated" in log
        assert "token-from-a-secret" not in log
    finally:
        await asyncio.to_thread(stop_process, proc, 15)
