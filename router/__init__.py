"""The proxy: entry points, rule engine, load balancing, streaming proxy. Knows nothing of Docker."""
