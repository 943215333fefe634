"""Process logging in Traefik's two formats: ``common`` (human) and ``json`` (one object per line)."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "FATAL": logging.CRITICAL,
    "PANIC": logging.CRITICAL,
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "level": record.levelname.lower(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, separators=(",", ":"))


def setup_logging(settings: Any) -> None:
    """Configure the root logger from ``log`` (level, format, filePath); idempotent."""
    level = _LEVELS.get(str(getattr(settings, "level", "INFO")).upper(), logging.INFO)
    path = getattr(settings, "file_path", None)
    handler: logging.Handler = logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
    if getattr(settings, "format", "common") == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("aiohttp", "docker", "urllib3"):  # their DEBUG output drowns the proxy's own
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
