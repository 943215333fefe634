"""Fixtures shared by the unit tests of more than one module: the Kubernetes replay server's
(tests/kube_replay/server.py: ``values`` and ``replay``)."""

from tests.kube_replay.server import replay, values  # noqa: F401 - fixtures, registered by this import
