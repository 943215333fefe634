"""What every part of the dynamic-configuration model shares: read-only mappings, qualified names and a
certificate's domains. HTTP (:mod:`discover.model`), TCP (:mod:`discover.model_tcp`) and UDP
(:mod:`discover.model_udp`) import it, so that none imports another's section."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

EMPTY: Mapping[str, Any] = MappingProxyType({})


def frozen_map(data: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only view of a copy of ``data``: the way every mapping in the model is stored."""
    return MappingProxyType(dict(data or {}))


@dataclass(frozen=True, slots=True)
class Domain:
    """A certificate's names: ``main`` and its subject alternative names."""

    main: str
    sans: tuple[str, ...] = ()


def qualify(name: str, provider: str) -> str:
    """``app`` → ``app@file``; an already qualified name is left as it is."""
    return name if "@" in name else f"{name}@{provider}"
