"""The exec provider (lego's generic program one), run with real shell scripts written by the tests: the
arguments in both modes, a failing program's exit status and stderr, a hung program killed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from acme_client.dns.base import DnsConfigError, DnsError
from acme_client.dns.exec_provider import ExecProvider
from acme_client.dns.registry import build_provider, read_provider
from tests.dns_standins import RECORD
from tests.polling import wait_for


def script(tmp_path: Path, body: str) -> Path:
    """An executable shell script that logs its arguments, one per line, to ``calls`` then runs ``body``."""
    path = tmp_path / "dns.sh"
    log = tmp_path / "calls"
    path.write_text(f'#!/bin/sh\nfor a in "$@"; do echo "$a"; done >> "{log}"\necho --- >> "{log}"\n{body}\n')
    path.chmod(0o755)
    return path


def calls(tmp_path: Path) -> list[list[str]]:
    text = (tmp_path / "calls").read_text()
    return [c.strip("\n").split("\n") for c in text.split("---\n") if c.strip()]


def test_default_mode_runs_present_and_cleanup_with_fqdn_and_value(tmp_path: Path) -> None:
    config, warnings = read_provider("exec", {"EXEC_PATH": str(script(tmp_path, "exit 0"))})
    assert warnings == []
    p = build_provider(config)
    p.present(RECORD)
    p.cleanup(RECORD)
    assert calls(tmp_path) == [
        ["present", "_acme-challenge.home.example.com.", RECORD.value],
        ["cleanup", "_acme-challenge.home.example.com.", RECORD.value],
    ]


def test_raw_mode_passes_domain_token_and_key_authorization_after_a_double_dash(tmp_path: Path) -> None:
    config, _ = read_provider("exec", {"EXEC_PATH": str(script(tmp_path, "exit 0")), "EXEC_MODE": "RAW"})
    build_provider(config).present(RECORD)
    assert calls(tmp_path) == [["present", "--", "home.example.com", RECORD.token, RECORD.key_authorization]]


def test_a_failing_program_is_a_dns_error_with_its_status_and_stderr_tail(tmp_path: Path) -> None:
    program = script(tmp_path, 'echo "starting" ; echo "zone example.com: permission denied" >&2 ; exit 1')
    config, _ = read_provider("exec", {"EXEC_PATH": str(program)})
    with pytest.raises(DnsError) as caught:
        build_provider(config).present(RECORD)
    assert str(caught.value) == (
        f"exec: {program} present _acme-challenge.home.example.com.: exit status 1: "
        "zone example.com: permission denied"
    )


def test_a_long_stderr_is_cut_to_its_end(tmp_path: Path) -> None:
    program = script(tmp_path, "i=0; while [ $i -lt 400 ]; do echo line$i >&2; i=$((i+1)); done; exit 3")
    config, _ = read_provider("exec", {"EXEC_PATH": str(program)})
    with pytest.raises(DnsError) as caught:
        build_provider(config).cleanup(RECORD)
    message = str(caught.value)
    assert "exit status 3: ..." in message and message.endswith("line398 line399")
    assert len(message) < 700


def test_a_hung_program_and_its_children_are_killed_after_the_timeout(tmp_path: Path) -> None:
    program = script(tmp_path, f"sleep 30 & echo $! > {tmp_path}/child; echo waiting >&2; wait")
    config, _ = read_provider("exec", {"EXEC_PATH": str(program)})
    started = time.monotonic()
    with pytest.raises(
        DnsError, match=r"present _acme-challenge.home.example.com.: still running after 0.5 s, killed"
    ):
        ExecProvider(config, timeout=0.5).present(RECORD)
    assert time.monotonic() - started < 10
    child = int((tmp_path / "child").read_text())
    asyncio.run(wait_for(lambda: _dead(child)))  # the background child, holding the pipes, went with it


def test_a_killed_programs_child_that_left_its_session_does_not_hang_the_call(tmp_path: Path) -> None:
    """A grandchild in a session of its own escapes the group kill and keeps the pipes open: the call
    still ends (its output given up after a few seconds) instead of holding a worker thread for ever."""
    program = script(tmp_path, f"setsid sleep 60 & echo $! > {tmp_path}/child; wait")
    config, _ = read_provider("exec", {"EXEC_PATH": str(program)})
    started = time.monotonic()
    try:
        with pytest.raises(DnsError, match=r"still running after 0.5 s, killed"):
            ExecProvider(config, timeout=0.5).present(RECORD)
        assert time.monotonic() - started < 20
    finally:
        child = tmp_path / "child"
        if child.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(child.read_text()), signal.SIGKILL)


def _dead(pid: int) -> bool:
    """Gone, or a zombie waiting for whoever adopted it to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.parametrize(
    ("make_env", "variable"),
    [
        (lambda tmp: {}, "EXEC_PATH"),
        (lambda tmp: {"EXEC_PATH": str(tmp / "absent.sh")}, "EXEC_PATH"),
        (lambda tmp: {"EXEC_PATH": str(tmp)}, "EXEC_PATH"),  # a directory
        (lambda tmp: {"EXEC_PATH": str(script(tmp, "")), "EXEC_MODE": "raw"}, "EXEC_MODE"),
    ],
)
def test_a_missing_or_unusable_program_is_refused_at_start(tmp_path: Path, make_env, variable: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DnsConfigError) as caught:
        read_provider("exec", make_env(tmp_path))
    assert caught.value.variable == variable


def test_a_not_executable_file_is_refused_at_start(tmp_path: Path) -> None:
    program = script(tmp_path, "exit 0")
    program.chmod(0o644)  # no x bit at all: not executable, even for root
    with pytest.raises(DnsConfigError, match="EXEC_PATH: .* is not an executable file"):
        read_provider("exec", {"EXEC_PATH": str(program)})


def test_the_sequence_interval_lego_has_is_warned_as_not_read(tmp_path: Path) -> None:
    _, warnings = read_provider(
        "exec", {"EXEC_PATH": str(script(tmp_path, "")), "EXEC_SEQUENCE_INTERVAL": "60"}
    )
    assert warnings == ["DNS provider exec: EXEC_SEQUENCE_INTERVAL is set but not read by dockroute; ignored"]
