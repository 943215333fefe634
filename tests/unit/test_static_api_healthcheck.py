"""``dockroute healthcheck`` against a real loopback HTTP server: which address it asks (the ping entry
point's, ``localhost`` for a bare ``:port``, IPv6 in brackets), HEAD /ping, exit status and messages."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dockroute.cli import main


class _Server(ThreadingHTTPServer):
    status = 200
    seen: list[tuple[str, str]]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self.server.seen.append((self.command, self.path))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _serve(family: socket.AddressFamily, host: str) -> Iterator[_Server]:
    _Server.address_family = family
    server = _Server((host, 0), _Handler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _no_config_variables(no_config_variables):
    """No DOCKROUTE_/TRAEFIK_ variable or configuration file of this machine reaches these tests."""


@pytest.fixture
def server() -> Iterator[_Server]:
    yield from _serve(socket.AF_INET, "127.0.0.1")


def test_ok_on_the_ping_entry_point(server, capsys):
    port = server.server_address[1]
    flags = [
        "--entrypoints.web.address=:1",
        f"--entrypoints.ops.address=127.0.0.1:{port}",
        "--ping.entrypoint=ops",
    ]
    assert main(["healthcheck", *flags]) == 0
    assert capsys.readouterr().out == f"OK: http://127.0.0.1:{port}/ping\n"
    assert server.seen == [("HEAD", "/ping")]


def test_a_bare_port_is_asked_on_localhost(server, capsys):
    port = server.server_address[1]
    assert main(["healthcheck", "--ping", f"--entrypoints.traefik.address=:{port}"]) == 0
    assert capsys.readouterr().out == f"OK: http://:{port}/ping\n"


def test_ipv6_address():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        gen = _serve(socket.AF_INET6, "::1")
        server = next(gen)
    except OSError:
        pytest.skip("no ::1")
    try:
        port = server.server_address[1]
        assert main(["healthcheck", "--ping", f"--entrypoints.traefik.address=[::1]:{port}"]) == 0
    finally:
        gen.close()


def test_any_other_status_is_unhealthy(server, capsys):
    server.status = 503
    port = server.server_address[1]
    assert main(["healthcheck", "--ping", f"--entrypoints.traefik.address=127.0.0.1:{port}"]) == 1
    assert capsys.readouterr().out == "Bad healthcheck status: 503 Service Unavailable\n"


def test_unhealthy_without_ping_without_listener_or_with_a_bad_config(capsys):
    assert main(["healthcheck"]) == 1
    assert capsys.readouterr().out == "Error calling healthcheck: please enable `ping` to use health check\n"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        assert main(["healthcheck", "--ping", f"--entrypoints.traefik.address=127.0.0.1:{port}"]) == 1
    assert capsys.readouterr().out.startswith(
        f"Error calling healthcheck: Head 'http://127.0.0.1:{port}/ping'"
    )
    assert main(["healthcheck", "--ping.entrypoint=nope", "--ping"]) == 1
    assert "configuration error: ping.entryPoint" in capsys.readouterr().out
    # manualRouting: the entry point is not checked at start; the command names what is missing
    assert main(["healthcheck", "--ping.manualrouting", "--ping.entrypoint=nope"]) == 1
    assert capsys.readouterr().out == "Error calling healthcheck: ping: missing nope entry point\n"
