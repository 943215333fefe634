"""DNS-01: the TXT records that prove control of a name, written through a DNS provider's API.

One interface (:class:`~acme_client.dns.base.DnsProvider`: present a record, clean it up) and one module
per provider, found by name in :mod:`acme_client.dns.registry`. Credentials come from the environment
under lego's variable names (and their ``_FILE`` variants), read once at start, so a Traefik user's
``.env`` works unchanged.
"""
