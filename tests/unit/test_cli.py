"""The ``dockroute`` command line, run as ``python -m dockroute`` in a scratch directory."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import dockroute
from discover.values import BOOL_WORDS
from dockroute import cli

ROOT = Path(__file__).resolve().parents[2]


def run(tmp: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKROUTE_", "TRAEFIK_"))}
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "dockroute", *args],
        cwd=tmp,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_version(tmp_path):
    p = run(tmp_path, "--version")
    assert p.returncode == 0 and p.stdout.strip() == f"dockroute {dockroute.__version__}" == "dockroute 0.1.0"


def test_help(tmp_path):
    p = run(tmp_path, "--help")
    assert p.returncode == 0
    for text in (
        "--config",
        "--entrypoints.NAME.address",
        "DOCKROUTE_",
        "TRAEFIK_",
        "--providers.file.filename",
    ):
        assert text in p.stdout


def test_bad_flag_exits_2_naming_the_key(tmp_path):
    p = run(tmp_path, "--entrypoints.web.adress=:80")
    assert p.returncode == 2
    assert p.stderr.startswith("dockroute: configuration error: entryPoints.web.adress: unknown key")


def test_bad_config_file_exits_2_naming_the_key(tmp_path):
    (tmp_path / "mine.yml").write_text("log:\n  level: loud\n")
    for flag in (["--config", "mine.yml"], ["--configFile=mine.yml"]):
        p = run(tmp_path, *flag)
        assert p.returncode == 2, p.stderr
        assert "dockroute: configuration error: log.level:" in p.stderr and "loud" in p.stderr


def test_config_found_in_working_directory(tmp_path):
    (tmp_path / "dockroute.yml").write_text("entryPoints:\n  web:\n    address: 12\n")
    p = run(tmp_path)
    assert p.returncode == 2 and "entryPoints.web.address" in p.stderr


def test_bad_env_exits_2(tmp_path):
    p = run(tmp_path, env={"DOCKROUTE_LOG_LEVEL": "loud"})
    assert p.returncode == 2 and "log.level" in p.stderr and "DOCKROUTE_LOG_LEVEL" in p.stderr


def test_good_config_is_handed_to_the_app(tmp_path, monkeypatch):
    seen = []
    fake = types.ModuleType("dockroute.app")
    fake.run = lambda static: seen.append(static) or 7  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dockroute.app", fake)
    monkeypatch.setattr(dockroute, "app", fake, raising=False)
    monkeypatch.chdir(tmp_path)
    for k in [k for k in os.environ if k.startswith(("DOCKROUTE_", "TRAEFIK_"))]:
        monkeypatch.delenv(k)
    (tmp_path / "c.toml").write_text('[entryPoints.web]\naddress = ":8081"\n')
    assert cli.main(["--config", "c.toml", "--log.level=DEBUG"]) == 7
    (static,) = seen
    assert static.entry_points[0].address == ":8081" and static.log.level == "DEBUG"
    assert static.source == "c.toml"


def test_main_returns_2_in_process(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--log.level=loud"]) == 2
    assert "configuration error: log.level" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_info_flags_in_process(flag, capsys):
    assert cli.main([flag]) == 0
    assert capsys.readouterr().out


def test_help_names_the_boolean_words(tmp_path):
    p = run(tmp_path, "--help")
    assert p.returncode == 0 and BOOL_WORDS in p.stdout


def test_go_boolean_word_flag_is_read_and_a_bad_one_names_the_words(tmp_path):
    p = run(tmp_path, "--entrypoints.web.forwardedheaders.insecure=yes")
    assert p.returncode == 2
    assert "entryPoints.web.forwardedHeaders.insecure: expected true or false (also 1, t, T" in p.stderr
    assert "got 'yes'" in p.stderr


def test_spiffe_stops_the_process_naming_it(tmp_path):
    p = run(tmp_path, env={"DOCKROUTE_SERVERSTRANSPORT_SPIFFE_TRUSTDOMAIN": "example.org"})
    assert p.returncode == 2
    assert p.stderr.startswith(
        "dockroute: configuration error: serversTransport.spiffe: SPIFFE is not supported"
    )
    assert "DOCKROUTE_SERVERSTRANSPORT_SPIFFE_TRUSTDOMAIN" in p.stderr
