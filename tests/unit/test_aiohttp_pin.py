"""aiohttp's floor in pyproject.toml stays at 3.14.3 or above, and the installed aiohttp meets it.

Why: dockroute's defence against request smuggling is aiohttp's C parser (llhttp) refusing ambiguous
framing (tests/hardening/test_parsing.py). The aiohttp releases 3.14.1 to 3.14.3 carry its 2026 parser
fixes (the C parser's ``max_line_size`` bypass, the pipelining queue); an older aiohttp still parses,
so nothing else would notice a lowered floor: a deployment resolving the oldest allowed version would
silently lose them.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

FLOOR = (3, 14, 3)
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _release(text: str) -> tuple[int, ...]:
    """The release numbers of a version (``3.14.3rc1`` -> ``(3, 14, 3)``), without ``packaging``'s help
    where it is not installed; a pre-release counts as its release here, which only matters for
    versions above the floor."""
    try:
        from packaging.version import Version
    except ImportError:
        match = re.match(r"\s*v?(\d+(?:\.\d+)*)", text)
        assert match, f"not a version: {text!r}"
        return tuple(int(part) for part in match.group(1).split("."))
    return Version(text).release


def _padded(release: tuple[int, ...]) -> tuple[int, ...]:
    return release + (0,) * (3 - len(release))


def _aiohttp_requirement() -> str:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    found = [d for d in dependencies if re.match(r"aiohttp\s*(?:[\[<>=!~;\s]|$)", d)]
    assert len(found) == 1, found
    return found[0]


def _lower_bounds(requirement: str) -> list[str]:
    """The versions after ``>=``, ``~=`` or ``==`` in a requirement (the markers after ``;`` left out)."""
    spec = requirement.split(";", 1)[0]
    return re.findall(r"(?:>=|~=|===?)\s*([0-9][0-9A-Za-z.!+*-]*)", spec)


def test_pyproject_floor_is_at_least_3_14_3():
    requirement = _aiohttp_requirement()
    bounds = _lower_bounds(requirement)
    assert bounds, f"aiohttp has no lower bound in pyproject.toml: {requirement!r}"
    assert max(_padded(_release(b.rstrip(".*"))) for b in bounds) >= FLOOR, requirement


def test_installed_aiohttp_is_at_least_the_floor():
    installed = metadata.version("aiohttp")
    assert _padded(_release(installed)) >= FLOOR, installed


def test_the_bound_reader_sees_a_lowered_floor():
    """The check above fails where someone lowers the floor (or drops it): its reader is not blind."""
    assert _lower_bounds("aiohttp>=3.13.2") == ["3.13.2"]
    assert _padded(_release("3.13.2")) < FLOOR
    assert _lower_bounds("aiohttp<4") == []
    assert _lower_bounds("aiohttp[speedups]>=3.14.3,<4; python_version>='3.11'") == ["3.14.3"]
