"""gunicorn hooks for ``fhirgen serve`` (``gunicorn_command`` passes this module as its config)."""

from __future__ import annotations

import gc
from typing import Any


def post_worker_init(worker: Any) -> None:
    """Freeze what the worker imported (Flask, Celery, kombu, SQLAlchemy, the FHIR models):
    it lives as long as the process, and frozen, the garbage collector's full passes no longer
    walk it. bench/ingest.py: the webhook's p99 at concurrency 1 went from 27 to 13 ms."""
    gc.collect()
    gc.freeze()
