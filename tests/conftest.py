"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import pytest

from tests.integration.pebble_env import DownCA


@pytest.fixture
async def down_ca():
    """A CA that is down (every connection closed at once, counted): see ``DownCA``."""
    async with DownCA() as ca:
        yield ca
