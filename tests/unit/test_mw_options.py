"""Every middleware type dockroute implements declares every option Traefik has (so none is an "unknown
key" to a Traefik user), and the two registries, discover's options and the router's modules, agree."""

from __future__ import annotations

import dataclasses

import pytest

from discover.middlewares.registry import OPTION_TYPES
from discover.parse import MIDDLEWARE_TYPES
from router.middlewares import MODULES, implemented
from tests.traefik_options import TRAEFIK_OPTIONS

NOT_IMPLEMENTED = {"grpcWeb", "passTLSClientCert", "plugin"}


def declared(cls: type, prefix: str = "") -> set[str]:
    out = set()
    for f in dataclasses.fields(cls):
        key = prefix + f.metadata["key"]
        out.add(key)
        if f.metadata["section"] is not None:
            out |= declared(f.metadata["section"], key + ".")
    return out


def traefik(schema, prefix: str = "") -> set[str]:
    out = set()
    for k, v in schema.items():
        out.add(prefix + k)
        if isinstance(v, dict):
            out |= traefik(v, prefix + k + ".")
    return out


@pytest.mark.parametrize("mtype", sorted(set(TRAEFIK_OPTIONS) - NOT_IMPLEMENTED))
def test_every_traefik_option_is_declared(mtype):
    assert traefik(TRAEFIK_OPTIONS[mtype]) <= declared(OPTION_TYPES[mtype])


def test_discover_and_the_router_agree_on_what_is_implemented():
    for mtype in MIDDLEWARE_TYPES:
        has_options = mtype in OPTION_TYPES
        assert has_options == (mtype not in NOT_IMPLEMENTED), mtype
        if mtype != "chain":  # chain is expanded when a router's chain is composed: no module
            assert implemented(mtype) == has_options, mtype
    assert set(MODULES) <= set(MIDDLEWARE_TYPES)
