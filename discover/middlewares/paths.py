"""Options of the paths middlewares, declared as :mod:`discover.middlewares.fields` says."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from discover.middlewares.fields import STR, option


@dataclass(frozen=True, slots=True)
class AddPrefix:
    """``addPrefix.prefix``: prepended to the request path."""

    prefix: str = option("prefix", STR, "")

    def problems(self) -> Iterator[tuple[str, str]]:
        if not self.prefix.startswith("/"):
            yield "prefix", f"must start with '/', got {self.prefix!r}"


# Traefik's type name → its options dataclass; collected by discover.middlewares.registry.
TYPES: dict[str, type] = {"addPrefix": AddPrefix}
