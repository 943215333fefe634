"""Traefik's ``tcp`` section, as a plain dict, → :mod:`discover.model_tcp`.

OWNER: helper T (issue 16). Stub until then: the section is read as absent, with the old warning.
"""

from __future__ import annotations

from typing import Any

from discover.model_tcp import TCPConfig
from discover.readers import At


def parse_tcp(value: Any, at: At, warnings: list[str]) -> TCPConfig:
    """The ``tcp`` section at ``at``; raises ConfigError on the first bad key, warnings as parse's."""
    warnings.append(f"{at.path}: TCP routing is not supported; the section is ignored")
    return TCPConfig()
