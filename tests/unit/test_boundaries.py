"""The package boundaries of the brief, checked on the source (lint-imports checks the same in CI):
router imports nothing of discover but the model, and none of Docker or ACME; discover never aiohttp."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imports(package: str) -> list[tuple[str, str]]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out += [(path.name, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                out.append((path.name, node.module))
    return out


def test_router_sees_only_the_model_of_discover():
    bad = [(f, m) for f, m in imports("router") if m.startswith("discover") and m != "discover.model"]
    assert not bad


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("router", ("docker", "acme", "josepy", "acme_client", "dockroute")),
        ("discover", ("aiohttp", "router", "acme_client", "dockroute", "httptools")),
        ("acme_client", ("docker", "aiohttp", "discover", "router", "dockroute")),
    ],
)
def test_forbidden_imports(package, forbidden):
    bad = [(f, m) for f, m in imports(package) if m.split(".")[0] in forbidden]
    assert not bad
