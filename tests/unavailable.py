"""What a test needs but this machine lacks: a skip on a workstation, a failure in CI (``.ci/run`` installs
and starts every real service and tool the tests use, so a missing one there is a broken CI, not a skip)."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def unavailable(msg: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def require_tools(*tools: str, hint: str = "") -> None:
    """Every command in ``tools`` is on the PATH, else :func:`unavailable` naming those missing."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        unavailable(f"not installed: {', '.join(missing)}{f' ({hint})' if hint else ''}")
