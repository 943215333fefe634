"""``providers.swarm``'s settings: the Docker provider's, plus the polling interval.

Traefik's swarm provider shares the Docker provider's options (its ``Shared`` and ``ClientConfig``) and
adds ``refreshSeconds``: swarm services and tasks change without a per-task event on other nodes, so
Traefik polls. dockroute polls at that interval too, and also rebuilds at once on the engine's service,
node and task-container events (``discover.swarm_provider``).
"""

from __future__ import annotations

from dataclasses import dataclass

from discover.docker_model import DockerSettings

__all__ = ["SwarmSettings"]


@dataclass(frozen=True, slots=True)
class SwarmSettings(DockerSettings):
    """``providers.swarm``: Traefik's options; ``provider`` names it in messages and qualified names."""

    provider: str = "swarm"
    refresh_seconds: float = 15.0  # Traefik's default
