"""UDP routing (Traefik's ``udp`` section on ``/udp`` entry points): the compiled tables
(:mod:`.table`), the entry points with their sessions (:mod:`.endpoint`), and the group the app drives
(:mod:`.group`)."""
