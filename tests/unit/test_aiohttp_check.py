"""router.server's start-time check of the aiohttp internals the request path relies on.

An aiohttp release that renamed or dropped one of them must stop dockroute at start with one line naming
what is missing and the aiohttp versions that work, instead of an AttributeError on every request.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import http as aiohttp_http
from aiohttp import web

from router import server as server_module
from router.proxy import EntryPointHandler
from router.settings import EntryPoint, Transport
from router.upstream import Pool

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_aiohttp_passes():
    assert server_module.aiohttp_problem() is None
    server_module.check_aiohttp()


def test_a_missing_request_head_names_it_and_the_working_range(monkeypatch):
    monkeypatch.setattr(web.BaseRequest, "ATTRS", web.BaseRequest.ATTRS - {"_message"})
    problem = server_module.aiohttp_problem()
    assert problem is not None
    assert "BaseRequest._message" in problem
    assert f"dockroute works with aiohttp {server_module.AIOHTTP_TESTED}" in problem
    assert "\n" not in problem


def test_missing_message_fields_and_set_parser_are_each_named(monkeypatch):
    class Message:  # an aiohttp whose parsed head lacks the flags the proxy reads
        method = path = version = headers = raw_headers = should_close = None

    monkeypatch.setattr(aiohttp_http, "RawRequestMessage", Message)
    monkeypatch.delattr(web.RequestHandler, "set_parser")
    problem = server_module.aiohttp_problem()
    assert problem is not None
    for name in ("RawRequestMessage.upgrade", "RawRequestMessage.chunked", "RequestHandler.set_parser"):
        assert name in problem
    assert "RawRequestMessage.method" not in problem


async def test_an_entry_point_refuses_to_start_on_an_unusable_aiohttp(monkeypatch):
    monkeypatch.setattr(web.BaseRequest, "ATTRS", frozenset())
    ep = EntryPoint(name="web", address="127.0.0.1:0")
    with pytest.raises(SystemExit) as raised:
        server_module.EntryPointServer(EntryPointHandler(ep, Pool(Transport())))
    assert str(raised.value).startswith("dockroute: aiohttp ")
    assert "BaseRequest._message" in str(raised.value)


def test_the_process_stops_with_one_clear_line(tmp_path):
    """The real entry point (``dockroute.cli.main``) on an aiohttp without ``BaseRequest._message``."""
    script = (
        "import sys\n"
        "from aiohttp import web\n"
        "web.BaseRequest.ATTRS = frozenset()\n"
        "from dockroute.cli import main\n"
        "sys.exit(main(['--entryPoints.web.address=127.0.0.1:0']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("dockroute: aiohttp ") and "BaseRequest._message" in last, proc.stderr
    assert last.endswith(f"dockroute works with aiohttp {server_module.AIOHTTP_TESTED}")
