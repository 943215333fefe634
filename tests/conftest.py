"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import os

import pytest

from tests.integration.pebble_env import DownCA


@pytest.fixture
def no_config_variables(monkeypatch):
    """No DOCKROUTE_/TRAEFIK_ variable, and no configuration file found where dockroute looks (XDG folder,
    the working directory), for tests that load the static configuration as the command does."""
    for key in list(os.environ):
        if key.startswith(("DOCKROUTE_", "TRAEFIK_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CONFIG_HOME", "/nonexistent")
    monkeypatch.chdir("/")


@pytest.fixture
async def down_ca():
    """A CA that is down (every connection closed at once, counted): see ``DownCA``."""
    async with DownCA() as ca:
        yield ca
