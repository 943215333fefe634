"""Start a real Pebble ACME CA (plus pebble-challtestsrv as its DNS) on loopback for tests."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import socket
import ssl
import struct
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from tests.unavailable import require_tools


def require_pebble() -> None:
    """Skip when Pebble is missing, unless running in CI (then it is a failure)."""
    require_tools("pebble", "pebble-challtestsrv", hint="apt-get install pebble")


def free_port(udp_too: bool = False) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if not udp_too:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def _wait(check, what: str, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            if check():
                return
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {timeout}s: {last}")


def _dns_answers(port: int) -> bool:
    """One A query for probe.example. over UDP; True when any reply comes back."""
    qname = b"".join(bytes([len(p)]) + p for p in (b"probe", b"example")) + b"\0"
    query = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.sendto(query, ("127.0.0.1", port))
        try:
            data = s.recv(512)
        except TimeoutError:
            return False
    return data[:2] == b"\x12\x34"


class ChallengeServer:
    """Answers GET /.well-known/acme-challenge/<token> from ``tokens`` (what ``publish`` fills)."""

    def __init__(self, port: int = 0) -> None:
        self.tokens: dict[str, str] = {}
        self.requests: list[str] = []
        tokens, seen = self.tokens, self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                seen.append(self.path)
                prefix = "/.well-known/acme-challenge/"
                value = tokens.get(self.path[len(prefix) :]) if self.path.startswith(prefix) else None
                body = (value or "not found").encode()
                self.send_response(200 if value else 404)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def publish(self, token: str, key_authorization: str) -> None:
        self.tokens[token] = key_authorization

    def unpublish(self, token: str) -> None:
        self.tokens.pop(token, None)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@dataclass
class Pebble:
    directory_url: str
    management_url: str
    ca_bundle: str  # PEM trusted for Pebble's own HTTPS
    procs: list[subprocess.Popen] = field(default_factory=list)
    # The CA behind ca_bundle: a proxy in front of Pebble (acme_shim) gets its certificate from it, so
    # clients trusting ca_bundle trust the proxy too.
    ca: trustme.CA | None = field(default=None, repr=False)

    def root_pem(self) -> bytes:
        ctx = ssl.create_default_context(cafile=self.ca_bundle)
        with urllib.request.urlopen(f"{self.management_url}/roots/0", context=ctx, timeout=10) as r:
            return r.read()


@contextlib.contextmanager
def run_pebble(
    workdir: Path,
    http_port: int,
    tls_port: int | None = None,
    eab_keys: dict[str, str] | None = None,
    listen: str = "127.0.0.1",
    names: Sequence[str] = (),
    dns_server: str | None = None,
    nonce_reject: int = 0,
) -> Iterator[Pebble]:
    """Pebble validating HTTP-01 on 127.0.0.1:``http_port`` and TLS-ALPN-01 on ``tls_port`` (an unused
    port when None); every name resolves to 127.0.0.1.

    ``eab_keys`` (kid → HMAC key, unpadded base64url as Pebble decodes it) makes External Account Binding
    required for every new account.

    ``listen`` is the address its API and management listen on (and the one in ``directory_url``):
    loopback by default; the Docker bridge's gateway for a client inside a container. ``names`` are added
    to the SANs of Pebble's own HTTPS certificate (e.g. ``host.docker.internal``, the name a container
    reaches the host by), beside 127.0.0.1, localhost and ``listen``.

    ``dns_server`` (``host:port``): the DNS server Pebble resolves and validates DNS-01 against (a real
    BIND in the DNS-01 tests); pebble-challtestsrv (every name → 127.0.0.1, no TXT) when None.
    ``nonce_reject``: the percentage of good nonces Pebble rejects with badNonce (its default is 5;
    off unless a test asks)."""
    require_pebble()
    workdir.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    sans = dict.fromkeys(["127.0.0.1", "localhost", listen, *names])
    leaf = ca.issue_cert(*sans)
    cert_file, key_file, bundle = workdir / "wfe.pem", workdir / "wfe.key", workdir / "wfe-ca.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    leaf.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(bundle))

    dns_port, api_port, mgmt_port = free_port(udp_too=True), free_port(), free_port()
    config = {
        "pebble": {
            "listenAddress": f"{listen}:{api_port}",
            "managementListenAddress": f"{listen}:{mgmt_port}",
            "certificate": str(cert_file),
            "privateKey": str(key_file),
            "httpPort": http_port,
            "tlsPort": tls_port or free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": bool(eab_keys),
            "externalAccountMACKeys": dict(eab_keys or {}),
        }
    }
    (workdir / "pebble.json").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if k != "PEBBLE_VA_ALWAYS_VALID"}
    env.update(PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT=str(nonce_reject))

    procs: list[subprocess.Popen] = []
    logs = []
    try:
        log = open(workdir / "challtestsrv.log", "wb")  # noqa: SIM115
        logs.append(log)
        dns = subprocess.Popen(
            [
                "pebble-challtestsrv",
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
                "-dns01",
                f"127.0.0.1:{dns_port}",
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                f"127.0.0.1:{free_port()}",
            ],  # fmt: skip
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(dns)
        _wait(lambda: _dns_answers(dns_port), "pebble-challtestsrv", dns)

        log = open(workdir / "pebble.log", "wb")  # noqa: SIM115
        logs.append(log)
        pebble = subprocess.Popen(
            [
                "pebble",
                "-config",
                str(workdir / "pebble.json"),
                "-dnsserver",
                dns_server or f"127.0.0.1:{dns_port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        procs.append(pebble)
        env_ = Pebble(
            directory_url=f"https://{listen}:{api_port}/dir",
            management_url=f"https://{listen}:{mgmt_port}",
            ca_bundle=str(bundle),
            procs=procs,
            ca=ca,
        )
        ctx = ssl.create_default_context(cafile=str(bundle))

        def ready() -> bool:
            with urllib.request.urlopen(env_.directory_url, context=ctx, timeout=2) as r:
                return r.status == 200

        _wait(ready, "pebble", pebble)
        yield env_
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in logs:
            log.close()


class DownCA:
    """A CA that is down: a loopback listener that closes every connection at once and counts them.

    ``async with DownCA() as ca:`` then point a resolver at ``ca.directory_url``; ``ca.attempts`` is how
    many connections the resolver made."""

    def __init__(self) -> None:
        self.attempts = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> DownCA:
        async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.attempts += 1
            writer.close()

        self._server = await asyncio.start_server(count, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def directory_url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/dir"


def acme_static(tmp_path: Path, directory_url: str, ca_bundle: str, web_port: int) -> dict:
    """dockroute's static config for ACME tests: `web` on ``web_port`` (where the CA validates HTTP-01),
    `websecure` on a free port, the file provider, and resolver `le` answering HTTP-01 on `web`."""
    return {
        "entryPoints": {"web": {"address": f"127.0.0.1:{web_port}"}, "websecure": {"address": "127.0.0.1:0"}},
        "providers": {"file": {"filename": str(tmp_path / "dynamic.yml")}},
        "certificatesResolvers": {
            "le": {
                "acme": {
                    "email": "admin@example.com",
                    "storage": str(tmp_path / "acme.json"),
                    "caServer": directory_url,
                    "caCertificates": [ca_bundle],
                    "httpChallenge": {"entryPoint": "web"},
                }
            }
        },
        "log": {"level": "DEBUG"},
    }
