"""Providers: turn Docker containers and files into the dynamic-config model (no aiohttp here)."""
