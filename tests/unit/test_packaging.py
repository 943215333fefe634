"""What ``pip install .`` ships: every package of the source tree, subpackages included.

An explicit package list once left ``dockroute.static`` out of the wheel, so a non-editable install
failed at its first import; editable installs (and so the test suite) never noticed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[2]
TOP = ("dockroute", "discover", "router", "acme_client")


def _source_packages() -> set[str]:
    found = set()
    for top in TOP:
        for init in (ROOT / top).rglob("__init__.py"):
            found.add(".".join(init.parent.relative_to(ROOT).parts))
    return found


def _shipped_packages() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = config.get("packages")
    if isinstance(packages, list):
        return set(packages)
    find = packages["find"]
    return set(
        find_packages(where=str(ROOT), include=find.get("include", ["*"]), exclude=find.get("exclude", ()))
    )


def test_every_package_of_the_source_tree_is_shipped() -> None:
    source = _source_packages()
    assert {"dockroute.static"} <= source
    assert source - _shipped_packages() == set()


def test_nothing_but_the_four_packages_is_shipped() -> None:
    assert {p.split(".")[0] for p in _shipped_packages()} == set(TOP)
