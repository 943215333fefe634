"""An HTTPS reverse proxy in front of a real Pebble that adds what Pebble 2.4 lacks: certificate profiles
(draft-ietf-acme-profiles) and ACME Renewal Information (RFC 9773).

Every request goes to Pebble unchanged, with the ``Host`` header kept as the shim's own ``host:port``:
Pebble builds every URL it hands out from ``Host`` and checks each JWS ``url`` header against ``https://`` +
``Host`` + path, so clients talk to the shim throughout and their signatures stay valid. Only:

- ``GET /dir`` gains ``meta.profiles`` and a ``renewalInfo`` URL at the shim (each can be switched off);
- ``GET /renewal-info/<certID>`` is answered by the shim with :attr:`AcmeShim.ari_window` and
  :attr:`AcmeShim.ari_retry_after` (or :attr:`AcmeShim.ari_status` as a problem), and recorded;
- ``POST`` to newOrder is forwarded, and its JWS payload decoded (not verified) and recorded.

The shim's certificate comes from the same trustme CA as Pebble's, so Pebble's ``ca_bundle`` trusts both.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import http.server
import json
import math
import socket
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from tests.integration.pebble_env import Pebble

PROFILES = {"classic": "the usual 90-day certificate", "shortlived": "a 6-day certificate"}
_ARI_PATH = "/renewal-info"
# Not copied between client and Pebble: hop-by-hop, recomputed, or written by http.server itself.
_NOT_COPIED = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "date", "server"}


def ari_cert_id(cert_pem: bytes) -> str:
    """RFC 9773 section 4.1 certID of the first certificate in ``cert_pem``: base64url(AKI keyIdentifier)
    "." base64url(DER serial), unpadded. Written from the RFC, not taken from the client under test."""
    leaf = x509.load_pem_x509_certificate(cert_pem)
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    serial = leaf.serial_number
    der = serial.to_bytes(math.ceil((serial.bit_length() + 1) / 8), "big", signed=True)
    return f"{_b64url(aki)}.{_b64url(der)}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _jws_payload(body: bytes) -> dict[str, Any]:
    """The JSON payload of a flattened JWS, decoded without verification ({} for POST-as-GET)."""
    payload = json.loads(body)["payload"]
    if not payload:
        return {}
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class AcmeShim:
    """The proxy, serving in a thread from construction until :meth:`close`."""

    def __init__(
        self, pebble: Pebble, profiles: dict[str, str] | None = PROFILES, renewal_info: bool = True
    ) -> None:
        assert pebble.ca is not None, "run_pebble exposes its CA as Pebble.ca"
        self.pebble = pebble
        self.profiles = profiles
        self.renewal_info = renewal_info
        now = dt.datetime.now(dt.UTC)
        self.ari_window: tuple[dt.datetime, dt.datetime] = (
            now + dt.timedelta(days=60),
            now + dt.timedelta(days=61),
        )
        self.ari_retry_after = 3600
        self.ari_status = 200
        self.ari_drop = False  # close ARI connections without an answer (an unreachable endpoint)
        self.refuse_replaces = False  # answer newOrder with "replaces" by alreadyReplaced, as a CA may
        self.ari_requests: list[str] = []  # certIDs asked about, in order
        self.orders: list[dict[str, Any]] = []  # decoded newOrder payloads
        self.requests: list[tuple[str, str]] = []  # (method, path) of everything seen
        self._new_order_path: str | None = None
        upstream = urlsplit(pebble.directory_url)
        self._upstream = (upstream.hostname or "127.0.0.1", upstream.port or 443)
        self._upstream_ctx = ssl.create_default_context(cafile=pebble.ca_bundle)
        self._httpd = self._server()
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def directory_url(self) -> str:
        return f"{self.base_url}{urlsplit(self.pebble.directory_url).path}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- server ---------------------------------------------------------------------------------------

    def _server(self) -> http.server.ThreadingHTTPServer:
        leaf = self.pebble.ca.issue_cert("127.0.0.1", "localhost")  # type: ignore[union-attr]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        leaf.configure_cert(ctx)
        shim = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                shim._handle(self)

            def do_HEAD(self) -> None:  # noqa: N802
                shim._handle(self)

            def do_POST(self) -> None:  # noqa: N802
                shim._handle(self)

            def log_message(self, *a: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def finish_request(self, request, client_address) -> None:  # noqa: ANN001
                # TLS handshake in the request's own thread, so a slow client holds up nobody else.
                with ctx.wrap_socket(request, server_side=True) as tls:
                    Handler(tls, client_address, self)

            def handle_error(self, request, client_address) -> None:  # noqa: ANN001
                pass  # a client dropping the connection is no news

        return Server(("127.0.0.1", 0), Handler)

    def _handle(self, req: http.server.BaseHTTPRequestHandler) -> None:
        self.requests.append((req.command, req.path))
        body = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        if req.command == "GET" and self.renewal_info and req.path.startswith(_ARI_PATH + "/"):
            self._answer_ari(req, req.path[len(_ARI_PATH) + 1 :])
            return
        if req.command == "POST" and req.path == self._new_order_path:
            payload = _jws_payload(body)
            self.orders.append(payload)
            if self.refuse_replaces and "replaces" in payload:
                problem = {"type": "urn:ietf:params:acme:error:alreadyReplaced", "detail": "renewed already"}
                headers = [("Content-Type", "application/problem+json")]
                self._reply(req, 409, headers, json.dumps(problem).encode())
                return
        status, headers, answer = self._forward(req, body)
        if req.command == "GET" and req.path == urlsplit(self.pebble.directory_url).path and status == 200:
            answer = self._rewrite_directory(answer)
        self._reply(req, status, headers, answer)

    def _forward(
        self, req: http.server.BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPSConnection(*self._upstream, context=self._upstream_ctx, timeout=30)
        try:
            headers = {k: v for k, v in req.headers.items() if k.lower() not in _NOT_COPIED}
            headers["Host"] = f"127.0.0.1:{self.port}"  # Pebble builds URLs and checks JWS urls from it
            conn.request(req.command, req.path, body=body if req.command == "POST" else None, headers=headers)
            resp = conn.getresponse()
            answer = resp.read()
            kept = [(k, v) for k, v in resp.getheaders() if k.lower() not in _NOT_COPIED]
            return resp.status, kept, answer
        finally:
            conn.close()

    def _rewrite_directory(self, answer: bytes) -> bytes:
        directory = json.loads(answer)
        self._new_order_path = urlsplit(directory["newOrder"]).path
        if self.profiles is not None:
            directory.setdefault("meta", {})["profiles"] = dict(self.profiles)
        if self.renewal_info:
            directory["renewalInfo"] = f"{self.base_url}{_ARI_PATH}"
        return json.dumps(directory).encode()

    def _answer_ari(self, req: http.server.BaseHTTPRequestHandler, cert_id: str) -> None:
        self.ari_requests.append(cert_id)
        if self.ari_drop:
            req.close_connection = True
            req.connection.shutdown(socket.SHUT_RDWR)
            return
        if self.ari_status != 200:
            problem = {"type": "urn:ietf:params:acme:error:serverInternal", "detail": "ARI is down"}
            self._reply(
                req,
                self.ari_status,
                [("Content-Type", "application/problem+json")],
                json.dumps(problem).encode(),
            )
            return
        start, end = self.ari_window
        window = {"suggestedWindow": {"start": _rfc3339(start), "end": _rfc3339(end)}}
        headers = [("Content-Type", "application/json"), ("Retry-After", str(self.ari_retry_after))]
        self._reply(req, 200, headers, json.dumps(window).encode())

    @staticmethod
    def _reply(
        req: http.server.BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        req.send_response(status)
        for key, value in headers:
            req.send_header(key, value)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(body)
