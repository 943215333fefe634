"""Every middleware type's options dataclass by Traefik's type name, and the one reader for them all.

Each family module (``paths``, ``headers``, ``auth``, ...) declares its types with
:func:`discover.middlewares.fields.option` and lists them in its ``TYPES``; :data:`OPTION_TYPES` collects
them. The file parser and the Docker label parser both call :func:`read_middleware_options`; the router
builds each middleware from its dataclass (``router/middlewares/``). A type with no dataclass here is
not implemented: its options stay a plain read-only mapping and the router refuses routers using it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from discover.middlewares import access, auth, cache, chain, compress, headers, paths, resilience
from discover.middlewares.fields import read_options
from discover.readers import At

__all__ = ["OPTION_TYPES", "read_middleware_options"]

OPTION_TYPES: Mapping[str, type] = {
    **paths.TYPES,
    **headers.TYPES,
    **auth.TYPES,
    **access.TYPES,
    **resilience.TYPES,
    **compress.TYPES,
    **cache.TYPES,
    **chain.TYPES,
}


def read_middleware_options(mtype: str, value: Any, at: At) -> Any:
    """The typed options of a middleware of type ``mtype`` (Traefik's canonical spelling); raises
    :class:`~discover.readers.ConfigError` naming the option at fault."""
    return read_options(OPTION_TYPES[mtype], value, at)
