"""Helpers for integration tests: the real ``dockroute`` process and real loopback backends.

Every port is chosen by the kernel (bind to port 0): dockroute listens on ``127.0.0.1:0`` and its start-up
summary line says which port it got; backends are aiohttp servers started inside the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import yaml
from aiohttp import WSMsgType, web

from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
_LISTEN = re.compile(r"entrypoint (\S+) listening on ([\d.:\[\]a-f]+):(\d+)")


class Backend:
    """A real HTTP server on 127.0.0.1:<kernel-chosen port> that tells who it is and what it got."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hits = 0
        self.requests: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.health_status = 200
        self.slow_done = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> Backend:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/upload", self._upload)
        app.router.add_get("/download", self._download)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/slow", self._slow)
        app.router.add_get("/health", self._health)
        app.router.add_route("*", "/{tail:.*}", self._echo)
        self.runner = web.AppRunner(app, access_log=None, auto_decompress=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def _echo(self, request: web.Request) -> web.Response:
        self.hits += 1
        body = await request.read()
        rec = {
            "server": self.name,
            "method": request.method,
            "raw_path": request.raw_path,
            "headers": {k: v for k, v in request.headers.items()},
            "header_list": list(request.headers.items()),
            "body_len": len(body),
        }
        self.requests.append(rec)
        return web.json_response(rec, headers={"X-Backend": self.name})

    async def _upload(self, request: web.Request) -> web.Response:
        self.hits += 1
        h = hashlib.sha256()
        n = 0
        async for chunk in request.content.iter_chunked(1 << 16):
            h.update(chunk)
            n += len(chunk)
        return web.json_response({"sha256": h.hexdigest(), "length": n, "server": self.name})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        size = int(request.query.get("size", "1024"))
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        if request.query.get("chunked") != "1":
            resp.content_length = size
        await resp.prepare(request)
        block = pattern_block()
        left = size
        while left > 0:
            piece = block[: min(left, len(block))]
            await resp.write(piece)
            left -= len(piece)
        await resp.write_eof()
        return resp

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        self.hits += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(f"{self.name}:{msg.data}")
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    async def _slow(self, request: web.Request) -> web.Response:
        self.hits += 1
        await asyncio.sleep(float(request.query.get("delay", "1")))
        self.slow_done += 1
        return web.Response(text=f"slow from {self.name}")

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(status=self.health_status, text="health")


@contextlib.asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[int]:
    """``app`` served on 127.0.0.1 at a free port (yielded) for the ``async with`` block."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


def stop_process(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if ``proc`` is still running after ``grace`` seconds; reaped either way
    (blocking: from async code, run it in a thread)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


_BLOCK: bytes | None = None


def pattern_block() -> bytes:
    """A 64 KiB deterministic block; downloads are this block repeated, so the client can verify them."""
    global _BLOCK
    if _BLOCK is None:
        _BLOCK = hashlib.sha256(b"dockroute").digest() * 2048
    return _BLOCK


def expected_sha256(size: int) -> str:
    h = hashlib.sha256()
    block = pattern_block()
    left = size
    while left > 0:
        piece = block[: min(left, len(block))]
        h.update(piece)
        left -= len(piece)
    return h.hexdigest()


class Dockroute:
    """The real ``dockroute`` process, started with a static and a dynamic file in ``tmp``."""

    def __init__(
        self, tmp: Path, static: dict[str, Any] | None = None, dynamic: dict[str, Any] | None = None
    ):
        self.tmp = tmp
        self.static_path = tmp / "dockroute.yml"
        self.dynamic_path = tmp / "dynamic.yml"
        self.log_path = tmp / "dockroute.log"
        self.static = static or {
            "entryPoints": {"web": {"address": "127.0.0.1:0"}},
            "providers": {"file": {"filename": str(self.dynamic_path), "watch": True}},
            "log": {"level": "DEBUG"},
        }
        self.write_dynamic(dynamic or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, int] = {}
        self.preexec: Callable[[], None] | None = None  # run in the child before exec (e.g. setrlimit)

    def write_dynamic(self, dynamic: dict[str, Any] | str) -> None:
        text = dynamic if isinstance(dynamic, str) else yaml.safe_dump(dynamic)
        tmp = self.dynamic_path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.dynamic_path)

    @property
    def port(self) -> int:
        return self.ports["web"]

    def url(self, path: str = "/", ep: str = "web") -> str:
        return f"http://127.0.0.1:{self.ports[ep]}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def start(
        self, extra_args: tuple[str, ...] = (), expect_entrypoints: int | None = None
    ) -> Dockroute:
        self.static_path.write_text(yaml.safe_dump(self.static))
        env = dict(os.environ)
        env = {k: v for k, v in env.items() if not k.startswith(("DOCKROUTE_", "TRAEFIK_"))}
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            # Tests rewrite the dynamic file and expect it applied at once: no providersThrottleDuration
            # (Traefik's 2 s default) unless a test passes its own value (a later flag wins).
            [
                sys.executable,
                "-m",
                "dockroute",
                "--config",
                str(self.static_path),
                "--providers.providersThrottleDuration=0",
                *extra_args,
            ],
            cwd=str(self.tmp),
            stdout=open(self.tmp / "stdout.log", "wb"),  # noqa: SIM115
            stderr=open(self.log_path, "wb"),  # noqa: SIM115
            env=env,
            preexec_fn=self.preexec,  # noqa: PLW1509  # only a setrlimit, in tests that lower a limit
        )
        n = expect_entrypoints or len(self.static.get("entryPoints", {}))

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"dockroute exited with {self.proc.returncode}:\n{self.log()}")
            for m in _LISTEN.finditer(self.log()):
                self.ports[m.group(1)] = int(m.group(3))
            return len(self.ports) >= n and "configuration applied" in self.log()

        await wait_for(ready, timeout=15)
        return self

    def rss_kib(self, field: str = "VmRSS") -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(field)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    async def stop(self, timeout: float = 15.0) -> int:
        if self.proc is None:
            return 0
        self.terminate()
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode


def docker_static() -> dict:
    """A static config with the Docker provider and one entry point ``web`` on a free port (DEBUG log)."""
    return {
        "entryPoints": {"web": {"address": "127.0.0.1:0"}},
        "providers": {"docker": {}},
        "log": {"level": "DEBUG"},
    }


def routers(*specs: tuple[str, str, str], services: dict[str, list[str]] | None = None, **extra: Any) -> dict:
    """A dynamic config: ``routers(("name", "rule", "service"), services={"svc": [url, ...]})``."""
    cfg: dict[str, Any] = {
        "http": {
            "routers": {name: {"rule": rule, "service": svc} for name, rule, svc in specs},
            "services": {
                name: {"loadBalancer": {"servers": [{"url": u} for u in urls]}}
                for name, urls in (services or {}).items()
            },
        }
    }
    for key, value in extra.items():
        cfg["http"][key] = value
    return cfg


async def raw_exchange(port: int, data: bytes, until_close: bool = True, timeout: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    out = b""
    try:
        async with asyncio.timeout(timeout):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                out += chunk
                if not until_close and b"\r\n\r\n" in out:
                    break
    except TimeoutError:
        pass
    writer.close()
    return out


async def verified_get(port: int, ctx: ssl.SSLContext, host: str) -> tuple[bytes, bytes] | None:
    """GET / over HTTPS with SNI and Host ``host``, verified by ``ctx``: (the whole answer, the DER
    certificate served), or None while the certificate served does not verify (a test polls this until the
    certificate it waits for, issued meanwhile, is in)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=host)
    except ssl.SSLCertVerificationError:
        return None
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        return await reader.read(), der
    finally:
        writer.close()
