"""Wiring of the Kubernetes certificate store: ``certificatesResolvers.<name>.acme.storage:
kubernetes://<namespace>/<secret>`` (dockroute's extension; Traefik reads ``storage`` as a file path).

- :func:`storage_problem`, for the static configuration at start: a malformed value, the ``kubernetes``
  client not installed, or no credentials to be found refuse the start naming the key;
- :func:`acme_storage`, for :func:`dockroute.certificates.build_resolvers`: the resolver's store, a
  :class:`~acme_client.kubernetes.secret_store.SecretStorage` for such a value, None (the acme.json file)
  otherwise.

The Kubernetes client is imported only here and only for such a value (``acme_client.kubernetes.api``
imports it on first use, in the resolver's worker thread): a file store costs nothing more.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import uuid

from acme_client.kubernetes.settings import is_kubernetes_storage, parse_storage
from acme_client.settings import ResolverSettings
from acme_client.storage import AcmeStorage

__all__ = ["acme_storage", "identity", "storage_problem"]

_INSTALL = "pip install 'dockroute[kubernetes]'"
_api = None  # one API client for every Kubernetes store of the process, made on first use


def storage_problem(value: str) -> str | None:
    """Why ``storage`` cannot be used, for a ``kubernetes://`` value (None: usable, or a file path)."""
    if not is_kubernetes_storage(value):
        return None
    try:
        parse_storage(value)
    except ValueError as exc:
        return str(exc)
    if importlib.util.find_spec("kubernetes") is None:
        return f"a Kubernetes Secret store needs the Kubernetes client: {_INSTALL}"
    from acme_client.kubernetes.api import credentials_problem  # noqa: PLC0415 - imports nothing heavy

    return credentials_problem()


def identity() -> str:
    """This replica in the Leases it holds: the pod's name (``POD_NAME``, set by the Helm chart from the
    downward API; else the host name, which is the pod's name in Kubernetes) and a random suffix, so that a
    container restarted in the same pod is another holder than the one that died."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def acme_storage(settings: ResolverSettings) -> AcmeStorage | None:
    """The store of an ACME resolver whose ``storage`` names a Secret; None for an acme.json file. The
    value was checked at start (:func:`storage_problem`)."""
    if not is_kubernetes_storage(settings.storage):
        return None
    global _api
    from acme_client.kubernetes.api import KubeApi  # noqa: PLC0415 - only for a kubernetes:// store
    from acme_client.kubernetes.secret_store import SecretStorage  # noqa: PLC0415

    if _api is None:
        _api = KubeApi()
    return SecretStorage(_api, parse_storage(settings.storage), identity())
