"""A FAKE Kubernetes API server for tests: no real one can run on these machines.

It implements exactly what dockroute's Kubernetes certificate store relies on, as the real API server
does it, and nothing else:

- Secrets (``/api/v1/namespaces/<ns>/secrets[/<name>]``) and Leases
  (``/apis/coordination.k8s.io/v1/namespaces/<ns>/leases[/<name>]``): GET, POST (create), PUT (replace);
- ``metadata.resourceVersion``: one counter for the whole server, a new value on every write; a PUT whose
  ``resourceVersion`` is not the stored one is ``409 Conflict`` (reason ``Conflict``), a PUT without one
  is unconditional, as for these two resources in Kubernetes;
- 404 ``NotFound`` for a GET or PUT of a missing object, 409 ``AlreadyExists`` for a POST of an existing
  one; errors are ``Status`` objects;
- ``metadata.uid``, ``creationTimestamp`` and ``namespace`` set on create; ``managedFields`` never kept.

Not implemented (not used): list, watch, PATCH, DELETE, field validation, admission, authentication
(any bearer token is accepted) and RBAC. Loopback only, on a free port. Tests may inject trouble:
``before_write`` runs before each write (e.g. another writer's change, to force a conflict).
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests.unavailable import unavailable


def require_client() -> None:
    """The official Kubernetes client (dockroute's ``kubernetes`` extra), which the code under test uses."""
    try:
        import kubernetes  # noqa: F401, PLC0415
    except ImportError:
        unavailable("the Kubernetes client is not installed: pip install 'dockroute[kubernetes]'")


_PATH = re.compile(
    r"^/(?:api/v1|apis/coordination\.k8s\.io/v1)/namespaces/(?P<ns>[^/]+)/(?P<kind>secrets|leases)"
    r"(?:/(?P<name>[^/?]+))?/?(?:\?.*)?$"
)
_KINDS = {"secrets": ("v1", "Secret"), "leases": ("coordination.k8s.io/v1", "Lease")}


class FakeKubeApi:
    """``with FakeKubeApi() as api:`` — ``api.url``, ``api.kubeconfig(path)``, ``api.objects``."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (kind, namespace, name) → object
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.before_write: Callable[[str, str, str, str], None] | None = None  # (method, kind, ns, name)
        self._versions = itertools.count(1000)
        self.lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeKubeApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig pointing at this server (what ``KUBECONFIG`` names for dockroute)."""
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "fake",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                    "users": [{"name": "fake", "user": {"token": "fake-token"}}],
                }
            )
        )
        return path

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.objects.get((kind, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def put(self, kind: str, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` as another client would (a new resourceVersion), bypassing HTTP."""
        with self.lock:
            stored = copy.deepcopy(obj)
            meta = stored.setdefault("metadata", {})
            meta.update(namespace=namespace, resourceVersion=str(next(self._versions)))
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.pop("managedFields", None)
            api_version, kind_name = _KINDS[kind]
            stored.update(apiVersion=api_version, kind=kind_name)
            self.objects[(kind, namespace, meta["name"])] = stored
            return copy.deepcopy(stored)

    def count(self, method: str, kind: str, status: int | None = None) -> int:
        return sum(1 for m, p, s in self.requests if m == method and f"/{kind}" in p and status in (None, s))

    # -- HTTP --------------------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: dict[str, Any]) -> None:
                fake.requests.append((self.command, self.path, code))
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> None:
                status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
                self._send(code, {**status, "message": message, "reason": reason, "code": code})

            def _route(self) -> tuple[str, str, str | None] | None:
                m = _PATH.match(self.path)
                if m is None:
                    self._status(
                        404, "NotFound", f"the server could not find the requested resource {self.path}"
                    )
                    return None
                return m.group("kind"), m.group("ns"), m.group("name")

            def do_GET(self) -> None:  # noqa: N802
                route = self._route()
                if route is None:
                    return
                kind, ns, name = route
                obj = fake.get(kind, ns, name or "")
                if name is None or obj is None:
                    return self._status(404, "NotFound", f'{kind} "{name}" not found')
                self._send(200, obj)

            def _body(self) -> dict[str, Any]:
                return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")

            def do_POST(self) -> None:  # noqa: N802
                route = self._route()
                if route is None:
                    return
                kind, ns, _ = route
                body = self._body()
                name = (body.get("metadata") or {}).get("name", "")
                if fake.before_write is not None:
                    fake.before_write("POST", kind, ns, name)
                with fake.lock:
                    if (kind, ns, name) in fake.objects:
                        return self._status(409, "AlreadyExists", f'{kind} "{name}" already exists')
                    body["metadata"]["creationTimestamp"] = dt.datetime.now(dt.UTC).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"
                    )
                    body["metadata"].pop("resourceVersion", None)
                    stored = fake.put(kind, ns, body)
                self._send(201, stored)

            def do_PUT(self) -> None:  # noqa: N802
                route = self._route()
                if route is None:
                    return
                kind, ns, name = route
                body = self._body()
                if fake.before_write is not None:
                    fake.before_write("PUT", kind, ns, name or "")
                with fake.lock:
                    current = fake.objects.get((kind, ns, name or ""))
                    if current is None:
                        return self._status(404, "NotFound", f'{kind} "{name}" not found')
                    wanted = (body.get("metadata") or {}).get("resourceVersion")
                    if wanted and wanted != current["metadata"]["resourceVersion"]:
                        message = (
                            f'Operation cannot be fulfilled on {kind} "{name}": the object has been '
                            "modified; please apply your changes to the latest version and try again"
                        )
                        return self._status(409, "Conflict", message)
                    for key in ("uid", "creationTimestamp"):
                        body["metadata"][key] = current["metadata"].get(key)
                    stored = fake.put(kind, ns, body)
                self._send(200, stored)

        return Handler
