"""gunicorn settings and hooks for ``fhirgen serve`` (``gunicorn_command`` passes this module
as its config)."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# gunicorn's own error log, and fhirgen's loggers routed to it, at FHIRGEN_LOG_LEVEL.
loglevel = os.environ.get("FHIRGEN_LOG_LEVEL", "INFO").lower()
APP_LOGGERS = ("fhirgen", "webhooks", "workers")


def post_worker_init(worker: Any) -> None:
    """Send the app's log lines where gunicorn's error log goes, then freeze what the worker
    imported (Flask, Celery, kombu, SQLAlchemy, the FHIR models): it lives as long as the
    process, and frozen, the garbage collector's full passes no longer walk it.
    bench/ingest.py: the webhook's p99 at concurrency 1 went from 27 to 13 ms."""
    route_app_logs(logging.getLogger("gunicorn.error"), loglevel.upper())
    gc.collect()
    gc.freeze()


def route_app_logs(target: logging.Logger, level: str) -> None:
    """fhirgen's loggers write through ``target``'s handlers at ``level``; without this they
    had no handler, so the webhook's INFO and DEBUG lines were dropped and its warnings went
    to stderr as bare messages."""
    for name in APP_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = list(target.handlers)
        logger.setLevel(level)
        logger.propagate = False


_WRITER: subprocess.Popen[bytes] | None = None


def when_ready(server: Any) -> None:
    """Start the intake writer (``webhooks.intake_writer``; SQLite stores) before the workers
    are forked, and wait until it listens. If it cannot start, the workers record for
    themselves."""
    global _WRITER
    if getattr(server.app, "app_uri", None) != "webhooks:create_app()":
        return  # another app under this configuration (the benchmark's bare endpoint)
    from fhirgen.config import load_settings
    from fhirgen.store import Store
    from webhooks.intake_writer import socket_path

    try:
        store = Store.from_settings(load_settings())
        path = socket_path(store)
        store.dispose()
    except Exception as exc:  # noqa: BLE001  # the workers will say what is wrong, and answer 503
        server.log.warning("intake writer not started (%s)", type(exc).__name__)
        return
    if path is None:
        return
    Path(path).unlink(missing_ok=True)  # a writer that did not stop cleanly left it
    writer = [sys.executable, "-m", "webhooks.intake_writer", "--supervise", path]
    _WRITER = subprocess.Popen(writer)  # noqa: S603  # our own command; the path names the store in ps
    deadline = time.monotonic() + 30
    while not Path(path).exists():
        if _WRITER.poll() is not None or time.monotonic() > deadline:
            server.log.warning("intake writer did not start; workers record for themselves")
            return
        time.sleep(0.05)


def on_exit(server: Any) -> None:
    """Stop the intake writer once the workers have stopped."""
    if _WRITER is not None and _WRITER.poll() is None:
        _WRITER.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired, ChildProcessError):
            _WRITER.wait(timeout=10)
