"""``certificatesResolvers.<name>.internalCA``: dockroute's own CA for names no public CA certifies.

Skeleton (interface only): the app can build and run it like an :class:`AcmeResolver`; it serves nothing
yet.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from acme_client.settings import InternalCASettings

__all__ = ["InternalCA", "InternalCAError", "Leaf"]

log = logging.getLogger("dockroute.acme")


class InternalCAError(Exception):
    """The CA's storage cannot be used (unsafe permissions, unreadable, unwritable) or a name is refused."""


@dataclass(frozen=True, slots=True)
class Leaf:
    """One issued certificate: ``certificate_pem`` is the full chain, leaf first."""

    names: tuple[str, ...]
    certificate_pem: bytes
    key_pem: bytes


class InternalCA:
    """Issues leaf certificates from a root kept in ``settings.storage``; the app's resolver surface."""

    def __init__(self, name: str, settings: InternalCASettings, on_change: Callable[[], None]) -> None:
        self.name = name
        self.settings = settings
        self.on_change = on_change
        self.alpn_certs: dict[str, tuple[bytes, bytes]] = {}  # never any: no ACME challenge here
        self._leaves: dict[tuple[str, ...], Leaf] = {}
        self._wanted: list[tuple[str, ...]] = []
        self._kick: asyncio.Event | None = None

    def certificates(self) -> list[Leaf]:
        return list(self._leaves.values())

    def key_authorization(self, token: str) -> None:
        return None

    def alpn_challenge(self, server_name: str) -> None:
        return None

    def want(self, name_sets: Iterable[tuple[str, ...]]) -> None:
        self._wanted = [tuple(names) for names in name_sets]
        if self._kick is not None:
            self._kick.set()

    async def run(self) -> None:
        self._kick = asyncio.Event()
        while True:
            await self._kick.wait()
            self._kick.clear()

    def ensure_root(self) -> bytes:
        """The root certificate's PEM, created on first use."""
        raise InternalCAError("internal CA: not implemented yet")
