"""Options of the headers middlewares, declared as :mod:`discover.middlewares.fields` says."""

from __future__ import annotations

# Traefik's type name → its options dataclass; collected by discover.middlewares.
TYPES: dict[str, type] = {}
