"""Stand-ins for the images the compose examples name, for tests on a machine without a registry.

- ``whoami [PORT]``: answers every request as traefik/whoami does (``Hostname:``, the request line, the
  headers), plus ``Path:`` for tests that check what path the app received;
- ``static ROOT [PORT]``: serves the files under ROOT, as nginx does with /usr/share/nginx/html;
- ``socket-proxy [PORT]``: a Docker socket proxy that applies tecnativa/docker-socket-proxy's rules (its
  haproxy.cfg) from the same environment variables with the same defaults: a method other than GET/HEAD
  is refused unless ``POST=1``; a path is relayed to /var/run/docker.sock only when its API section is
  enabled (``CONTAINERS=1`` for ``/containers...``, ``/v1.41/containers...``; ``EVENTS``, ``PING`` and
  ``VERSION`` on by default, everything else off); anything else is answered 403.
Standard library only.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import signal
import socket
import socketserver
import sys
import urllib.parse


class Whoami(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        lines = [f"Hostname: {socket.gethostname()}", f"RemoteAddr: {self.client_address[0]}"]
        lines.append(f"Path: {self.path}")
        lines.append(f"{self.command} {self.path} {self.request_version}")
        lines.extend(f"{k}: {v}" for k, v in self.headers.items())
        body = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# tecnativa/docker-socket-proxy's image: its ENV defaults, and its haproxy.cfg's allow rules in order
# (variable, path pattern after ^(/v[\d.]+)?(/\w+)?, matched case-insensitively on the decoded path).
PROXY_DEFAULTS = {"EVENTS": "1", "PING": "1", "VERSION": "1"}
_ACTIONS = [
    ("ALLOW_RESTARTS", r"/containers/[a-zA-Z0-9_.-]+/((stop)|(restart)|(kill))"),
    ("ALLOW_START", r"/containers/[a-zA-Z0-9_.-]+/start"),
    ("ALLOW_STOP", r"/containers/[a-zA-Z0-9_.-]+/stop"),
]
_SECTIONS = "auth build commit configs containers distribution events exec grpc images info networks nodes"
_SECTIONS += " _ping plugins secrets services session swarm system tasks version volumes"
PROXY_RULES = [
    *_ACTIONS,
    *[("PING" if name == "_ping" else name.upper(), "/" + name) for name in _SECTIONS.split()],
]


def _on(env: dict[str, str], name: str) -> bool:
    """HAProxy's ``env(NAME) -m bool``: a non-zero integer; unset or not a number is false."""
    value = env.get(name, PROXY_DEFAULTS.get(name, "0")).strip()
    try:
        return int(value) != 0
    except ValueError:
        return False


def proxy_allows(method: str, target: str, env: dict[str, str]) -> bool:
    """Whether tecnativa/docker-socket-proxy relays ``method target`` under ``env``: GET/HEAD (or any
    method with POST on), and a path whose section's variable is on."""
    if method not in ("GET", "HEAD") and not _on(env, "POST"):
        return False
    path = urllib.parse.unquote(urllib.parse.urlsplit(target).path)
    return any(
        re.match(r"^(/v[\d.]+)?(/\w+)?" + pattern, path, re.IGNORECASE) and _on(env, name)
        for name, pattern in PROXY_RULES
    )


class SocketProxy(socketserver.BaseRequestHandler):
    """One request per connection: its head is read, refused unless :func:`proxy_allows` it, sent with
    ``Connection: close`` to the engine, and the answer (an event stream included) relayed until the engine
    closes."""

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            head += chunk
        first, _, rest = head.partition(b"\r\n")
        method, _, target = first.decode("latin-1").partition(" ")
        if not proxy_allows(method, target.rsplit(" ", 1)[0], dict(os.environ)):
            body = b"socket proxy: forbidden\n"
            self.request.sendall(
                b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            return
        fields, _, extra = rest.partition(b"\r\n\r\n")
        kept = [f for f in fields.split(b"\r\n") if f and not f.lower().startswith(b"connection:")]
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(os.environ.get("DOCKER_SOCKET", "/var/run/docker.sock"))
        upstream.sendall(b"\r\n".join([first, *kept, b"Connection: close", b"", b""]) + extra)
        _pipe(upstream, self.request)


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv: list[str]) -> None:
    mode = argv[0] if argv else "whoami"
    if mode == "whoami":
        port = int(argv[1]) if len(argv) > 1 else 80
        handler: type = Whoami
    elif mode == "static":
        port = int(argv[2]) if len(argv) > 2 else 80
        handler = functools.partial(Quiet, directory=argv[1])
    elif mode == "socket-proxy":
        port = int(argv[1]) if len(argv) > 1 else 2375
        handler = SocketProxy
    else:
        sys.exit(f"standin: unknown mode {mode!r} (whoami, static, socket-proxy)")
    # PID 1 gets no default action for SIGTERM: without a handler `docker stop` waits out its timeout
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    Server(("", port), handler).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
