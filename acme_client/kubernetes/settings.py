"""The ``storage`` value that puts a resolver's certificates in a Kubernetes Secret (dockroute's extension).

``certificatesResolvers.<name>.acme.storage: kubernetes://<namespace>/<secret>`` (optionally
``?leaseDuration=<seconds>``). Traefik reads ``storage`` as a file path only, so a Traefik configuration
never carries this form by accident; dockroute's static configuration checks it with :func:`parse_storage`
at start and refuses a malformed value by name. Nothing here imports the Kubernetes client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

__all__ = ["DEFAULT_LEASE_DURATION", "SCHEME", "KubernetesStore", "is_kubernetes_storage", "parse_storage"]

SCHEME = "kubernetes"
# client-go's leader election uses 15 s (kube-controller-manager, kube-scheduler): a dead orderer's names
# wait that long before another replica orders them; a live one renews every third of it.
DEFAULT_LEASE_DURATION = 15
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # RFC 1123 label: a namespace
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")  # a Secret name
_DURATION = re.compile(r"(\d+)(s|m)?")


@dataclass(frozen=True, slots=True)
class KubernetesStore:
    """Where the certificates live (``namespace``/``secret``, key ``acme.json``) and how long a Lease
    outlives a replica that stopped renewing it (``lease_duration`` seconds)."""

    namespace: str
    secret: str
    lease_duration: int = DEFAULT_LEASE_DURATION

    @property
    def url(self) -> str:
        """The value as the logs name it (``kubernetes://<namespace>/<secret>``)."""
        return f"{SCHEME}://{self.namespace}/{self.secret}"


def is_kubernetes_storage(value: str) -> bool:
    """Whether ``storage`` asks for a Secret (then :func:`parse_storage` must accept it)."""
    return value.strip().lower().startswith(f"{SCHEME}:")


def _lease_duration(text: str) -> int:
    m = _DURATION.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"leaseDuration {text!r} is not a number of seconds (like 15 or 15s, or 1m)")
    seconds = int(m.group(1)) * (60 if m.group(2) == "m" else 1)
    if not 2 <= seconds <= 3600:
        raise ValueError(f"leaseDuration {text!r} must be between 2 seconds and an hour")
    return seconds


def parse_storage(value: str) -> KubernetesStore:
    """``kubernetes://<namespace>/<secret>[?leaseDuration=15s]``; ValueError saying what is wrong."""
    parts = urlsplit(value.strip())
    example = f"expected {SCHEME}://<namespace>/<secret>"
    if parts.scheme.lower() != SCHEME or not value.strip().lower().startswith(f"{SCHEME}://"):
        raise ValueError(f"{example}, got {value!r}")
    namespace, secret = parts.netloc, parts.path.removeprefix("/")
    if not namespace or not secret:
        raise ValueError(f"{example} (both named), got {value!r}")
    if len(namespace) > 63 or not _LABEL.fullmatch(namespace):
        raise ValueError(
            f"namespace {namespace!r} is not a Kubernetes namespace name (lower-case RFC 1123 label)"
        )
    if len(secret) > 253 or not _SUBDOMAIN.fullmatch(secret):
        raise ValueError(f"secret {secret!r} is not a Kubernetes object name (lower-case RFC 1123 subdomain)")
    if parts.fragment:
        raise ValueError(f"unexpected #{parts.fragment} in {value!r}")
    lease = DEFAULT_LEASE_DURATION
    for key, text in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query)):
        if key != "leaseDuration":
            raise ValueError(f"unknown option {key!r} in {value!r} (only leaseDuration)")
        lease = _lease_duration(text)
    return KubernetesStore(namespace, secret, lease)
