"""The code stays readable: no module over 600 lines, no function over 80, unless a comment says why.

A module or function that has a reason to be longer carries ``# long: <why>`` (in the module's first
lines, or on the ``def`` line or the line above it); the reason is then read in review, not by this test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("discover", "router", "acme_client", "dockroute", "bench")
MAX_MODULE, MAX_FUNCTION = 600, 80


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _excused(lines: list[str], lineno: int) -> bool:
    """``# long:`` on the def line (1-based ``lineno``), the line above it, or its decorators."""
    return any("# long:" in lines[i] for i in range(max(0, lineno - 3), min(len(lines), lineno)))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_and_functions_stay_short(path: Path) -> None:
    text = path.read_text()
    lines = text.splitlines()
    if len(lines) > MAX_MODULE:
        assert any("# long:" in line for line in lines[:20]), f"{len(lines)} lines (over {MAX_MODULE})"
    too_long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION
        and not _excused(lines, node.lineno)
    ]
    assert not too_long, f"functions over {MAX_FUNCTION} lines: {', '.join(too_long)}"
