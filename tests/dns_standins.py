"""Local stand-ins for the DNS providers' HTTP APIs, for the providers' tests (no network here).

Each is a small HTTP server on 127.0.0.1 (port 0) in a thread that answers as the provider's
documentation says its API answers, keeps the records it was given, and records every request (method,
path, query, headers, body) so a test can assert what the provider sent. They are shaped from:
- Cloudflare API v4 (developers.cloudflare.com/api: zones list, DNS records create/list/delete; the
  ``{"success", "errors", "messages", "result"}`` envelope; errors 10000 "Authentication error", 81044
  "Record does not exist.", 81058 "An identical record already exists.") and lego's client for it;
- DuckDNS (www.duckdns.org/spec.jsp: ``GET /update?domains=&token=&txt=&clear=&verbose=``, body ``OK`` /
  ``KO``, one TXT value per domain);
- lego's httpreq (``POST /present`` and ``/cleanup`` with ``{fqdn, value}`` or RAW ``{domain, token,
  keyAuth}``, optional basic authentication).
What a stand-in cannot tell is whether the real service still answers this way: see docs/dns-providers.md.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from acme_client.dns.base import TxtRecord

__all__ = ["RECORD", "CloudflareStandin", "DuckDnsStandin", "HttpReqStandin", "Recorded", "running"]

# The record the provider tests present: a token starting with a dash (an argument a program must not read
# as an option), the value the DNS-01 solver would derive.
RECORD = TxtRecord(
    domain="home.example.com",
    fqdn="_acme-challenge.home.example.com.",
    zone="example.com.",
    value="LHDhK3oGRvkiefQnx7OOczTY5Tic_xZ6HcMOc_gmtoM",
    token="-tokenStartingWithADash",
    key_authorization="-tokenStartingWithADash.thumbprint",
)


@dataclass
class Recorded:
    """One request as the stand-in received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"


class Standin:
    """The server, the request log and the lock; subclasses answer in :meth:`answer`."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        self.url = ""
        # a status forced on every answer (e.g. 500), for failure tests
        self.fail_with: int | None = None
        # called (under the lock) with a name and the TXT values now held there after each change: the
        # integration tests mirror them into a real DNS server, so a CA can read what the API was given
        self.on_change: Callable[[str, list[str]], None] | None = None

    def answer(self, request: Recorded) -> Answer:  # pragma: no cover - overridden
        raise NotImplementedError

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        request = Recorded(
            method=handler.command,
            path=parts.path,
            query={k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=handler.rfile.read(length) if length else b"",
        )
        with self.lock:
            self.requests.append(request)
            answer = (
                Answer(self.fail_with, b"stand-in failure", "text/plain")
                if self.fail_with is not None
                else self.answer(request)
            )
        handler.send_response(answer.status)
        handler.send_header("Content-Type", answer.content_type)
        handler.send_header("Content-Length", str(len(answer.body)))
        handler.end_headers()
        handler.wfile.write(answer.body)


@contextmanager
def running(standin: Standin) -> Iterator[Standin]:
    """Serves ``standin`` on 127.0.0.1 (a free port) for the block; ``standin.url`` is its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            standin._handle(self)

        do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="dns-standin", daemon=True)
    thread.start()
    standin.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _json(status: int, body: dict[str, Any]) -> Answer:
    return Answer(status, json.dumps(body).encode())


# --- Cloudflare API v4 ----------------------------------------------------------------------------------


@dataclass
class CloudflareStandin(Standin):
    """Cloudflare's API v4 under ``/client/v4`` (so ``CLOUDFLARE_BASE_URL`` is ``<url>/client/v4``).

    ``zones``: name → id. Credentials: ``dns_tokens`` may read zones and edit records, ``zone_tokens``
    may only read zones (a record call with one is a 403), ``keys`` maps an email to its Global API Key.
    Anything else is a 401 (code 10000). ``records``: zone id → the records it holds."""

    zones: dict[str, str] = field(default_factory=dict)
    dns_tokens: set[str] = field(default_factory=set)
    zone_tokens: set[str] = field(default_factory=set)
    keys: dict[str, str] = field(default_factory=dict)
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Standin.__init__(self)
        self._ids = (f"rec{n:04d}" for n in itertools.count(1))

    def answer(self, request: Recorded) -> Answer:
        prefix = "/client/v4"
        if not request.path.startswith(prefix):
            return _cf_error(404, 7000, "No route for that URI")
        path = request.path[len(prefix) :].rstrip("/").split("/")[1:]
        who = self._who(request.headers)
        if who is None:
            return _cf_error(401, 10000, "Authentication error")
        if path == ["zones"] and request.method == "GET":
            name = request.query.get("name")
            zones = [{"id": i, "name": n} for n, i in self.zones.items() if name is None or n == name]
            return _cf_ok(zones, result_info={"count": len(zones), "page": 1, "per_page": 50})
        if len(path) < 3 or path[0] != "zones" or path[2] != "dns_records":
            return _cf_error(404, 7000, "No route for that URI")
        if who == "zone":
            return _cf_error(403, 10000, "Authentication error")
        zone_id = path[1]
        if zone_id not in self.zones.values():
            return _cf_error(
                404, 7003, "Could not route to /zones/..., perhaps your object identifier is wrong"
            )
        held = self.records.setdefault(zone_id, [])
        return self._records(request, path[3:], held)

    def _records(self, request: Recorded, rest: list[str], held: list[dict[str, Any]]) -> Answer:
        if not rest and request.method == "POST":
            body = request.json()
            if any(r["name"] == body["name"] and r["content"] == body["content"] for r in held):
                return _cf_error(400, 81058, "An identical record already exists.")
            record = {**body, "id": next(self._ids)}
            held.append(record)
            self._changed(record["name"], held)
            return _cf_ok(record)
        if not rest and request.method == "GET":
            found = [
                r
                for r in held
                if all(request.query.get(k) in (None, r.get(k)) for k in ("type", "name", "content"))
            ]
            return _cf_ok(found)
        if len(rest) == 1 and request.method == "DELETE":
            for record in held:
                if record["id"] == rest[0]:
                    held.remove(record)
                    self._changed(record["name"], held)
                    return _cf_ok({"id": rest[0]})
            return _cf_error(404, 81044, "Record does not exist.")
        return _cf_error(405, 10000, "Method not allowed")

    def _changed(self, name: str, held: list[dict[str, Any]]) -> None:
        if self.on_change is not None:
            values = [r["content"].strip('"') for r in held if r["name"] == name and r["type"] == "TXT"]
            self.on_change(name, values)

    def _who(self, headers: dict[str, str]) -> str | None:
        """ "dns", "zone" (read-only) or None for the credentials the headers carry."""
        authorization = headers.get("authorization", "")
        if authorization.startswith("Bearer "):
            token = authorization[len("Bearer ") :]
            return "dns" if token in self.dns_tokens else "zone" if token in self.zone_tokens else None
        email, key = headers.get("x-auth-email"), headers.get("x-auth-key")
        return "dns" if email is not None and self.keys.get(email) == key else None

    def txt(self, name: str) -> list[str]:
        """The contents held at ``name`` (quotes as sent), in every zone."""
        with self.lock:
            return [r["content"] for rs in self.records.values() for r in rs if r["name"] == name]


def _cf_ok(result: Any, **extra: Any) -> Answer:
    return _json(200, {"success": True, "errors": [], "messages": [], "result": result, **extra})


def _cf_error(status: int, code: int, message: str) -> Answer:
    errors = [{"code": code, "message": message}]
    return _json(status, {"success": False, "errors": errors, "messages": [], "result": None})


# --- DuckDNS --------------------------------------------------------------------------------------------


@dataclass
class DuckDnsStandin(Standin):
    """DuckDNS's ``/update``: ``domains`` (comma-separated, ``name`` or ``name.duckdns.org``) the token
    owns get ``txt`` (or an empty one with ``clear=true``); otherwise the body is ``KO``. ``txt`` holds
    the one TXT value of each domain (by its short name)."""

    token: str = ""
    domains: set[str] = field(default_factory=set)  # short names the token owns
    txt: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Standin.__init__(self)

    def answer(self, request: Recorded) -> Answer:
        if request.path != "/update" or request.method != "GET":
            return Answer(404, b"Not Found", "text/plain")
        query = request.query
        names = [d.removesuffix(".duckdns.org") for d in query.get("domains", "").split(",") if d]
        if query.get("token") != self.token or not names or any(n not in self.domains for n in names):
            return Answer(200, b"KO", "text/plain")
        for name in names:
            self.txt[name] = "" if query.get("clear") == "true" else query.get("txt", "")
        body = "OK\n\n\nUPDATED" if query.get("verbose") == "true" else "OK"
        return Answer(200, body.encode(), "text/plain")


# --- lego's httpreq -------------------------------------------------------------------------------------


@dataclass
class HttpReqStandin(Standin):
    """An httpreq endpoint under ``/api`` (so ``HTTPREQ_ENDPOINT`` is ``<url>/api``). With ``username``
    set, requests need that basic authentication (else 401). ``held``: the bodies presented and not
    cleaned up (as JSON texts, sorted keys)."""

    username: str = ""
    password: str = ""
    held: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        Standin.__init__(self)

    def answer(self, request: Recorded) -> Answer:
        if self.username:
            expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            if request.headers.get("authorization") != expected:
                return Answer(401, b'{"error": "unauthorized"}')
        if request.method != "POST" or request.path not in ("/api/present", "/api/cleanup"):
            return Answer(404, b'{"error": "not found"}')
        try:
            key = json.dumps(request.json(), sort_keys=True)
        except ValueError:
            return Answer(400, b'{"error": "body is not JSON"}')
        if request.path.endswith("/present"):
            self.held.add(key)
        else:
            self.held.discard(key)
        fqdn = request.json().get("fqdn")
        if self.on_change is not None and isinstance(fqdn, str):  # default mode: {fqdn, value}
            bodies = [json.loads(k) for k in self.held]
            self.on_change(fqdn, [b["value"] for b in bodies if b.get("fqdn") == fqdn])
        return Answer(200, b"{}")
