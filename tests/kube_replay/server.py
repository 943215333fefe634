"""A stand-in Kubernetes API server that replays a recorded list/watch conversation.

No API server can run on the test machines, so the provider is tested against this: it serves the list
responses of ``conversation/`` (one file per kind and list, in the API's exact JSON shapes) by the paths
the client calls, holds each watch open as the real server does (chunked, one JSON event per line), and
sends the recorded events when the test plays a step: ``ADDED``/``MODIFIED``/``DELETED``/``BOOKMARK``,
an ``ERROR`` event carrying the ``410 Expired`` Status, a dropped connection, or ``410 Gone`` as the HTTP
status of the next watch. It records every request (method, path, query, body) so that a test checks what
the client sent: ``resourceVersion`` and ``allowWatchBookmarks=true`` on each watch, the relist after a
410, the status PATCH.

Placeholders in the recorded files (``"__PORT_WEB__"``, ``"__TLS_CRT__"``...) are replaced by the test's
values (free ports, a trustme certificate) when the files are loaded: a whole JSON string equal to a
placeholder becomes the value, an int for a port.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

from tests.polling import wait_for

HERE = Path(__file__).resolve().parent
CONVERSATION = HERE / "conversation"

# The paths the client lists and watches, by kind (every namespace: the provider's default).
PATHS = {
    "/apis/networking.k8s.io/v1/ingresses": "ingresses",
    "/apis/networking.k8s.io/v1/ingressclasses": "ingressclasses",
    "/api/v1/services": "services",
    "/apis/discovery.k8s.io/v1/endpointslices": "endpointslices",
    "/api/v1/secrets": "secrets",
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unit_values() -> dict[str, Any]:
    """The placeholders of the recorded conversation for tests that run the provider in process: fixed
    ports (nothing listens on them) and two certificates for the Secret, the second for its rotation."""
    ca = trustme.CA()
    first, second = ca.issue_cert("shop.example.test"), ca.issue_cert("shop.example.test")
    return {
        "__PORT_WEB__": 18080,
        "__PORT_API__": 18081,
        "__TLS_CRT__": _b64(first.cert_chain_pems[0].bytes()),
        "__TLS_KEY__": _b64(first.private_key_pem.bytes()),
        "__TLS_CRT_2__": _b64(second.cert_chain_pems[0].bytes()),
        "__TLS_KEY_2__": _b64(second.private_key_pem.bytes()),
    }


def go_true(value: str | None) -> bool:
    """A query flag as the API server reads it (Go's strconv.ParseBool): older clients send ``True``."""
    return value in ("1", "t", "T", "TRUE", "true", "True")


def fill(value: Any, values: dict[str, Any]) -> Any:
    """``value`` with every string equal to a placeholder replaced by its value."""
    if isinstance(value, dict):
        return {k: fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, values) for v in value]
    if isinstance(value, str) and value in values:
        return values[value]
    return value


def load(name: str, values: dict[str, Any]) -> Any:
    return fill(json.loads((CONVERSATION / name).read_text()), values)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None


@dataclass
class _Watch:
    kind: str
    query: dict[str, str]
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)


class ReplayServer:
    """The recorded conversation, served on 127.0.0.1:<free port>."""

    def __init__(self, values: dict[str, Any], token: str = "replay-token") -> None:
        self.values = values
        self.token = token
        self.requests: list[Request] = []
        self.lists: dict[str, list[Any]] = {}  # kind → list responses still to serve (the last repeats)
        self.steps: dict[str, list[dict[str, Any]]] = load("steps.json", values)
        self.open_events: dict[str, list[Any]] = load("open.json", values)  # sent when a watch opens
        self.watches: list[_Watch] = []
        self.gone_next: set[str] = set()  # kinds whose next watch is answered 410 Gone (HTTP status)
        self.problems: list[str] = []  # what the client sent that a real server would refuse
        self.refuse: dict[str, tuple[int, str, str]] = {}  # kind → (code, reason, message) for its lists
        self.patch_gate: asyncio.Event | None = None  # set: status PATCHes are answered once it is set
        self.runner: web.AppRunner | None = None
        self.port = 0
        for path in sorted(CONVERSATION.glob("*.list*.json")):
            kind = path.name.split(".")[0]
            self.lists.setdefault(kind, []).append(load(path.name, values))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> ReplayServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        for w in self.watches:
            w.queue.put_nowait(None)
        if self.runner is not None:
            await self.runner.cleanup()

    # -- what the test reads ------------------------------------------------------------------------

    def calls(self, kind: str, *, watch: bool, namespace: str = "") -> list[Request]:
        """The list (or watch) requests of ``kind``: every namespace's, or one namespace's."""
        path = next(p for p, k in PATHS.items() if k == kind)
        if namespace:
            head, _, plural = path.rpartition("/")
            path = f"{head}/namespaces/{namespace}/{plural}"
        return [
            r
            for r in self.requests
            if r.method == "GET" and r.path == path and go_true(r.query.get("watch")) == watch
        ]

    def patches(self) -> list[Request]:
        return [r for r in self.requests if r.method == "PATCH"]

    def open_watches(self, kind: str) -> int:
        return sum(1 for w in self.watches if w.kind == kind)

    def play(self, step: str) -> None:
        """Send a recorded step on the open watches: events, ``{"drop": true}`` (the connection is cut)
        and ``{"gone_next": true}`` (the next watch of that kind is answered 410 Gone)."""
        for action in self.steps[step]:
            kind = action["kind"]
            if action.get("gone_next"):
                self.gone_next.add(kind)
            if "list" in action:  # what the next list of that kind returns
                self.lists[kind].append(load(action["list"], self.values))
            watches = [w for w in self.watches if w.kind == kind]
            assert watches or not ("event" in action or action.get("drop")), f"no open {kind} watch"
            for w in watches:
                if "event" in action:
                    w.queue.put_nowait(action["event"])
                if action.get("drop"):
                    w.queue.put_nowait("drop")

    # -- the API ------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        rec = Request(
            request.method,
            request.path,
            dict(request.query),
            dict(request.headers),
            json.loads(body) if body else None,
        )
        self.requests.append(rec)
        if request.headers.get("Authorization", "").lower() != f"bearer {self.token}":  # the scheme: any case
            return _status(401, "Unauthorized", "Unauthorized")
        if request.method == "PATCH" and request.path.endswith("/status"):
            if self.patch_gate is not None:  # a slow API server: the answer waits
                await self.patch_gate.wait()
            return self._patch_status(rec)
        kind, namespace = PATHS.get(request.path), ""
        parts = request.path.split("/")  # /api/v1/namespaces/<ns>/<kind>, /apis/<group>/v1/namespaces/...
        if kind is None and len(parts) > 3 and parts[-3] == "namespaces":
            collection = "/".join([*parts[:-3], parts[-1]])
            kind, namespace = PATHS.get(collection), parts[-2]
        if kind is None or request.method != "GET":
            return _status(
                404, "NotFound", f"the server could not find the requested resource ({request.path})"
            )
        if kind in self.refuse:  # a 4xx as the API answers it (RBAC, a bad labelSelector)
            return _status(*self.refuse[kind])
        if go_true(rec.query.get("watch")):
            return await self._watch(request, kind, rec, namespace)
        answers = self.lists[kind]
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if namespace:  # a namespaced list: that namespace's items only
            items = [i for i in answer["items"] if i["metadata"].get("namespace") == namespace]
            answer = {**answer, "items": items}
        return web.json_response(answer)

    def _patch_status(self, rec: Request) -> web.Response:
        parts = rec.path.split("/")  # /apis/networking.k8s.io/v1/namespaces/<ns>/ingresses/<name>/status
        ctype = rec.headers.get("Content-Type", "")
        if ctype not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            self.problems.append(f"status PATCH with Content-Type {ctype!r}")
        ingress = load("ingresses.list.1.json", self.values)["items"][0]
        ingress["metadata"].update(namespace=parts[5], name=parts[7])
        ingress["status"] = (rec.body or {}).get("status", {})
        return web.json_response({"kind": "Ingress", "apiVersion": "networking.k8s.io/v1", **ingress})

    async def _watch(
        self, request: web.Request, kind: str, rec: Request, namespace: str
    ) -> web.StreamResponse:
        if not go_true(rec.query.get("allowWatchBookmarks")):
            self.problems.append(f"{kind} watch without allowWatchBookmarks=true")
        if not rec.query.get("resourceVersion"):
            self.problems.append(f"{kind} watch without resourceVersion")
        if kind in self.gone_next:
            self.gone_next.discard(kind)
            version = rec.query.get("resourceVersion", "")
            return _status(410, "Expired", f"too old resource version: {version} (1900)")
        resp = web.StreamResponse(
            headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
        )
        await resp.prepare(request)
        w = _Watch(kind, rec.query)
        for event in self.open_events.pop(kind, ()):  # the first watch of the kind only
            w.queue.put_nowait(event)
        self.watches.append(w)
        try:
            while True:
                item = await w.queue.get()
                if item is None:
                    break
                if item == "drop":
                    assert request.transport is not None
                    request.transport.abort()  # the connection cut, as a restarting API server does
                    break
                if namespace and item["object"].get("metadata", {}).get("namespace", namespace) != namespace:
                    continue  # a namespaced watch: that namespace's objects only
                await resp.write(json.dumps(item).encode() + b"\n")
                if item.get("type") == "ERROR":
                    break  # the API server ends the watch after an ERROR event
        finally:
            self.watches.remove(w)
        return resp


def _status(code: int, reason: str, message: str) -> web.Response:
    """A ``metav1.Status`` failure, as the API server answers one."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return web.json_response(body, status=code)


async def wait_open(server: ReplayServer, kind: str, count: int = 1, timeout: float = 10.0) -> None:
    """Until ``count`` watches of ``kind`` were opened in all (a reconnect is one more)."""
    await wait_for(
        lambda: len(server.calls(kind, watch=True)) >= count and server.open_watches(kind), timeout
    )


@pytest.fixture
def values() -> dict[str, Any]:
    """The placeholders of :func:`unit_values` (overridden where a test needs others)."""
    return unit_values()


@pytest.fixture
async def replay(values: dict[str, Any]) -> Any:
    """A started replay server over the recorded conversation, stopped after the test."""
    server = await ReplayServer(values).start()
    yield server
    await server.stop()


@contextlib.asynccontextmanager
async def running_provider(replay: ReplayServer, backoff: tuple[float, float], **settings: Any) -> Any:
    """The Kubernetes Ingress provider running against ``replay`` (endpoint and token set), yielding it and
    the list of configurations it published; cancelled on exit."""
    from discover.kubernetes.provider import KubernetesIngressProvider  # noqa: PLC0415 - tests' import
    from discover.kubernetes.settings import KubernetesIngressSettings  # noqa: PLC0415

    s = KubernetesIngressSettings(endpoint=replay.url, token="replay-token", **settings)
    provider = KubernetesIngressProvider(s, backoff=backoff)
    published: list[Any] = []
    task = asyncio.get_running_loop().create_task(provider.run(published.append))
    try:
        yield provider, published
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
