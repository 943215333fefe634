"""Options of the cache middlewares, declared as :mod:`discover.middlewares.fields` says.

``cache`` is dockroute's own type (Traefik has a response cache only as a plugin): a shared HTTP cache
in the proxy's memory, per router, following ``Cache-Control``/``Expires``/``Vary`` (router/middlewares/
cache.py). The options are what an nginx ``proxy_cache`` or Caddy ``cache`` user sets first: how much
memory in all and per response, and a lifetime for responses that state none.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from discover.middlewares.fields import DURATION, INT, option

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class Cache:
    """``cache``: responses kept in memory, bounded in bytes (least recently used dropped first)."""

    # total bytes of the stored responses (bodies, headers, keys) of one router's cache
    max_size_bytes: int = option("maxSizeBytes", INT, 64 * MIB, minimum=1)
    # a response whose body is longer is passed through and not stored (the default, 1 MiB, is lowered to
    # maxSizeBytes when that is smaller; a larger value set explicitly is refused)
    max_entry_bytes: int = option("maxEntryBytes", INT, MIB, minimum=1)
    # lifetime of a cacheable response that gives none (no max-age, s-maxage or Expires), as nginx's
    # proxy_cache_valid or Souin's ttl; 0 (the default): such responses are not stored
    default_ttl: float = option("defaultTtl", DURATION, 0.0, minimum=0)

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.max_entry_bytes > self.max_size_bytes and self.max_entry_bytes != MIB:
            yield (
                "maxEntryBytes",
                f"{self.max_entry_bytes} is more than maxSizeBytes ({self.max_size_bytes}): "
                "no response that large could be stored",
            )


# Traefik's type name → its options dataclass; collected by discover.middlewares.registry.
TYPES: dict[str, type] = {"cache": Cache}
