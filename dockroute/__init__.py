"""dockroute: a reverse proxy for Docker hosts."""

__version__ = "0.1.0"
