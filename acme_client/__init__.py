"""ACME certificates (acme + josepy). Knows nothing of Docker or aiohttp."""
