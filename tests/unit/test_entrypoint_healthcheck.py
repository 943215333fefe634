"""``dockroute healthcheck --container``, the image's HEALTHCHECK: the static flags come from PID 1's
command line (a compose ``command:`` is not seen by the HEALTHCHECK process), the environment is this
process's own; ping configured → HEAD /ping, else every entry point must accept a TCP connection."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dockroute import healthcheck as healthcheck_module
from dockroute.cli import main
from dockroute.healthcheck import CmdlineError, flags_from_cmdline, healthcheck, pid1_ids, read_pid1_flags

FLAGS = ["--ping", "--entrypoints.web.address=:80"]


def _cmdline(*argv: str) -> bytes:
    return b"".join(a.encode() + b"\0" for a in argv)


@pytest.mark.parametrize(
    "argv",
    [
        # the entry point exec'd the script: the kernel runs its shebang's interpreter with the script path
        ("/opt/dockroute/bin/python", "/opt/dockroute/bin/dockroute", *FLAGS),
        ("/usr/bin/python3", "-m", "dockroute", *FLAGS),
        # docker run --init: docker-init runs the entry point, with Traefik's command forms
        ("/sbin/docker-init", "--", "docker-entrypoint", *FLAGS),
        ("/sbin/docker-init", "--", "docker-entrypoint", "traefik", *FLAGS),
        ("/sbin/docker-init", "--", "docker-entrypoint", "dockroute", *FLAGS),
        ("/usr/local/bin/traefik", *FLAGS),
    ],
)
def test_the_flags_after_the_dockroute_command(argv):
    assert flags_from_cmdline(_cmdline(*argv)) == FLAGS


def test_no_flags_is_an_empty_list():
    assert flags_from_cmdline(_cmdline("/opt/dockroute/bin/python", "/opt/dockroute/bin/dockroute")) == []


def test_a_flag_value_naming_dockroute_is_not_the_command():
    argv = ("/opt/dockroute/bin/python", "/opt/dockroute/bin/dockroute", "--providers.file.directory", "/x")
    assert flags_from_cmdline(_cmdline(*argv)) == ["--providers.file.directory", "/x"]


def test_another_pid_1_is_refused_by_name():
    with pytest.raises(CmdlineError, match="PID 1 is not dockroute .nginx -g daemon off;"):
        flags_from_cmdline(_cmdline("nginx", "-g", "daemon off;"))


def test_an_unreadable_cmdline_is_an_error(tmp_path):
    with pytest.raises(CmdlineError, match="cannot read"):
        read_pid1_flags(str(tmp_path / "missing"))


@pytest.fixture(autouse=True)
def _no_config_variables(no_config_variables):
    """No DOCKROUTE_/TRAEFIK_ variable or configuration file of this machine reaches these tests."""


def _status(tmp_path: Path, uid: int, gid: int, groups: str) -> str:
    path = tmp_path / f"status-{uid}"
    path.write_text(
        f"Name:\tpython3\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t{gid}\t{gid}\t{gid}\t{gid}\n"
        f"FDSize:\t64\nGroups:\t{groups}\nNoNewPrivs:\t1\n"
    )
    return str(path)


@pytest.fixture(autouse=True)
def _pid1_is_root(tmp_path, monkeypatch):
    """PID 1 as root unless a test says otherwise: no test may change this process's user."""
    monkeypatch.setattr(healthcheck_module, "PID1_STATUS", _status(tmp_path, 0, 0, ""))


@pytest.fixture
def ids_changes(monkeypatch) -> list[tuple[str, object]]:
    """os.getuid() is 0 and every change of user is recorded instead of made; so is the read of PID 1's
    command line, to see the order."""
    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(os, "getuid", lambda: 0)
    for name in ("setgroups", "setgid", "setuid"):
        monkeypatch.setattr(os, name, lambda value, name=name: calls.append((name, value)))
    read = healthcheck_module.read_pid1_flags
    monkeypatch.setattr(
        healthcheck_module, "read_pid1_flags", lambda path=None: calls.append(("read", path)) or read(path)
    )
    return calls


def test_pid1_ids_are_read_from_its_status(tmp_path):
    assert pid1_ids(_status(tmp_path, 65532, 65532, "105 65532")) == (65532, 65532, [105, 65532])


def test_as_root_container_mode_becomes_pid_1s_user_before_reading_anything(tmp_path, ids_changes):
    cmdline = _pid1(tmp_path, "--entrypoints.web.address=127.0.0.1:1")
    status = _status(tmp_path, 65532, 65532, "105 65532")
    healthcheck(["--container"], cmdline=cmdline, status=status)
    assert ids_changes == [
        ("setgroups", [105, 65532]),
        ("setgid", 65532),
        ("setuid", 65532),
        ("read", cmdline),
    ]


def test_as_root_with_pid_1_root_it_stays_root(tmp_path, ids_changes):
    cmdline = _pid1(tmp_path, "--entrypoints.web.address=127.0.0.1:1")
    healthcheck(["--container"], cmdline=cmdline, status=_status(tmp_path, 0, 0, ""))
    assert ids_changes == [("read", cmdline)]


def test_without_container_the_user_is_unchanged(tmp_path, ids_changes):
    healthcheck(["--ping"], status=_status(tmp_path, 65532, 65532, "65532"))
    assert [name for name, _ in ids_changes] == []


def test_the_cli_drops_to_pid_1s_user(tmp_path, ids_changes, monkeypatch):
    monkeypatch.setattr(healthcheck_module, "PID1_STATUS", _status(tmp_path, 65532, 65532, "65532"))
    monkeypatch.setattr(healthcheck_module, "PID1_CMDLINE", _pid1(tmp_path, "--entrypoints.web.address=:1"))
    main(["healthcheck", "--container"])
    assert [name for name, _ in ids_changes] == ["setgroups", "setgid", "setuid", "read"]


class _Server(ThreadingHTTPServer):
    seen: list[tuple[str, str]]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self.server.seen.append((self.command, self.path))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ping_server() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def listeners() -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        socks.append(s)
    yield socks
    for s in socks:
        s.close()


def _pid1(tmp_path: Path, *flags: str) -> str:
    path = tmp_path / "cmdline"
    path.write_bytes(_cmdline("/opt/dockroute/bin/python", "/opt/dockroute/bin/dockroute", *flags))
    return str(path)


def test_container_mode_pings_with_pid_1s_flags(tmp_path, ping_server, capsys):
    port = ping_server.server_address[1]
    cmdline = _pid1(
        tmp_path, "--ping", "--entrypoints.web.address=:1", f"--entrypoints.traefik.address=127.0.0.1:{port}"
    )
    assert healthcheck(["--container"], cmdline=cmdline) == 0
    assert capsys.readouterr().out == f"OK: http://127.0.0.1:{port}/ping\n"
    assert ping_server.seen == [("HEAD", "/ping")]


def test_without_container_pid_1s_flags_are_not_read(tmp_path, ping_server, capsys):
    port = ping_server.server_address[1]
    cmdline = _pid1(tmp_path, "--ping", f"--entrypoints.traefik.address=127.0.0.1:{port}")
    assert healthcheck([], cmdline=cmdline) == 1
    assert "please enable `ping`" in capsys.readouterr().out
    assert ping_server.seen == []


def test_container_mode_shares_the_environment(tmp_path, ping_server, capsys, monkeypatch):
    port = ping_server.server_address[1]
    monkeypatch.setenv("DOCKROUTE_PING", "true")
    monkeypatch.setenv("DOCKROUTE_ENTRYPOINTS_TRAEFIK_ADDRESS", f"127.0.0.1:{port}")
    assert healthcheck(["--container"], cmdline=_pid1(tmp_path, "--entrypoints.web.address=:1")) == 0
    assert ping_server.seen == [("HEAD", "/ping")]


def test_container_mode_without_ping_checks_every_entry_point_over_tcp(tmp_path, listeners, capsys):
    a, b = (s.getsockname()[1] for s in listeners)
    cmdline = _pid1(
        tmp_path, f"--entrypoints.web.address=127.0.0.1:{a}", f"--entrypoints.websecure.address=127.0.0.1:{b}"
    )
    assert healthcheck(["--container"], cmdline=cmdline) == 0
    out = capsys.readouterr().out
    assert out == (
        f"OK: entry points web (127.0.0.1:{a}), websecure (127.0.0.1:{b}) accept TCP connections "
        "(no ping configured: enable --ping for an HTTP check)\n"
    )


def test_container_mode_without_ping_fails_naming_the_closed_entry_point(tmp_path, listeners, capsys):
    a, b = (s.getsockname()[1] for s in listeners)
    listeners[1].close()
    cmdline = _pid1(
        tmp_path, f"--entrypoints.web.address=127.0.0.1:{a}", f"--entrypoints.websecure.address=127.0.0.1:{b}"
    )
    assert healthcheck(["--container"], cmdline=cmdline) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"Error calling healthcheck: entry point websecure (127.0.0.1:{b}): ")
    assert "enable --ping for an HTTP check" in out


def test_container_mode_with_another_pid_1_fails(tmp_path, capsys):
    path = tmp_path / "cmdline"
    path.write_bytes(_cmdline("/bin/sleep", "1000"))
    assert healthcheck(["--container"], cmdline=str(path)) == 1
    assert capsys.readouterr().out.startswith(
        "Error calling healthcheck: PID 1 is not dockroute (/bin/sleep 1000)"
    )


def test_container_mode_reports_a_bad_flag_of_pid_1(tmp_path, capsys):
    assert healthcheck(["--container"], cmdline=_pid1(tmp_path, "--nosuch.key=1")) == 1
    assert capsys.readouterr().out.startswith("Error calling healthcheck: configuration error:")


def test_the_cli_takes_container(tmp_path, ping_server, capsys, monkeypatch):
    port = ping_server.server_address[1]
    monkeypatch.setattr(
        "dockroute.healthcheck.PID1_CMDLINE",
        _pid1(tmp_path, "--ping", f"--entrypoints.traefik.address=127.0.0.1:{port}"),
    )
    assert main(["healthcheck", "--container"]) == 0
    assert capsys.readouterr().out == f"OK: http://127.0.0.1:{port}/ping\n"
