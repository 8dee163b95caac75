"""Prometheus metrics. Under gunicorn, ``fhirgen serve`` sets PROMETHEUS_MULTIPROC_DIR so every
worker process's counts add up in ``/metrics``. No labels carry identifiers or PHI."""

from __future__ import annotations

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
