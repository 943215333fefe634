"""Typed resolver settings for tests, read through the real static configuration reader.

Tests write a resolver's ``acme`` section as a mapping, the way it is written in Traefik's YAML; it goes
into a static configuration file and through :func:`~dockroute.static.load_static`, so a test sees exactly
what the proxy would start with (or the one-line error it would exit 2 with), never a second reader.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from acme_client.settings import ResolverSettings
from dockroute.static import StaticConfig, StaticConfigError, load_static

__all__ = ["acme_error", "acme_settings", "load_acme"]


def load_acme(
    acme: Mapping[str, Any],
    *,
    name: str = "le",
    argv: Sequence[str] = (),
    entry_points: Mapping[str, str] | None = None,
) -> StaticConfig:
    """The static configuration of a YAML file holding ``certificatesResolvers.<name>.acme: acme``
    (and ``entryPoints`` name -> address when given; else Traefik's embedded ``web``), plus ``argv``."""
    doc: dict[str, Any] = {"certificatesResolvers": {name: {"acme": dict(acme)}}}
    if entry_points is not None:
        doc["entryPoints"] = {ep: {"address": address} for ep, address in entry_points.items()}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "traefik.yml"
        path.write_text(yaml.safe_dump(doc))
        return load_static(list(argv), {}, config_file=str(path), search_dirs=())


def acme_settings(acme: Mapping[str, Any], *, name: str = "le", **kw: Any) -> ResolverSettings:
    """Resolver ``name``'s typed settings (see :func:`load_acme`)."""
    settings = load_acme(acme, name=name, **kw).resolvers[name]
    assert isinstance(settings, ResolverSettings)
    return settings


def acme_error(acme: Mapping[str, Any], *, name: str = "le", **kw: Any) -> StaticConfigError:
    """The error the start stops with (exit 2) for this ``acme`` section: one line naming the key."""
    with pytest.raises(StaticConfigError) as info:
        load_acme(acme, name=name, **kw)
    assert "\n" not in str(info.value)
    return info.value
