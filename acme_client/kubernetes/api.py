"""The Kubernetes API calls the Secret store and the Leases make, through the official ``kubernetes``
client (kubernetes-client/python): Secrets and Leases, get / create / replace, as plain dicts.

Why the official client, and not a few hand-written HTTP requests: it loads the credentials the way
``kubectl`` does (kubeconfig with exec plugins, OIDC, client certificates) and, in a pod, the service
account's token, re-reading it as the kubelet rotates it. It is imported here only, and this module only
when a ``kubernetes://`` store is configured (``pip install 'dockroute[kubernetes]'``).

Objects go both ways as dicts (``_preload_content=False``, JSON bodies): no model classes between the
API server and ``acme.json``'s JSON. Every call has a deadline; all of them block: worker threads only.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

__all__ = ["ApiError", "Conflict", "KubeApi", "credentials_problem"]

_TIMEOUT = (5.0, 15.0)  # seconds: connect, read (each call)
_SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount/token"


class ApiError(Exception):
    """The API server refused a call or could not be reached (``status`` 0 then)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Conflict(ApiError):
    """409: the object changed since it was read (``resourceVersion``), or it exists already (create)."""


def in_cluster() -> bool:
    """Whether this process runs in a pod (then its service account is what is used). The test is the
    Ingress provider's (``discover.kubernetes.client``): both ``KUBERNETES_SERVICE_*`` variables, as the
    client's in-cluster loader needs them; the token file must be there too, or the loader fails."""
    return (
        bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        and bool(os.environ.get("KUBERNETES_SERVICE_PORT"))
        and os.path.exists(_SERVICE_ACCOUNT)
    )


def credentials_problem() -> str | None:
    """Why no credentials can be found (checked at start, cheaply: no network, no exec plugin), or None:
    a pod's service account, else a kubeconfig (``KUBECONFIG``, else ``~/.kube/config``)."""
    if in_cluster():
        return None
    paths = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    paths = paths or [os.path.expanduser("~/.kube/config")]
    if any(os.path.isfile(p) for p in paths):
        return None
    return (
        "no Kubernetes credentials: not in a pod with a service account token, and no kubeconfig at "
        f"{os.pathsep.join(paths)} (set KUBECONFIG)"
    )


def _error(exc: BaseException, what: str) -> ApiError:
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status:
        reason = getattr(exc, "reason", "") or ""
        try:
            reason = json.loads(getattr(exc, "body", "") or "{}").get("message") or reason
        except (ValueError, AttributeError):
            pass
        cls = Conflict if status == 409 else ApiError
        return cls(status, f"{what}: {status} {reason}".strip())
    return ApiError(0, f"{what}: {type(exc).__name__}: {exc}")


class KubeApi:
    """Secrets and Leases of one cluster. The client is made on first use (in the worker thread: loading
    a kubeconfig may run an exec plugin) and shared by every store of the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._core: Any = None
        self._coordination: Any = None

    def _clients(self) -> tuple[Any, Any]:
        with self._lock:
            if self._core is None:
                from kubernetes import client, config  # noqa: PLC0415 - imported only when used

                configuration = client.Configuration()
                try:
                    if in_cluster():
                        config.load_incluster_config(client_configuration=configuration)
                    else:
                        config.load_kube_config(
                            config_file=os.environ.get("KUBECONFIG") or None,
                            client_configuration=configuration,
                        )
                except Exception as exc:  # the loaders raise ConfigException, OSError, YAML errors...
                    raise ApiError(0, f"cannot load Kubernetes credentials: {exc}") from exc
                # No urllib3 retries (as the Ingress provider): the resolver's backoff retries, and urllib3
                # would log a warning per attempt and stretch each call while the API is down.
                configuration.retries = False
                api_client = client.ApiClient(configuration)
                self._core = client.CoreV1Api(api_client)
                self._coordination = client.CoordinationV1Api(api_client)
            return self._core, self._coordination

    def _call(self, what: str, method: str, *args: Any, lease: bool = False) -> dict[str, Any] | None:
        """One call; its JSON answer, None for 404 on a read. ApiError (Conflict for 409) otherwise."""
        core, coordination = self._clients()
        api = coordination if lease else core
        try:
            answer = getattr(api, method)(*args, _preload_content=False, _request_timeout=_TIMEOUT)
        except Exception as exc:  # ApiException, urllib3's connection errors, timeouts
            error = _error(exc, what)
            if error.status == 404 and method.startswith("read_"):
                return None
            raise error from exc
        return json.loads(answer.data)

    # Secrets

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._call(f"get secret {namespace}/{name}", "read_namespaced_secret", name, namespace)

    def create_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        what = f"create secret {namespace}/{body['metadata']['name']}"
        return self._call(what, "create_namespaced_secret", namespace, body) or {}

    def replace_secret(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        what = f"update secret {namespace}/{name}"
        return self._call(what, "replace_namespaced_secret", name, namespace, body) or {}

    # Leases (coordination.k8s.io/v1)

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._call(
            f"get lease {namespace}/{name}", "read_namespaced_lease", name, namespace, lease=True
        )

    def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        what = f"create lease {namespace}/{body['metadata']['name']}"
        return self._call(what, "create_namespaced_lease", namespace, body, lease=True) or {}

    def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        what = f"update lease {namespace}/{name}"
        return self._call(what, "replace_namespaced_lease", name, namespace, body, lease=True) or {}
