"""TCP routing: rules on what a connection shows before any byte is relayed, the per-entry-point table,
services, middlewares and the relay (Traefik's ``tcp`` section)."""
