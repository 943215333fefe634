"""The package boundaries of the brief, checked on the source (lint-imports checks the same in CI):
router imports nothing of discover but the model, the expression grammar and RE2, and none of Docker or
ACME; discover never aiohttp."""

import ast
import tomllib
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


# What the router may see of discover: the config types (with the middleware options dataclasses), the rule
# grammar, RE2 regexes, and the table of Go's TLS names (shared with the parser, so what parses is what the
# router can build).
ROUTER_MAY_IMPORT = {
    "discover.model",
    "discover.model_base",
    "discover.model_tcp",
    "discover.model_udp",
    "discover.goexpr",
    "discover.goregex",
    "discover.tls_names",
    "discover.middlewares",
    *(
        f"discover.middlewares.{p.stem}"
        for p in (ROOT / "discover" / "middlewares").glob("*.py")
        if p.stem not in ("__init__", "fields", "registry")
    ),
}


def test_router_sees_only_the_model_grammar_and_regexes_of_discover():
    bad = [(f, m) for f, m in imports("router") if m.startswith("discover") and m not in ROUTER_MAY_IMPORT]
    assert not bad


def discover_modules() -> set[str]:
    out = set()
    for path in (ROOT / "discover").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) > 1:
            out.add(".".join(parts))
    return out


def router_contract_forbids() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = [
        c for c in config["tool"]["importlinter"]["contracts"] if c["source_modules"] == ["router"]
    ]
    return set(contract["forbidden_modules"])


def test_router_contract_names_every_discover_module():
    """The import contract forbids by name, so a new discover module would be open to the router until
    someone lists it: every discover module is either one the router may import or forbidden by name
    (lint-imports, for its part, refuses a listed module that does not exist)."""
    forbidden = router_contract_forbids()
    modules = discover_modules()
    assert modules >= ROUTER_MAY_IMPORT
    assert not ROUTER_MAY_IMPORT & forbidden
    unlisted = modules - ROUTER_MAY_IMPORT - forbidden
    assert not unlisted, f"add these to the router contract's forbidden_modules in pyproject.toml: {unlisted}"


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
