"""A tool a test needs but dockroute must not depend on (sslyze pins an old cryptography; helm-sdkpy needs
Python 3.12), installed once into a venv of its own under /tmp and reused by later runs.

pytest-xdist workers may ask at the same time: the venv is made under an exclusive ``flock``. When it
cannot be made (no such Python, pip cannot reach an index), :func:`tests.unavailable.unavailable` decides:
a skip on a workstation, a failure in CI, where the check must not vanish.
"""

from __future__ import annotations

import fcntl
import subprocess
from pathlib import Path

from tests.unavailable import unavailable


def tool_venv(venv: Path, python: Path | str, requirements: list[str], check: str, what: str) -> Path:
    """The venv's Python at ``venv``, made with ``python`` and filled with ``requirements`` unless
    ``check`` (Python source) already runs in it. ``what`` names the tool in the message when pip fails."""
    exe = venv / "bin" / "python"
    with open(Path(str(venv) + ".lock"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if exe.exists() and subprocess.run([exe, "-c", check], capture_output=True).returncode == 0:
            return exe
        if not exe.exists():
            subprocess.run([str(python), "-m", "venv", str(venv)], check=True)
        pip = subprocess.run(
            [str(exe), "-m", "pip", "install", "-q", *requirements],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if pip.returncode != 0:  # the venv stays without them: the next run tries pip again
            unavailable(f"{what} cannot be installed here: {pip.stderr[-500:]}")
    return exe
