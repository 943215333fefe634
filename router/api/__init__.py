"""The API and dashboard (``api@internal``, ``dashboard@internal``): what is routed, and why something is
not, in Traefik's paths and JSON shapes plus dockroute's own ``/api/certificates`` and
``/api/discovery``. Everything it shows comes from one :class:`~router.api.state.ApiState` the app
publishes after each configuration it applies."""
