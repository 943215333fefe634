"""Traefik's ``udp`` section, as a plain dict, → :mod:`discover.model_udp`.

OWNER: helper U (issue 16). Stub until then: the section is read as absent, with the old warning.
"""

from __future__ import annotations

from typing import Any

from discover.model_udp import UDPConfig
from discover.readers import At


def parse_udp(value: Any, at: At, warnings: list[str]) -> UDPConfig:
    """The ``udp`` section at ``at``; raises ConfigError on the first bad key, warnings as parse's."""
    warnings.append(f"{at.path}: UDP routing is not supported; the section is ignored")
    return UDPConfig()
