"""``/healthz`` (the process answers), ``/readyz`` (the store takes a write and the broker
answers, as a notification needs), ``/metrics``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from fhirgen.errors import TransientError
from fhirgen.store import JOB_STATES, StoreError
from workers.enqueue import broker_errors

if TYPE_CHECKING:
    from webhooks.app import WebhookState

blueprint = Blueprint("health", __name__)
# How long readiness waits for the store's write lock: a notification waits longer (the busy
# timeout), but a store that stays locked this long is answering notifications late or 503.
# With the broker's 2 s this stays under the probe's timeout (deploy/k8s/web.yaml: 5 s).
_WRITE_WAIT_SECONDS = 2


@blueprint.get("/healthz")
def healthz() -> Response:
    return Response('{"status":"ok"}', mimetype="application/json")


@blueprint.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    state: WebhookState = current_app.extensions["fhirgen"]
    checks: dict[str, str] = {}
    try:
        state.store.check_writable(_WRITE_WAIT_SECONDS)
        checks["store"] = "ok"
    except (TransientError, StoreError) as exc:  # e.g. a read-only PostgreSQL
        checks["store"] = type(exc).__name__
    try:
        with broker_errors():
            state.redis().ping()
        checks["broker"] = "ok"
    except TransientError as exc:
        checks["broker"] = type(exc).__name__
    ready = all(value == "ok" for value in checks.values())
    return {"status": "ready" if ready else "unavailable", "checks": checks}, 200 if ready else 503


@blueprint.get("/metrics")
def metrics() -> Response:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    state: WebhookState = current_app.extensions["fhirgen"]
    collector = _StoreCollector(state)
    registry.register(collector)
    try:
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
    finally:
        registry.unregister(collector)


class _StoreCollector:
    """Jobs per state and queue depths, read when scraped."""

    def __init__(self, state: WebhookState) -> None:
        self.state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("fhirgen_jobs", "Jobs in the store, by state", labels=["state"])
        try:
            counts = self.state.store.state_counts()
        except TransientError:
            counts = {}
        for name in JOB_STATES:
            jobs.add_metric([name], counts.get(name, 0))
        yield jobs
        queues = GaugeMetricFamily(
            "fhirgen_queue_depth", "Messages waiting per queue", labels=["queue"]
        )
        try:
            with broker_errors():
                client = self.state.redis()
                for queue in ("io", "gpu"):
                    queues.add_metric([queue], client.llen(queue))
        except TransientError:  # a scrape must not fail because Redis is down
            pass
        yield queues
