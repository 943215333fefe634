"""Throughput and latency of dockroute against nginx, Caddy and HAProxy: ``python -m bench``."""
