"""Prometheus metrics. Under gunicorn, ``fhirgen serve`` sets PROMETHEUS_MULTIPROC_DIR so every
worker process's counts add up in ``/metrics``. No labels carry identifiers or PHI."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from prometheus_client import Counter, Histogram

NOTIFICATIONS = Counter(
    "fhirgen_notifications_total", "Notifications received, by kind and answer", ["kind", "status"]
)
REQUEST_SECONDS = Histogram(
    "fhirgen_request_seconds",
    "Time to answer a request",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


# Bounded: kinds and statuses are the webhook's own words and endpoints Flask's, never a
# request's text; the bound keeps it so if that ever changes.
@lru_cache(maxsize=256)
def notified(kind: str, status: str) -> Any:
    """The counter of notifications of ``kind`` answered ``status`` (``labels`` looks the child
    up under a lock on every call; the webhook counts every notification)."""
    return NOTIFICATIONS.labels(kind=kind, status=status)


@lru_cache(maxsize=256)
def request_seconds(endpoint: str) -> Any:
    """The request-time histogram of one endpoint."""
    return REQUEST_SECONDS.labels(endpoint=endpoint)
