"""Options of ``chain``: other middlewares applied in order, as one."""

from __future__ import annotations

from dataclasses import dataclass

from discover.middlewares.fields import LIST, option


@dataclass(frozen=True, slots=True)
class Chain:
    """``chain.middlewares``: names qualified by ``merge`` like a router's references."""

    middlewares: tuple[str, ...] = option("middlewares", LIST, reference="middleware")


TYPES: dict[str, type] = {"chain": Chain}
