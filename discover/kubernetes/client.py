"""The Kubernetes API, as the Ingress provider calls it: credentials, list, watch, status patch.

It uses the official client (PyPI ``kubernetes``), imported here only, and only when the provider is
configured: it loads in-cluster credentials (with the service-account token's rotation) and kubeconfig
files (exec plugins, OIDC, client certificates), and speaks the API's paths and parameters. Lists and
watches are read as plain JSON (``_preload_content=False``: the raw response, no model objects), and the
watch's event lines are read here rather than by ``kubernetes.watch.Watch``: its ``deserialize=False`` mode
fails on an ERROR event (it reads a key only its deserializing mode sets, in 37.0) and its own retry after a
``410 Gone`` resumes from a version that is already gone; the provider needs to see the 410 and relist.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from discover.kubernetes.settings import KubernetesIngressSettings

__all__ = [
    "INSTALL_HINT",
    "RESOURCES",
    "ApiError",
    "Gone",
    "KubeApi",
    "Resource",
    "client_installed",
    "require_client",
]

INSTALL_HINT = "pip install 'dockroute[kubernetes]'"


class ApiError(Exception):
    """An answer of the API that is not a success; ``status`` is its HTTP status (0: no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}" if status else message)
        self.status = status


class Gone(ApiError):
    """``410 Gone``: the resourceVersion is too old; the caller lists again."""


def require_client() -> Any:
    """The ``kubernetes`` package, or ImportError naming the pip command that installs it."""
    try:
        import kubernetes  # noqa: PLC0415 - optional: imported only when the provider is configured
    except ImportError as exc:
        raise ImportError(
            f"providers.kubernetesIngress needs the Kubernetes client library: {INSTALL_HINT}"
        ) from exc
    return kubernetes


def client_installed() -> bool:
    """Whether the ``kubernetes`` package can be imported, found without importing it (the start checks
    this, and so does every ``dockroute healthcheck``: the import itself costs about a second)."""
    try:
        return importlib.util.find_spec("kubernetes") is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class Resource:
    """One kind the provider watches: the client's API class and the method names for one namespace and
    for every namespace (``None``: cluster-scoped)."""

    kind: str
    api: str
    namespaced: str | None
    all_namespaces: str


RESOURCES = {
    "ingresses": Resource(
        "ingresses", "NetworkingV1Api", "list_namespaced_ingress", "list_ingress_for_all_namespaces"
    ),
    "ingressclasses": Resource("ingressclasses", "NetworkingV1Api", None, "list_ingress_class"),
    "services": Resource(
        "services", "CoreV1Api", "list_namespaced_service", "list_service_for_all_namespaces"
    ),
    "endpointslices": Resource(
        "endpointslices",
        "DiscoveryV1Api",
        "list_namespaced_endpoint_slice",
        "list_endpoint_slice_for_all_namespaces",
    ),
    "secrets": Resource("secrets", "CoreV1Api", "list_namespaced_secret", "list_secret_for_all_namespaces"),
}


def _token(value: str) -> str:
    """Traefik's FileOrContent: a path to a file holding the token, or the token itself."""
    if value and os.path.isfile(value):
        with open(value, encoding="utf-8") as f:
            return f.read().strip()
    return value.strip()


def _configuration(settings: KubernetesIngressSettings, environ: dict[str, str]) -> tuple[Any, str]:
    """The client configuration and where it came from, in Traefik's order: in-cluster (the
    ``KUBERNETES_SERVICE_*`` variables; ``endpoint`` overrides the address), ``$KUBECONFIG``, then
    ``endpoint`` with ``token`` and ``certAuthFilePath``, else the default kubeconfig."""
    k8s = require_client()
    cfg = k8s.client.Configuration()
    if environ.get("KUBERNETES_SERVICE_HOST") and environ.get("KUBERNETES_SERVICE_PORT"):
        k8s.config.load_incluster_config(client_configuration=cfg)
        where = "in-cluster"
        if settings.endpoint:
            cfg.host = settings.endpoint
            where += f" with endpoint {settings.endpoint}"
            # The loader's token-refresh hook sets the in-cluster address again before every call: the
            # endpoint is set back after it.
            hook = cfg.refresh_api_key_hook

            def refresh(c: Any, hook: Any = hook, host: str = settings.endpoint) -> None:
                if hook is not None:
                    hook(c)
                c.host = host

            cfg.refresh_api_key_hook = refresh
        return cfg, where
    if environ.get("KUBECONFIG"):
        k8s.config.load_kube_config(config_file=environ["KUBECONFIG"], client_configuration=cfg)
        return cfg, f"kubeconfig {environ['KUBECONFIG']}"
    if settings.endpoint:
        cfg.host = settings.endpoint.rstrip("/")
        token = _token(settings.token)
        if token:
            cfg.api_key = {"authorization": f"Bearer {token}"}
        if settings.cert_auth_file_path:
            cfg.ssl_ca_cert = settings.cert_auth_file_path
        return cfg, f"endpoint {settings.endpoint}"
    k8s.config.load_kube_config(client_configuration=cfg)
    return cfg, "kubeconfig ~/.kube/config"


def _lines(resp: Any) -> Iterator[bytes]:
    """The response body's lines as they arrive (a watch sends one JSON event per line)."""
    buffer = b""
    for chunk in resp.stream(amt=None, decode_content=False):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer


def _status_error(status: int, body: bytes) -> ApiError:
    try:
        message = str(json.loads(body).get("message") or "")
    except (ValueError, AttributeError):
        message = body[:200].decode("utf-8", "replace")
    return (Gone if status == 410 else ApiError)(status, message)


class KubeApi:
    """The calls the provider makes, synchronous (its threads call them)."""

    def __init__(self, settings: KubernetesIngressSettings, environ: dict[str, str] | None = None) -> None:
        k8s = require_client()
        cfg, self.source = _configuration(settings, dict(os.environ if environ is None else environ))
        # No urllib3 retries: the provider's threads retry with their own backoff, and urllib3 would log a
        # warning for every attempt of every kind while the API is down (one line is the provider's).
        cfg.retries = False
        self.host = cfg.host
        self._client = k8s.client.ApiClient(configuration=cfg)
        self._apis: dict[str, Any] = {}
        self._k8s = k8s

    def _api(self, name: str) -> Any:
        if name not in self._apis:
            self._apis[name] = getattr(self._k8s.client, name)(api_client=self._client)
        return self._apis[name]

    def _call(self, res: Resource, namespace: str, **kwargs: Any) -> Any:
        api = self._api(res.api)
        try:
            if namespace and res.namespaced:
                resp = getattr(api, res.namespaced)(namespace, _preload_content=False, **kwargs)
            else:
                resp = getattr(api, res.all_namespaces)(_preload_content=False, **kwargs)
        except self._k8s.client.exceptions.ApiException as exc:
            raise _status_error(
                exc.status or 0,
                (exc.body or b"")
                if isinstance(exc.body, bytes)
                else str(exc.body or exc.reason or "").encode(),
            ) from None
        status = getattr(resp, "status", 200)
        if not 200 <= status <= 299:
            body = resp.data
            resp.release_conn()
            raise _status_error(status, body)
        return resp

    def list(self, res: Resource, namespace: str, label_selector: str = "") -> dict[str, Any]:
        """One list call: the API's ``<Kind>List`` as a dict (``items``, ``metadata.resourceVersion``)."""
        kwargs: dict[str, Any] = {"_request_timeout": (10.0, 60.0)}
        if label_selector:
            kwargs["label_selector"] = label_selector
        resp = self._call(res, namespace, **kwargs)
        try:
            return json.loads(resp.data)
        finally:
            resp.release_conn()

    def watch(
        self,
        res: Resource,
        namespace: str,
        resource_version: str,
        label_selector: str = "",
        timeout: int = 300,
        opened: Callable[[Any], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Watch events from ``resource_version`` (bookmarks asked for), as dicts, until the server ends the
        watch (``timeout``) or the connection drops (an exception). An ERROR event raises :class:`Gone`
        for 410, :class:`ApiError` otherwise. ``opened`` gets the response (to close it from another
        thread when the provider stops)."""
        kwargs: dict[str, Any] = {
            "watch": True,
            "resource_version": resource_version,
            "allow_watch_bookmarks": True,
            "timeout_seconds": timeout,
            "_request_timeout": (10.0, float(timeout + 30)),
        }
        if label_selector:
            kwargs["label_selector"] = label_selector
        resp = self._call(res, namespace, **kwargs)
        if opened is not None:
            opened(resp)
        try:
            for line in _lines(resp):
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    obj = event.get("object") or {}
                    status = int(obj.get("code") or 0)
                    raise (Gone if status == 410 else ApiError)(status, str(obj.get("message") or ""))
                yield event
        finally:
            resp.release_conn()

    def patch_ingress_status(self, namespace: str, name: str, ingress: list[dict[str, Any]]) -> None:
        """``PATCH .../ingresses/<name>/status``: ``status.loadBalancer.ingress`` set to ``ingress``."""
        body = {"status": {"loadBalancer": {"ingress": ingress}}}
        api = self._api("NetworkingV1Api")
        try:
            resp = api.patch_namespaced_ingress_status(
                name, namespace, body, _preload_content=False, _request_timeout=(10.0, 30.0)
            )
        except self._k8s.client.exceptions.ApiException as exc:
            raise ApiError(exc.status or 0, str(exc.reason or "")) from None
        status = getattr(resp, "status", 200)
        data = resp.data
        resp.release_conn()
        if not 200 <= status <= 299:
            raise _status_error(status, data)
