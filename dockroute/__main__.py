"""``python -m dockroute``."""

from dockroute.cli import main

raise SystemExit(main())
