"""Certificates shared by replicas on Kubernetes: the store is a Secret, the orderer is chosen by a Lease.

- :mod:`.settings`: the ``storage`` value ``kubernetes://<namespace>/<secret>`` that turns it on (no import
  of the Kubernetes client: the static configuration checks the value with it at start);
- :mod:`.api`: the few calls made (Secrets and Leases: get, create, replace), through the official
  ``kubernetes`` client, imported only when such a store is configured;
- :mod:`.secret_store`: ``acme.json``'s JSON in a Secret, read-modify-write with optimistic concurrency;
- :mod:`.lease`: one Lease per (resolver, name set), held while one replica orders.

Everything here blocks on the network: call it from the resolver's worker thread, never the event loop.
"""
